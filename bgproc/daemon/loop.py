"""The daemon: claims due runs, has workers run them, enforces timeouts,
records outcomes, handles signals.

One loop, driven by a selector (``wakeups``) over: the store's wake-ups (a
request changed), a signal pipe (SIGTERM, SIGINT, SIGCHLD), and each worker's
output and event pipes. Between events it sleeps until the earliest thing it must do:
the next due fire, a timeout, a log flush, a heartbeat. Signal handlers
only note the signal; the loop acts on it. The ``Daemon`` composes the parts
that do the work, each given the store, the clock, the reporter and the
config: the dispatcher (claiming through the store, starting runs), the
supervisor (the active runs: reaping, outcomes, deadlines, stops, logs,
leases), membership (heartbeats, other daemons' liveness, being declared
dead), and the pool (the worker processes themselves).

The daemon, never the worker, records how a run ended. The database may fail
at any time (locked, full, read-only, an I/O error): a worker's exit is kept
in memory as soon as it is reaped, and its outcome written, in order, when
the database allows; meanwhile the loop goes on with what needs no database
(signals, leases, reaping, deadlines), and tries the database again after a
growing delay (``outage``). A database file deleted, replaced, truncated or
made writable by others under the daemon (``Store.watch``), or a corrupt
database, stops it with a non-zero status.
"""

from __future__ import annotations

import os
import signal
import socket
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from ..clock import Clock, DatabaseClock
from ..errors import StoreError, StoreFault
from ..store import ClaimedRun, Store, Watch, shown
from ..task import APP_DB_ENV, application_db
from . import forking
from .active import ActiveRun
from .dispatcher import Dispatcher
from .forking import ForkServer
from .membership import HEARTBEAT_EXPIRY_S, Membership
from .outage import Outage, said
from .pool import Pool
from .reporter import Reporter
from .supervisor import Supervisor
from .wakeups import Wakeups

# How long one write waits for a lock before the loop gets on with everything else.
DAEMON_BUSY_TIMEOUT_MS = 500
# Why a run is stopped when its daemon finds itself declared dead.
DECLARED_DEAD_WHY = "this daemon was declared dead by another one and the run recorded interrupted"


@dataclass
class DaemonConfig:
    """How a daemon runs: worker slots, grace periods, intervals (in seconds)."""

    workers: int = 1
    once: bool = False
    grace_s: float = 30.0
    kill_after_s: float = 5.0
    log_limit: int = 1024 * 1024
    heartbeat_s: float = 5.0
    # Above the store's 30 s busy timeout plus a heartbeat: a daemon whose heartbeat
    # write waited out a locked database is not taken for dead.
    heartbeat_expiry_s: float = HEARTBEAT_EXPIRY_S
    flush_s: float = 0.25
    poll_s: float = 1.0
    claim_batch: int = 100
    spare: bool = True  # keep a worker started ahead (not with once)
    keep_daemons_s: float = 7 * 86400.0  # stopped daemons' rows are kept this long
    record_wait_s: float = 10.0  # at shutdown, how long outcomes the database refuses are tried again
    # How long a worker may take to start (interpreter, imports, loading the task)
    # before the run's own timeout, counted from then, applies.
    startup_timeout_s: float = 60.0

    def worker_lease(self) -> tuple[float, float] | None:
        """How long a worker goes on without a renewal from this daemon, and the grace
        its task then gets before what is left is killed, in seconds; None where the
        intervals leave no room for one (tests with hour-long heartbeats).

        Another daemon declares this one dead no sooner than ``heartbeat_expiry_s``
        after this one's last heartbeat, which came at most a heartbeat interval
        before its last renewal (where the database times heartbeats, the daemon
        makes it so: ``leases``); a second interval is the margin for a late loop
        pass. Lease and grace fit in what is left, so a worker's task has stopped
        before its request can run again elsewhere (defaults: 45 s, then 5 s)."""
        budget = self.heartbeat_expiry_s - 2 * self.heartbeat_s
        grace = min(self.kill_after_s, budget / 4)
        lease = budget - grace
        if lease < 2 * self.heartbeat_s:
            return None  # a renewal or two late would stop every run
        return lease, grace


# For tests only, never set in use: "heartbeat_s=0.25,heartbeat_expiry_s=4" shortens a
# daemon's intervals, "host=NAME" makes it believe it runs on another host, and
# "clock_skew_s=3600" sets its wall clock an hour ahead (no option exposes these: a
# user has no reason to change them).
TEST_CONFIG_ENV = "BGPROC_TEST_DAEMON"
_TEST_INTERVALS = ("heartbeat_s", "heartbeat_expiry_s", "poll_s", "flush_s")
_TEST_SKEW_LIMIT = 10 * 86400  # how far a test may set a daemon's clock off (either way), in seconds


