"""The daemon: claims due runs, has workers run them, enforces timeouts,
records outcomes, handles signals.

One loop, driven by a selector over: the store's wake-ups (a request changed),
a signal pipe (SIGTERM, SIGINT, SIGCHLD), and each worker's output and
event pipes. Between events it sleeps until the earliest thing it must do:
the next due fire, a timeout, a log flush, a heartbeat. Signal handlers
only note the signal; the loop acts on it. The worker processes themselves
(starting, pipes, reaping) are ``pool.Pool``'s.

Claiming is the store's: one transaction (``Store.claim_due``) records the runs
and advances the requests, so each slot is claimed once however many daemons
share the database. The daemon, never the worker, records how a run ended.

The database may fail at any time (locked, full, read-only, an I/O error):
a worker's exit is kept in memory as soon as it is reaped, and its outcome
written, in order, when the database allows; meanwhile the loop goes on with
what needs no database, and tries the database again after a growing delay
(``outage``). A database file deleted, replaced, truncated or made writable
by others under the daemon (``Store.watch``), or a corrupt database, stops it
with a non-zero status.

Daemons watch each other through heartbeats. A daemon is declared dead, and
its running runs interrupted, only when its process is gone from this
machine, or, for a daemon elsewhere, when its heartbeat has not changed over
``heartbeat_expiry_s`` of this daemon's own monotonic time (wall clocks of
two hosts are never compared). A daemon that finds itself declared dead
stops the runs it still has (they are recorded interrupted), says so loudly,
and carries on under a new id. But a daemon that is stopped or suspended
cannot stop anything, so each worker holds a *lease* that the loop renews at
the heartbeat interval, whatever the database does: a worker that hears
nothing within its lease stops its task itself, before any other daemon can
declare this one dead and run the request again (``DaemonConfig.worker_lease``).
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .. import liveness, orphans
from ..clock import Clock
from ..errors import StoreError, StoreFault, StoreFull
from ..store import ClaimedRun, LogWrite, Notifier, Store, Watch
from ..store.decide import iso_local
from ..store.records import DaemonRecord, RequestRecord, TaskRecord
from .active import ActiveRun
from .outage import Outage
from .pool import Pool
from .reporter import Reporter
from .runlog import stamp

# How long one write waits for a lock before the loop gets on with everything else.
DAEMON_BUSY_TIMEOUT_MS = 500
# How often stopped daemons' rows are pruned (each `daemon --once` adds one).
PRUNE_EVERY_S = 3600.0
# On a full disk an outcome is recorded with its log cut to its last lines, this many
# bytes (then to nothing but the line that says so, if that does not fit either).
CUT_LOG_BYTES = 16 * 1024


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
    heartbeat_expiry_s: float = 60.0
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
        before its last renewal; a second interval is the margin for a late loop
        pass. Lease and grace fit in what is left, so a worker's task has stopped
        before its request can run again elsewhere (defaults: 45 s, then 5 s)."""
        budget = self.heartbeat_expiry_s - 2 * self.heartbeat_s
        grace = min(self.kill_after_s, budget / 4)
        lease = budget - grace
        if lease < 2 * self.heartbeat_s:
            return None  # a renewal or two late would stop every run
        return lease, grace


# For tests only, never set in use: "heartbeat_s=0.25,heartbeat_expiry_s=4" shortens a
# daemon's intervals, "host=NAME" makes it believe it runs on another host (no option
# exposes either: a user has no reason to change them).
TEST_CONFIG_ENV = "BGPROC_TEST_DAEMON"
_TEST_INTERVALS = ("heartbeat_s", "heartbeat_expiry_s", "poll_s", "flush_s")


def overrides_for_tests(text: str) -> tuple[dict[str, float], str | None]:
    """The intervals and host name set by ``BGPROC_TEST_DAEMON``; raises ValueError."""
    intervals: dict[str, float] = {}
    host = None
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        if name == "host" and value:
            host = value
            continue
        try:
            seconds = float(value) if name in _TEST_INTERVALS else 0.0
        except ValueError:
            seconds = 0.0
        if not 0 < seconds < 86400:
            raise ValueError(f"{TEST_CONFIG_ENV}: cannot use {item!r}")
        intervals[name] = seconds
    return intervals, host