def overrides_for_tests(text: str) -> tuple[dict[str, float], str | None]:
    """The intervals, clock skew (``clock_skew_s``) and host name set by
    ``BGPROC_TEST_DAEMON``; raises ValueError."""
    intervals: dict[str, float] = {}
    host = None
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        if name == "host" and value:
            host = value
            continue
        try:
            seconds = float(value) if name in (*_TEST_INTERVALS, "clock_skew_s") else 0.0
        except ValueError:
            seconds = 0.0
        allowed = abs(seconds) < _TEST_SKEW_LIMIT if name == "clock_skew_s" else 0 < seconds < 86400
        if not allowed or seconds != seconds:
            raise ValueError(f"{TEST_CONFIG_ENV}: cannot use {item!r}")
        intervals[name] = seconds
    return intervals, host


class Daemon:
    """One daemon on one database: ``run()`` loops until stopped; ``tick(now)`` is
    one claim pass, driven by hand in tests."""

    def __init__(
        self, store: Store, config: DaemonConfig, *, clock: Clock | None = None, reporter: Reporter | None = None,
        hostname: str | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self._clock = DatabaseClock(clock or Clock())  # the daemon's time is the database's
        self.reporter = reporter or Reporter(clock=self._clock)
        self.stopping = False
        self.exit_status = 0
        self._wakeups = Wakeups()
        self._file: Watch | None = None  # watched from start
        self._changes: object = None  # the store's change marker as last seen
        self._last_poll = 0.0
        self._poll_s = config.poll_s  # how often to look at the database unprompted
        self._pause = 0.0  # how long the loop waits for events after a pass
        self._started_at: datetime | None = None
        # Why the daemon gave up on its database (its file changed, it is corrupt), and
        # whether anything may still be written through its connection.
        self._given_up: str | None = None
        self._writable = True
        # The database condition (busy, full...) this daemon is in, if any.
        self._outage = Outage(self.reporter.event)
        self.workers = Pool(
            target=store.target, app_db=_app_db(store), log_limit=config.log_limit, selector=self._wakeups.selector,
            now=lambda: self.clock.now(),  # late-bound: tests swap the daemon's clock
            mono=lambda: self.clock.monotonic(),
            forkserver=partial(ForkServer, store.list_tasks, self.reporter.event) if forking.enabled() else None,
        )
        parts = (store, config, self._clock, self.reporter)
        self.membership = Membership(*parts, hostname=hostname or socket.gethostname())
        self.dispatcher = Dispatcher(*parts, pool=self.workers, outage=self._outage)
        self.supervisor = Supervisor(
            *parts, pool=self.workers, outage=self._outage, beaten=lambda: self.membership.beaten
        )

    @property
    def clock(self) -> DatabaseClock:
        return self._clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        """Tests swap a fake clock for a real one to wait for real processes (every part reads one)."""
        self._clock.base = clock.base if isinstance(clock, DatabaseClock) else clock

    @property
    def id(self) -> str:
        """This daemon's id (a new one after it was declared dead)."""
        return self.membership.id

    @property
    def active(self) -> dict[int, ActiveRun]:
        """The runs started whose outcome is not recorded yet, by run id."""
        return self.workers.runs

    @active.setter
    def active(self, runs: dict[int, ActiveRun]) -> None:
        self.workers.runs = runs

    # ------------------------------------------------------------------
    # The loop

    def run(self) -> int:
        """Run until stopped (or, with ``once``, until what was due has run). Returns the
        exit status: 0, or 1 when the daemon gave up on its database (its file deleted,
        replaced, truncated or made writable by others, or the database corrupt)."""
        self._start()
        try:
            while not self._iterate():
                self._wait(self._pause)
        finally:
            self._shutdown()
        return self.exit_status

    def register(self, daemon_id: str | None = None) -> None:
        """Record this daemon in the database, under ``daemon_id`` (default its id)."""
        self.membership.register(daemon_id)

    def _start(self) -> None:
        self.register()  # first: it measures the database's clock, which ``now`` reads
        now = self.clock.now()
        self._started_at = now
        # From here, short waits for locks: a task holding the database must not
        # stall the loop (timeouts, signals, other runs' output) for the default 30 s.
        self.store.set_busy_timeout(DAEMON_BUSY_TIMEOUT_MS)
        self.membership.last_beat = self.supervisor.leases.last_renewal = self.clock.monotonic()
        self._wakeups.catch_signals()
        if self._wakeups.listen(self.store, self.id.replace(":", "_"), self.reporter.event):
            # Whatever changes requests or asks for a cancel wakes us; looking
            # unprompted is a safety net, as often as the heartbeat.
            self._poll_s = max(self.config.poll_s, self.config.heartbeat_s)
        self._file = self.store.watch()
        self.membership.prune(now)
        self.reap_dead_daemons(now)
        self.dispatcher.ensure_spare(stopping=self.stopping)
        mode = "once" if self.config.once else f"{self.config.workers} worker(s)"
        self.reporter.event(f"daemon {self.id} started on {shown(self.store.target)} ({mode})")

    def _iterate(self) -> bool:
        """One pass of the loop, whatever the database does; True when the daemon should
        exit, else ``_pause`` says how long to wait for events before the next pass.
        While the database fails (busy, full...), passes that need no database go on
        (signals, reaping, deadlines), and it is tried again after a growing delay."""
        problem = self._file_problem()
        if problem is not None:
            self._give_up(*problem)
            return True
        self._handle_signals()
        self.supervisor.leases.renew(self.clock.monotonic())  # first: nothing here waits for the database
        if not self._outage.due(self.clock.monotonic()):
            return self._step_offline()
        self._outage.attempt()
        try:
            done = self._step()
        except StoreFault as fault:
            if fault.fatal:
                # A file deleted or replaced under the connection can read as corrupt:
                # say what happened to it, if that is what happened.
                self._give_up(*(self._file_problem() or (fault.condition, True)))
                return True
            self._outage.failed(fault, self.clock.monotonic())
            return self._step_offline()
        self._outage.passed(self.clock.monotonic())
        return done

    def _step_offline(self) -> bool:
        """A pass without the database: reaping (how runs ended is kept in memory),
        deadlines. True when the daemon should exit."""
        if self.supervisor.observe():
            self.dispatcher.due_stale = True  # slots freed: claim when the database is back
        mono = self.clock.monotonic()
        self.supervisor.enforce_deadlines(mono)
        if self.stopping and not self.supervisor.live():
            return True  # the shutdown tries the outcomes that wait once more
        self._pause = max(0.0, min([self._outage.retry_at - mono, *self.supervisor.delays(mono)]))
        return False

    def _file_problem(self) -> tuple[str, bool] | None:
        """What happened to the database file, if it is no longer the one opened, and
        whether outcomes may still be written through this connection."""
        problem = self._file.check() if self._file is not None else None
        return None if problem is None else (problem.text, not problem.gone)

    def _give_up(self, problem: str, writable: bool) -> None:
        """The database cannot be served any more: claim nothing, stop the runs now, and
        exit non-zero, so that a service manager starts a daemon on what is at the path
        now. ``writable``: outcomes may still be written through this connection."""
        self._given_up, self._writable, self.exit_status = problem, writable, 1
        self.reporter.event(
            f"{problem}; stopping: no new runs, the {len(self.supervisor.live())} running stopped now, exit status 1"
        )
        self.stopping = True
        self.supervisor.stop_deadline = self.clock.monotonic()

    def _step(self) -> bool:
        """One pass of the loop with the database; returns True when the daemon should exit."""
        reaped = self.supervisor.reap()
        # Read the clock after reaping: runs claimed below must not start
        # "before" the runs that just ended to free their slots.
        now, mono = self.clock.now(), self.clock.monotonic()
        self.dispatcher.note_wall(now)
        self.supervisor.enforce_deadlines(mono)
        changed = self._changed()
        if reaped or changed:
            self.dispatcher.due_stale = True  # a slot freed, or another connection wrote
        if changed or mono - self._last_poll >= self._poll_s:
            self._last_poll = mono
            self.supervisor.check_cancels()
        if self.supervisor.leases.fenced(mono):
            self._beat(now)  # first: no run starts past the fence
        claimed = self._dispatch(now)
        if self.supervisor.flush_in(mono) <= 0:
            self.dispatcher.record_unstarted()
            self.supervisor.flush()
        if self.membership.beat_in(mono) <= 0:
            self._beat(now)
        if not self.active and (self.stopping or (self.config.once and not claimed and not self.dispatcher.to_start)):
            return True
        if self.reporter.live:
            self.reporter.status(self._status_text())
        self._pause = self._sleep_for(now, mono)
        return False

    def _dispatch(self, now: datetime) -> list[int]:
        """Start the runs the database delayed, and claim what is due; returns the runs
        claimed."""
        if self.stopping:
            return []
        if self.dispatcher.to_start:
            self.dispatcher.start_delayed()
        if not self.dispatcher.should_tick(now):
            return []
        return self.tick(now, self._started_at if self.config.once else None)

    def _sleep_for(self, now: datetime, mono: float) -> float:
        delays = [self._poll_s, self.membership.beat_in(mono)]
        if not self.stopping:
            delays += self.dispatcher.delays(now, self._started_at if self.config.once else None)
        delays += self.supervisor.delays(mono)
        if self.dispatcher.unrecorded or self.supervisor.unwritten():
            delays.append(self.supervisor.flush_in(mono))
        if self._outage.fault is not None:
            delays.append(self._outage.retry_at - mono)  # what the database refused, again
        return max(0.0, min(delays))

    def _wait(self, timeout: float) -> None:
        self._wakeups.wait(timeout, self.workers.ready)

    def _changed(self) -> bool:
        marker = self.store.changes()
        changed = marker != self._changes
        self._changes = marker
        return changed

    # ------------------------------------------------------------------
    # Claiming, heartbeats, dead daemons

    def tick(self, now: datetime, due_by: datetime | None = None) -> list[int]:
        """Claim what is due by ``due_by`` (default ``now``) as worker slots allow, and
        start it. Returns the ids of the runs claimed (started, or recorded as failed
        to start)."""
        at = (now, self.clock.monotonic())  # the runs' recorded start, and its monotonic time
        claimed = self.claim(now, due_by)
        self.dispatcher.start(claimed, at, stopping=self.stopping)
        return [item.run_id for item in claimed]

    def claim(self, now: datetime, due_by: datetime | None = None) -> list[ClaimedRun]:
        """The claim pass of ``tick``, without starting anything: the store records the
        runs, skipped slots and errors, and advances the requests; returns the runs to
        start."""
        result = self.dispatcher.claim(
            self.id, now, due_by, busy=len(self.supervisor.live()), registered=self.membership.registered,
            host=self.membership.hostname,
        )
        if result.declared_dead:
            self._declared_dead(now)
        return result.runs

    def _beat(self, now: datetime) -> None:
        """Heartbeat; learn if this daemon was declared dead; reap dead daemons."""
        if not self.membership.beat(now):
            self._declared_dead(now)
        self.reap_dead_daemons(now)
        self.membership.prune(now, when_due=True)

    def reap_dead_daemons(self, now: datetime) -> None:
        """Mark the runs of daemons that died interrupted, and runs still recorded
        ``running`` under a daemon that stopped (``Store.settle_orphans``)."""
        if self.membership.reap_dead(now):
            self.dispatcher.due_stale = True  # their requests may be claimable now

    def _declared_dead(self, now: datetime) -> None:
        """Another daemon declared this one dead (it saw no heartbeat: this process was
        stopped or suspended, or its writes stalled) and recorded its running runs
        interrupted. Those runs are stopped, so that the record is true and the
        request's next run cannot overlap them; the daemon goes on under a new id."""
        running = self.supervisor.running()
        self.membership.say_declared_dead(len(running))
        self.supervisor.interrupt(running, self.clock.monotonic(), why=DECLARED_DEAD_WHY)
        self.membership.carry_on(now)
        self.dispatcher.due_stale = True

    # ------------------------------------------------------------------
    # Signals and shutdown

    def _handle_signals(self) -> None:
        while self._wakeups.received:
            signum = self._wakeups.received.pop(0)
            self.request_stop(signal.Signals(signum).name)

    def request_stop(self, why: str = "stop requested") -> None:
        """First call: drain (stop claiming, let runs finish within the grace). Second: stop now."""
        mono = self.clock.monotonic()
        if not self.stopping:
            self.stopping = True
            self.supervisor.stop_deadline = mono + self.config.grace_s
            self.reporter.event(
                f"{why}: no new runs; waiting up to {self.config.grace_s:g}s for {len(self.active)} running"
            )
        else:
            self.supervisor.stop_deadline = mono
            self.reporter.event(f"{why} again: stopping running runs now")

    def _shutdown(self) -> None:
        self.workers.let_helpers_go()
        self.supervisor.end_runs()
        self.supervisor.record_last(writable=self._writable, given_up=self._given_up)
        # Whatever of ours is still recorded running (a run that could not start and
        # whose error could not be written) ends interrupted, and the daemon stopped.
        try:
            if self._writable:
                self.dispatcher.record_unstarted()
                self.membership.leave(self.clock.now())
        except StoreError as exc:
            self.reporter.event(f"could not record this daemon stopped ({said(exc)})")
        self._wakeups.close()
        self.reporter.event(f"daemon {self.id} stopped")
        self.reporter.close()

    def _status_text(self) -> str:
        due = self.dispatcher.tick_at
        state = "stopping" if self.stopping else f"next due {due.astimezone():%Y-%m-%d %H:%M:%S}" if due else ""
        return f"{len(self.active)}/{self.config.workers} running, {state or 'nothing scheduled'}"


def _app_db(store: Store) -> str:
    """The application database a task's connection opens (``task.application_db``;
    "": none, and ``connection.db`` says so)."""
    return application_db(store.path, os.environ.get(APP_DB_ENV)) or ""


__all__ = ["TEST_CONFIG_ENV", "Daemon", "DaemonConfig", "overrides_for_tests"]