class Daemon:
    """One daemon on one database: ``run()`` loops until stopped; ``tick(now)`` is
    one claim pass, driven by hand in tests."""

    def __init__(
        self,
        store: Store,
        config: DaemonConfig,
        *,
        clock: Clock | None = None,
        reporter: Reporter | None = None,
        hostname: str | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock or Clock()
        self.reporter = reporter or Reporter(clock=self.clock)
        # ``hostname``: for tests, a daemon that believes it runs on another host.
        self.hostname = hostname or socket.gethostname()
        self.id = self._new_id()
        # Where this process runs (host, boot, pid namespace) and which process it is:
        # another daemon with the same place can check our pid directly.
        self.place = liveness.place(self.hostname)
        self.host = liveness.host_text(self.place, liveness.proc_start(os.getpid()))
        self.stopping = False
        self.stop_deadline: float | None = None
        self._signals: list[int] = []
        self._selector = selectors.DefaultSelector()
        self._waker: Notifier | None = None
        self._last_flush = 0.0
        self._last_beat = 0.0
        self._last_renewal = 0.0  # workers' leases last renewed (monotonic)
        self._lease = config.worker_lease()
        self._last_poll = 0.0
        self._last_prune: float | None = None
        self._beats = 0  # own heartbeats written
        # Other daemons' heartbeats as last seen: id -> (value, monotonic time first
        # seen with that value, own heartbeats written by then).
        self._observed: dict[str, tuple[datetime, float, int]] = {}
        self._changes: object = None  # the store's change marker as last seen
        self._started_at: datetime | None = None
        # Claiming: the next time a claim pass has something to do (None: nothing
        # scheduled), whether that is known, and whether the last pass left work behind.
        self._tick_at: datetime | None = None
        self._due_stale = True
        self._backlogged = False
        # The wall clock as the last pass read it, and, after it was set back, the time it
        # had reached: what was due by then stays due until claimed (see ``_note_wall``).
        self._wall_seen: datetime | None = None
        self._set_back_from: datetime | None = None
        self._registered = False  # a row in the daemons table (tests may drive claim() without one)
        self._poll_s = config.poll_s  # how often to look at the database unprompted
        self._pause = 0.0  # how long the loop waits for events after a pass
        # Runs that could not start, whose error could not be written yet: run id -> detail.
        self._unrecorded: dict[int, str] = {}
        # Runs claimed whose start waits for the database to take their pid.
        self._to_start: list[ClaimedRun] = []
        # Runs whose worker exited, in that order, whose outcome is not written yet.
        self._pending: list[ActiveRun] = []
        # The database condition (busy, full...) this daemon is in, if any.
        self._outage = Outage(lambda message: self.reporter.event(message))
        self._file: Watch | None = None  # watched from start
        # Why the daemon gave up on its database (its file changed, it is corrupt), and
        # whether anything may still be written through its connection.
        self._given_up: str | None = None
        self._writable = True
        self.exit_status = 0
        self.workers = Pool(
            target=store.target,
            app_db=_app_db(store),
            log_limit=config.log_limit,
            selector=self._selector,
            now=lambda: self.clock.now(),  # late-bound: tests swap the daemon's clock
            mono=lambda: self.clock.monotonic(),
        )

    @property
    def active(self) -> dict[int, ActiveRun]:
        """The runs started whose outcome is not recorded yet, by run id."""
        return self.workers.runs

    @active.setter
    def active(self, runs: dict[int, ActiveRun]) -> None:
        self.workers.runs = runs

    def _new_id(self) -> str:
        return f"{self.hostname}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

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
        now = self.clock.now()
        self.store.register_daemon(
            DaemonRecord(
                id=daemon_id or self.id, host=self.host, pid=os.getpid(), started_at=now, heartbeat_at=now,
                stopped_at=None, workers=self.config.workers,
            )
        )
        self._registered = True

    def _start(self) -> None:
        now = self.clock.now()
        self._started_at = now
        self.register()
        # From here, short waits for locks: a task holding the database must not
        # stall the loop (timeouts, signals, other runs' output) for the default 30 s.
        self.store.set_busy_timeout(DAEMON_BUSY_TIMEOUT_MS)
        self._last_beat = self._last_renewal = self.clock.monotonic()
        self._install_signals()
        try:
            self._waker = self.store.listen(self.id.replace(":", "_"))
        except StoreError as exc:
            self.reporter.event(f"{exc}; watching the database instead")
        if self._waker is not None:
            self._selector.register(self._waker.fileno(), selectors.EVENT_READ, ("wake", None))
            # Whatever changes requests or asks for a cancel wakes us; looking
            # unprompted is a safety net, as often as the heartbeat.
            self._poll_s = max(self.config.poll_s, self.config.heartbeat_s)
        self._file = self.store.watch()
        self._prune(now)
        self.reap_dead_daemons(now)
        self._ensure_spare()
        mode = "once" if self.config.once else f"{self.config.workers} worker(s)"
        self.reporter.event(f"daemon {self.id} started on {self.store.target} ({mode})")

    def _iterate(self) -> bool:
        """One pass of the loop, whatever the database does; True when the daemon should
        exit, else ``_pause`` says how long to wait for events before the next pass.
        While the database fails (busy, full...), passes that need no database go on
        (signals, reaping, deadlines), and it is tried again after a growing delay."""
        problem = self._file.check() if self._file is not None else None
        if problem is not None:
            self._give_up(problem.text, not problem.gone)
            return True
        if not self._outage.due(self.clock.monotonic()):
            return self._step_offline()
        self._outage.attempt()
        try:
            done = self._step()
        except StoreFault as fault:
            if fault.fatal:
                # A file deleted or replaced under the connection can read as corrupt:
                # say what happened to it, if that is what happened.
                problem = self._file.check() if self._file is not None else None
                self._give_up(*((problem.text, not problem.gone) if problem else (fault.condition, True)))
                return True
            self._outage.failed(fault, self.clock.monotonic())
            return self._step_offline()
        self._outage.passed(self.clock.monotonic())
        return done

    def _step_offline(self) -> bool:
        """A pass without the database: signals, workers' leases, reaping (how runs
        ended is kept in memory), deadlines. True when the daemon should exit."""
        self._handle_signals()
        self._renew_leases(self.clock.monotonic())
        if self._observe():
            self._due_stale = True  # slots freed: claim when the database is back
        mono = self.clock.monotonic()
        self._enforce_deadlines(mono)
        if self.stopping and not self._live():
            return True  # the shutdown tries the outcomes that wait once more
        self._pause = max(0.0, min([self._outage.retry_at - mono, *self._run_delays(mono)]))
        return False

    def _give_up(self, problem: str, writable: bool) -> None:
        """The database cannot be served any more: claim nothing, stop the runs now, and
        exit non-zero, so that a service manager starts a daemon on what is at the path
        now. ``writable``: outcomes may still be written through this connection."""
        self._given_up, self._writable, self.exit_status = problem, writable, 1
        self.reporter.event(
            f"{problem}; stopping: no new runs, the {len(self._live())} running stopped now, exit status 1"
        )
        self.stopping = True
        self.stop_deadline = self.clock.monotonic()

    def _step(self) -> bool:
        """One pass of the loop; returns True when the daemon should exit."""
        self._handle_signals()
        self._renew_leases(self.clock.monotonic())  # first: nothing here waits for the database
        reaped = self._reap()
        # Read the clock after reaping: runs claimed below must not start
        # "before" the runs that just ended to free their slots.
        now, mono = self.clock.now(), self.clock.monotonic()
        self._note_wall(now)
        self._enforce_deadlines(mono)
        changed = self._changed()
        if reaped or changed:
            self._due_stale = True  # a slot freed, or another connection wrote
        if changed or mono - self._last_poll >= self._poll_s:
            self._last_poll = mono
            self._check_cancels()
        claimed: list[int] = []
        if self._to_start and not self.stopping:
            self._start_delayed()
        if not self.stopping and self._should_tick(now):
            claimed = self.tick(now, self._started_at if self.config.once else None)
        if mono - self._last_flush >= self.config.flush_s:
            self._flush()
        if mono - self._last_beat >= self.config.heartbeat_s:
            self._beat(now)
        if not self.active and (self.stopping or (self.config.once and not claimed and not self._to_start)):
            return True
        if self.reporter.live:
            self.reporter.status(self._status_text())
        self._pause = self._sleep_for(now, mono)
        return False

    def _should_tick(self, now: datetime) -> bool:
        return self._due_stale or self._backlogged or (self._tick_at is not None and self._tick_at <= self._due_by(now))

    def _note_wall(self, now: datetime) -> None:
        """Notice the wall clock set back (an NTP step, an operator). Heartbeats, timeouts
        and leases run on monotonic time and do not care; but fires that were due by
        the time the clock had reached stay due, rather than wait for the clock to get
        there again (the daemon busy, they waited for a worker). Later fires wait for
        the clock, as cron's fixed-time jobs do: a slot is an instant, run once."""
        seen, self._wall_seen = self._wall_seen, now
        if seen is None or now >= seen:
            return
        if self._set_back_from is None or seen > self._set_back_from:
            self._set_back_from = seen
        self._due_stale = True
        if seen - now >= timedelta(seconds=1):
            self.reporter.event(
                f"the system clock was set back by {(seen - now).total_seconds():.0f}s: what was due by "
                f"{iso_local(seen)} runs now; later fires wait for the clock to reach them"
            )

    def _due_by(self, now: datetime) -> datetime:
        """What a claim pass at ``now`` takes: due by now, or by the time the clock had
        reached before it was set back, while something due by then is unclaimed."""
        if self._set_back_from is None:
            return now
        return max(now, self._set_back_from)

    def _sleep_for(self, now: datetime, mono: float) -> float:
        delays = [self._poll_s, self.config.heartbeat_s - (mono - self._last_beat)]
        if not self.stopping:
            if self._backlogged or self._due_stale:
                delays.append(0.0)
            elif self._tick_at is not None and not (
                self.config.once and self._started_at is not None and self._tick_at > self._started_at
            ):
                delays.append((self._tick_at - now).total_seconds())
        delays += self._run_delays(mono)
        if self._unrecorded or any(r.log.dirty or r.progress_dirty for r in self.active.values()):
            delays.append(self.config.flush_s - (mono - self._last_flush))
        if self._outage.fault is not None:
            delays.append(self._outage.retry_at - mono)  # what the database refused, again
        return max(0.0, min(delays))

    def _run_delays(self, mono: float) -> list[float]:
        """When the live runs need the loop next: deadlines, SIGKILLs, the stop deadline,
        their leases' renewal."""
        delays = []
        live = self._live()
        if live and self._lease is not None:
            delays.append(self.config.heartbeat_s - (mono - self._last_renewal))
        for run in live:
            if run.term_at is None:
                delays.append(run.deadline - mono)
            elif not run.killed:
                delays.append(run.term_at + self.config.kill_after_s - mono)
        if self.stop_deadline is not None and any(r.stop_reason is None for r in live):
            delays.append(self.stop_deadline - mono)
        if live:
            delays.append(0.5)  # reap even if a SIGCHLD was lost
        return delays

    def _live(self) -> list[ActiveRun]:
        """The runs whose worker has not exited yet."""
        return [run for run in self.active.values() if not run.reaped]

    def _wait(self, timeout: float) -> None:
        for key, _ in self._selector.select(timeout):
            kind, run = key.data
            if kind == "wake" and self._waker is not None:
                self._waker.drain()
            elif kind == "signal":
                try:
                    while os.read(key.fd, 512):
                        pass
                except (BlockingIOError, InterruptedError):
                    pass
            else:
                self.workers.ready(kind, run)

    def _changed(self) -> bool:
        marker = self.store.changes()
        changed = marker != self._changes
        self._changes = marker
        return changed

    # ------------------------------------------------------------------
    # Claiming

    def tick(self, now: datetime, due_by: datetime | None = None) -> list[int]:
        """Claim what is due by ``due_by`` (default ``now``) as worker slots allow, and
        start it. Returns the ids of the runs claimed (started, or recorded as failed
        to start)."""
        claimed = self.claim(now, due_by)
        for item in claimed:
            self._start_claimed(item)
        if claimed:
            self._ensure_spare()
        return [c[0] for c in claimed]

    def _start_claimed(self, item: ClaimedRun) -> None:
        """Start a claimed run. A database that refuses the pid's write for now (busy,
        an I/O error) delays the start to a later pass: the run is claimed, so it
        must not fail for that; anything else fails the run, not the daemon."""
        run_id, request, task = item
        try:
            self._spawn(run_id, request, task)
        except StoreFault as fault:
            self._db_failed(fault)
            self._to_start.append(item)
        except Exception as exc:  # noqa: BLE001 - the run fails, not the daemon (nor the others)
            self._spawn_failed(run_id, request.task, exc)

    def _start_delayed(self) -> None:
        """Start the claimed runs whose start the database delayed, oldest first."""
        delayed, self._to_start = self._to_start, []
        for item in delayed:
            self._start_claimed(item)

    def claim(self, now: datetime, due_by: datetime | None = None) -> list[ClaimedRun]:
        """The claim pass of ``tick``, without starting anything: the store records the
        runs, skipped slots and errors, and advances the requests; returns the runs to
        start."""
        self._note_wall(now)
        by = due_by or self._due_by(now)
        # A run whose worker exited holds no slot, even while its outcome waits to be written.
        free = self.config.workers - len(self._live()) - len(self._to_start)
        self._backlogged = False
        result = self.store.claim_due(
            self.id, now, by, free, limit=self.config.claim_batch, registered=self._registered
        )
        # Only once committed: a pass that failed is tried again.
        self._tick_at, self._backlogged, self._due_stale = result.next_due, result.more, False
        if self._set_back_from is not None:
            self._caught_up(self.store.next_due_at())
        for message in result.events:
            self.reporter.event(message)
        if result.declared_dead:
            self._declared_dead(now)
        return result.runs

    def _caught_up(self, first: datetime | None) -> None:
        """After the clock was set back: once the earliest due fire (``first``) is past
        the time the clock had reached, what was due then is all claimed."""
        if self._set_back_from is not None and (first is None or first > self._set_back_from):
            self._set_back_from = None

    # ------------------------------------------------------------------
    # Starting runs, recording how they ended

    def _ensure_spare(self) -> None:
        """Keep one worker started ahead, so that a claimed run need not wait for an
        interpreter to start (it still gets a process of its own)."""
        if self.workers.spare is not None or not self.config.spare or self.config.once or self.stopping:
            return
        try:
            self.workers.ensure_spare()
        except OSError as exc:
            self.reporter.event(f"could not start a spare worker ({exc}); starting workers on demand")

    def _spawn(self, run_id: int, request: RequestRecord, task: TaskRecord) -> None:
        """Hand a claimed run to a worker. Raises (OSError, StoreError) with no worker
        left behind; ``tick`` then records the run as an error."""
        timeout_s = request.timeout_s or task.timeout_s
        launched = self.workers.take_spare() or self.workers.launch()
        try:
            # Before the job is sent: a run never goes on without its pid recorded.
            self.store.set_run_pid(run_id, launched.proc.pid)
        except BaseException:
            self.workers.discard(launched)
            raise
        self.workers.start(
            launched, run_id=run_id, request=request, task=task, timeout_s=timeout_s,
            startup_s=self.config.startup_timeout_s, lease=self._lease,
        )
        self.reporter.event(f"started run {run_id} ({request.task}) as pid {launched.proc.pid}")

    def _spawn_failed(self, run_id: int, task: str, exc: Exception) -> None:
        detail = f"could not start the worker: {type(exc).__name__}: {exc}"
        self.reporter.event(f"run {run_id} ({task}): {detail}")
        self._unrecorded[run_id] = detail
        self._due_stale = True  # the slot it was claimed for is free again
        self._record_unstarted()

    def _record_unstarted(self) -> None:
        """Record the runs that could not start as errors (retried until written)."""
        for run_id, detail in list(self._unrecorded.items()):
            try:
                self.store.finish_run(run_id, status="error", ended_at=self.clock.now(), detail=detail)
            except StoreFault as fault:
                self._db_failed(fault)
                return
            del self._unrecorded[run_id]

    def _db_failed(self, fault: StoreFault) -> None:
        """A write that can wait failed: note the condition (said once), or raise what
        waiting cannot help (a corrupt database)."""
        if fault.fatal:
            raise fault
        self._outage.failed(fault, self.clock.monotonic())

    def _reap(self) -> int:
        """Reap the workers that exited and record their outcomes; returns how many
        were reaped. An outcome the database refuses is kept and written later."""
        count = self._observe()
        self._record_outcomes()
        return count

    def _observe(self) -> int:
        """Reap the workers that exited, keeping at once how each ended (wait status,
        usage, end time, outcome), whatever the database does; returns how many."""
        spare = self.workers.reap_spare()
        if spare is not None:
            self.reporter.event(f"the spare worker exited (code {spare.proc.returncode}); starting workers on demand")
        count = 0
        for run in list(self.active.values()):
            if not run.reaped and self._poll(run):
                count += 1
        return count

    def _poll(self, run: ActiveRun) -> bool:
        """Whether the run's worker has exited (reaped now, or before)."""
        if run.reaped:
            return True
        if not self.workers.poll(run):
            return False
        self._exited(run)
        return True

    def _exited(self, run: ActiveRun) -> None:
        """A run's worker was just reaped: how it ended now is the run's outcome, kept
        until it is written (deadlines and stops no longer apply to it)."""
        self.workers.drain(run)
        run.ended_at, run.ended_mono = self.clock.now(), self.clock.monotonic()
        run.log.flush_partial(run.ended_at)
        exit_code, _ = run.exit_status()
        if run.stop_reason is not None:
            run.outcome = run.stop_reason
        elif run.lease_expired:
            run.outcome = "interrupted"  # its worker stopped it: this daemon had gone quiet
        elif exit_code == 0 and not run.exited_early():
            run.outcome = "success"
        else:
            run.outcome = "error"
        self._pending.append(run)

    def _record_outcomes(self) -> None:
        """Write the outcomes that wait, in the order the runs ended; the first one the
        database refuses stops the rest (all kept, and tried again later)."""
        while self._pending:
            try:
                self._finish(self._pending[0])
            except StoreFault as fault:
                self._db_failed(fault)
                return
            self._pending.pop(0)

    def _finish(self, run: ActiveRun) -> None:
        """Write an exited run's outcome and let the run go (raises ``StoreFault`` if it
        cannot be written: nothing is lost, call again). On a full disk the outcome is
        written with the log cut to its tail rather than held back."""
        outcome = run.outcome or "error"
        detail = self._detail(run, outcome)
        cut = None
        try:
            recorded = self._write_outcome(run, outcome, detail)
        except StoreFull as fault:
            recorded, cut = self._write_outcome_cut(run, outcome, detail, fault)
        self.workers.close(run)
        assert run.ended_mono is not None
        took = run.ended_mono - run.spawned_mono
        shown = detail if cut is None else f"{detail}; {cut}" if detail else cut
        self.reporter.finished(run.run_id, run.task, outcome if recorded else f"{outcome} (not recorded)", shown, took)

    def _write_outcome(self, run: ActiveRun, outcome: str, detail: str | None) -> bool:
        """One transaction: the run's outcome and the rest of its log. Returns False if
        the run was recorded ended already (that record stands: the log says so)."""
        exit_code, signum = run.exit_status()
        write, marks = self._log_write(run)
        recorded = self.store.finish_run(
            run.run_id, status=outcome, ended_at=run.ended_at or self.clock.now(), exit_code=exit_code,
            signal=signum, cpu_s=run.cpu_s(), max_rss_kb=run.max_rss_kb(), detail=detail, log=write,
        )
        self._written(run, marks)
        if not recorded and not run.noted:
            # Recorded ended already (interrupted, after this daemon was declared dead).
            run.log.add(
                stamp(run.ended_at or self.clock.now()),
                f"[bgproc] the run ended ({outcome}{', ' + detail if detail else ''}) "
                "after it had been recorded as ended; that record stands",
            )
            run.noted = True
            write, marks = self._log_write(run)
            self.store.write_logs([write] if write is not None else [])
            self._written(run, marks)
        return recorded

    def _write_outcome_cut(
        self, run: ActiveRun, outcome: str, detail: str | None, fault: StoreFull
    ) -> tuple[bool, str]:
        """The database has no room for the run's log: write the outcome with the log cut
        to its last lines (then to nothing but the line that says so), saying so in the
        log. Raises ``StoreFault`` if even that cannot be written. Returns whether it was
        recorded, and what was cut."""
        try:
            return self._write_cut(run, outcome, detail, fault, CUT_LOG_BYTES)
        except StoreFull:
            return self._write_cut(run, outcome, detail, fault, 0)

    def _write_cut(
        self, run: ActiveRun, outcome: str, detail: str | None, fault: StoreFull, keep: int
    ) -> tuple[bool, str]:
        lost = run.log.cut(
            keep,
            f"{stamp(self.clock.now())} [bgproc] {fault.condition}: the log is cut to its last {keep} bytes; "
            "what came before them is not recorded",
        )
        recorded = self._write_outcome(run, outcome, detail)
        return recorded, f"database {fault.kind}: log cut to its last {keep} bytes ({lost} bytes not recorded)"

    def _detail(self, run: ActiveRun, outcome: str) -> str | None:
        how = run.how_ended()
        if outcome == "timeout":
            return f"{run.timeout_why()}; stopped ({how or 'exited'})"
        if outcome == "cancelled":
            return f"cancelled on request ({how or 'exited'})"
        if outcome == "interrupted" and run.stop_reason is None and run.lease_expired:
            return (
                f"the worker stopped the run: no word from this daemon within its lease of {run.lease_s:g}s "
                f"(the daemon was stopped or suspended) ({how or 'exited'})"
            )
        if outcome == "interrupted":
            return f"the daemon stopped; run stopped ({how or 'exited'})"
        if outcome == "error":
            return how or "failed"
        return None

    # ------------------------------------------------------------------
    # Stopping runs

    def _enforce_deadlines(self, mono: float) -> None:
        for run in self.active.values():
            if run.reaped:
                continue
            if run.stop_reason is None and mono >= run.deadline:
                self._stop(run, "timeout", mono)
            elif run.term_at is not None and not run.killed and mono >= run.term_at + self.config.kill_after_s:
                run.log.add(stamp(self.clock.now()), "[bgproc] still running: SIGKILL sent")
                self.workers.signal_group(run, signal.SIGKILL)
                run.killed = True
        if self.stop_deadline is not None and mono >= self.stop_deadline:
            for run in self.active.values():
                if run.stop_reason is None and not run.reaped:
                    self._stop(run, "interrupted", mono)

    def _stop(self, run: ActiveRun, reason: str, mono: float, why: str | None = None) -> None:
        if self._poll(run):
            return  # its worker exited first: it ended as it ended, not stopped
        run.stop_reason = reason
        run.term_at = mono
        why = why or {
            "timeout": run.timeout_why(),
            "cancelled": "cancel requested",
            "interrupted": "the daemon is stopping",
        }.get(reason, reason)
        run.log.add(
            stamp(self.clock.now()),
            f"[bgproc] {why}: SIGTERM sent, SIGKILL in {self.config.kill_after_s:g}s if still running",
        )
        self.reporter.event(f"run {run.run_id}: {reason}; sending SIGTERM to its process group")
        self.workers.signal_group(run, signal.SIGTERM)

    def _check_cancels(self) -> None:
        ids = self.store.cancel_requested(
            [r for r, run in self.active.items() if run.stop_reason is None and not run.reaped]
        )
        mono = self.clock.monotonic()
        for run_id in ids:
            self._stop(self.active[run_id], "cancelled", mono)

    # ------------------------------------------------------------------
    # Logs, progress, heartbeats

    def _flush(self) -> None:
        self._last_flush = self.clock.monotonic()
        now = self.clock.now()
        self._record_unstarted()
        self.workers.sample(now)
        dirty = [r for r in self.active.values() if not r.reaped and (r.log.dirty or r.progress_dirty)]
        if not dirty:
            return
        writes = [(run, *self._log_write(run)) for run in dirty]
        try:
            self.store.write_logs([write for _, write, _ in writes if write is not None])
        except StoreFault as fault:
            self._db_failed(fault)  # the logs wait in memory (bounded), the rest of the pass goes on
            return
        for run, _, marks in writes:
            self._written(run, marks)

    def _log_write(self, run: ActiveRun) -> tuple[LogWrite | None, tuple[Any, Any]]:
        """A run's new log lines and progress to write (None: nothing new), and what to
        pass to ``_written`` once committed."""
        log_mark = progress = None
        head, tail, dropped = "", None, None
        if run.log.dirty:
            head, tail, dropped, log_mark = run.log.pending()
        if run.progress_dirty and run.progress is not None:
            progress = run.progress
        if log_mark is None and progress is None:
            return None, (None, None)
        write = LogWrite(run_id=run.run_id, append_head=head, tail=tail, dropped=dropped, progress=progress)
        return write, (log_mark, progress)

    def _written(self, run: ActiveRun, marks: tuple[Any, Any]) -> None:
        log_mark, progress = marks
        if log_mark is not None:
            run.log.written(log_mark)
        if progress is not None and run.progress is progress:
            run.progress_dirty = False

    def _renew_leases(self, mono: float) -> None:
        """Renew each worker's lease, at the heartbeat interval. Called first in every
        pass of the loop, and while the database is busy: a daemon that is alive keeps
        its runs going, whatever the database does."""
        if self._lease is None or mono - self._last_renewal < self.config.heartbeat_s:
            return
        quiet = mono - self._last_renewal
        self._last_renewal = mono
        if quiet > self._lease[0] and self.active:
            self.reporter.event(
                f"this daemon's loop did not run for {quiet:.0f}s (stopped or suspended?), past its workers' "
                f"lease of {self._lease[0]:g}s: they stop their runs themselves"
            )
        for run in self.active.values():
            self.workers.renew(run)

    def _beat(self, now: datetime) -> None:
        """Heartbeat; learn if this daemon was declared dead; reap dead daemons."""
        self._last_beat = self.clock.monotonic()
        if self.store.beat(self.id, now):
            self._beats += 1
        else:
            self._declared_dead(now)
        self.reap_dead_daemons(now)
        if self._last_prune is None or self._last_beat - self._last_prune >= PRUNE_EVERY_S:
            self._prune(now)

    def _prune(self, now: datetime) -> None:
        self._last_prune = self.clock.monotonic()
        self.store.prune_daemons(now - timedelta(seconds=self.config.keep_daemons_s))

    def _declared_dead(self, now: datetime) -> None:
        """Another daemon declared this one dead (it saw no heartbeat: this process was
        stopped or suspended, or its writes stalled) and recorded its running runs
        interrupted. Those runs are stopped, so that the record is true and the
        request's next run cannot overlap them; the daemon goes on under a new id, so
        that nothing is ever again recorded under the old one."""
        old = self.id
        mono = self.clock.monotonic()
        running = [r for r in self.active.values() if not r.reaped and r.stop_reason is None]
        self.reporter.event(
            f"WARNING: daemon {old} was declared dead by another daemon (no heartbeat seen for "
            f"{self.config.heartbeat_expiry_s:g}s: this process was stopped or suspended, or the database "
            f"stalled its writes). Its runs were recorded interrupted; stopping the {len(running)} still going. "
            "Continuing under a new id."
        )
        for run in running:
            self._stop(
                run, "interrupted", mono,
                why="this daemon was declared dead by another one and the run recorded interrupted",
            )
        self.store.interrupt_daemon_runs(
            old, now, f"interrupted: daemon {old} was declared dead while the run was starting; not re-run"
        )
        # Registered first: until the new id is recorded the old one (stopped) stays, so
        # nothing is claimed and the next pass or heartbeat tries again.
        new = self._new_id()
        self.register(new)
        self.id = new
        self._due_stale = True
        self.reporter.event(f"daemon {old} continues as {self.id}")

    def reap_dead_daemons(self, now: datetime) -> None:
        """Mark the runs of daemons that died interrupted, and runs still recorded
        ``running`` under a daemon that stopped (``Store.settle_orphans``)."""
        mono = self.clock.monotonic()
        settled = self.store.settle_orphans(now, lambda other: self._dead(other, mono), daemon=self.id)
        for gone in set(self._observed) - {d.id for d in settled.live}:
            del self._observed[gone]
        for dead in settled.dead:
            self._observed.pop(dead.id, None)
            self.reporter.event(f"daemon {dead.id} {dead.why}: declared dead")
            for run_id in dead.runs:
                self.reporter.event(f"run {run_id} interrupted: daemon {dead.id} {dead.why}")
        for run_id, daemon_id in settled.orphans:
            self.reporter.event(f"run {run_id} interrupted: daemon {daemon_id} had stopped")
        if settled.dead or settled.orphans:
            self._due_stale = True  # their requests may be claimable now

    def _dead(self, other: DaemonRecord, mono: float) -> str | None:
        """Why ``other`` is dead, or None while it may be alive: the rule the command
        line judges by too (``orphans.why_dead``), with this daemon's sightings."""
        return orphans.why_dead(
            other, here=self.place, mono=mono, seen=self._observed, own_beats=self._beats,
            expiry_s=self.config.heartbeat_expiry_s,
        )

    # ------------------------------------------------------------------
    # Signals and shutdown

    def _install_signals(self) -> None:
        self._old_handlers: dict[int, Any] = {}
        self._sig_r, self._sig_w = os.pipe()
        os.set_blocking(self._sig_r, False)
        os.set_blocking(self._sig_w, False)
        self._old_wakeup: int | None = None
        try:
            self._old_wakeup = signal.set_wakeup_fd(self._sig_w)
        except ValueError:  # not the main thread (tests may run a daemon in a thread)
            return
        self._selector.register(self._sig_r, selectors.EVENT_READ, ("signal", None))

        def note(signum: int, frame: Any) -> None:
            self._signals.append(signum)

        self._old_handlers = {
            signum: signal.signal(signum, note) for signum in (signal.SIGTERM, signal.SIGINT)
        }
        self._old_handlers[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda s, f: None)

    def _restore_signals(self) -> None:
        old_wakeup = getattr(self, "_old_wakeup", None)  # None: never installed (tests)
        if old_wakeup is None:
            return
        signal.set_wakeup_fd(old_wakeup)
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)
        self._selector.unregister(self._sig_r)
        os.close(self._sig_r)
        os.close(self._sig_w)

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            self.request_stop(signal.Signals(signum).name)

    def request_stop(self, why: str = "stop requested") -> None:
        """First call: drain (stop claiming, let runs finish within the grace). Second: stop now."""
        mono = self.clock.monotonic()
        if not self.stopping:
            self.stopping = True
            self.stop_deadline = mono + self.config.grace_s
            self.reporter.event(
                f"{why}: no new runs; waiting up to {self.config.grace_s:g}s for {len(self.active)} running"
            )
        else:
            self.stop_deadline = mono
            self.reporter.event(f"{why} again: stopping running runs now")

    def _shutdown(self) -> None:
        self.workers.discard_spare()
        # Runs that ended are kept as they ended; any other run still here (an error in
        # the loop, a database given up on) is stopped.
        self._observe()
        mono = self.clock.monotonic()
        deadline = mono + self.config.kill_after_s
        for run in self._live():
            if run.stop_reason is None:
                self._stop(run, "interrupted", mono)
        while self._live() and self.clock.monotonic() < deadline:
            self._observe()
            if self._live():
                self.clock.sleep(0.05)
        for run in self._live():
            self.workers.kill(run)
            self._exited(run)
        self._record_last()
        # Whatever of ours is still recorded running (a run that could not start and
        # whose error could not be written) ends interrupted, and the daemon stopped.
        try:
            if self._writable:
                self._record_unstarted()
                ids = self.store.interrupt_daemon_runs(
                    self.id, self.clock.now(), "interrupted: the daemon stopped before the run started; not re-run"
                )
                for run_id in ids:
                    self.reporter.event(f"run {run_id} interrupted: it had not started")
        except StoreError as exc:
            self.reporter.event(f"could not record this daemon stopped ({_said(exc)})")
        if self._waker is not None:
            self._waker.close()
        self._restore_signals()
        self.reporter.event(f"daemon {self.id} stopped")
        self.reporter.close()

    def _record_last(self) -> None:
        """At shutdown: write the outcomes that wait, trying again with a growing delay
        for up to ``record_wait_s``; then say, one line per run, what was not recorded."""
        deadline = self.clock.monotonic() + self.config.record_wait_s
        hopeless: str | None = None
        while self._pending and self._writable:
            if self._outage.due(self.clock.monotonic()):
                self._outage.attempt()
                try:
                    self._record_outcomes()
                except StoreError as exc:
                    hopeless = _said(exc)  # waiting cannot help (corrupt)
                    break
            left = deadline - self.clock.monotonic()
            if not self._pending or left <= 0:
                break
            self.clock.sleep(min(left, max(0.01, self._outage.retry_at - self.clock.monotonic())))
        why = self._given_up or hopeless or (
            self._outage.fault.condition if self._outage.fault else "the database refused it"
        )
        for run in self._pending:
            detail = self._detail(run, run.outcome or "error")
            exit_code, signum = run.exit_status()
            self.reporter.event(
                f"run {run.run_id} ({run.task}) could not be recorded: it ended {run.outcome}"
                + (f" ({detail})" if detail else "")
                + f" at {iso_local(run.ended_at or self.clock.now())}"
                + (f", exit code {exit_code}" if exit_code is not None else "")
                + (f", signal {signum}" if signum else "")
                + f"; {why}"
            )
            self.workers.close(run)
        self._pending.clear()

    def _status_text(self) -> str:
        parts = [f"{len(self.active)}/{self.config.workers} running"]
        if self.stopping:
            parts.append("stopping")
        elif self._tick_at is not None:
            parts.append(f"next due {self._tick_at.astimezone():%Y-%m-%d %H:%M:%S}")
        else:
            parts.append("nothing scheduled")
        return ", ".join(parts)


def _said(exc: StoreError) -> str:
    """A store error in the daemon's log: a condition in its short words."""
    return exc.condition if isinstance(exc, StoreFault) else str(exc)


def _app_db(store: Store) -> str:
    """The application database a task's connection opens: ``BGPROC_APP_DB``, else the
    store's own file (none for a store that is not kept in a file)."""
    chosen = os.environ.get("BGPROC_APP_DB") or (str(store.path) if store.path is not None else "")
    return os.path.abspath(chosen) if chosen else ""


__all__ = ["Daemon", "DaemonConfig"]
