"""The dispatcher: claiming due runs through the store and starting them.

Claiming is the store's: one transaction (``Store.claim_due``) records the runs
and advances the requests, so each slot is claimed once however many daemons
share the database. The dispatcher knows when a claim pass has something to
do (the next due instant, whether the last pass left work behind), notices
the wall clock set back, and hands each claimed run to a worker. A claimed
run whose pid the database refuses for a moment starts at a later pass; a run
that cannot start at all is recorded as an error.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ..errors import StoreFault
from ..store import ClaimedRun, ClaimResult, RequestRecord, TaskRecord
from ..store.decide import iso_local

if TYPE_CHECKING:
    from ..clock import Clock
    from ..store import Store
    from .loop import DaemonConfig
    from .outage import Outage
    from .pool import Pool
    from .reporter import Reporter

# When a run was claimed, on the wall clock (its recorded start) and the monotonic one.
ClaimedAt = tuple[datetime, float]


class Dispatcher:
    """Claims what is due as worker slots allow, and starts it on ``pool``'s workers."""

    def __init__(
        self, store: Store, config: DaemonConfig, clock: Clock, reporter: Reporter, pool: Pool, outage: Outage
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.reporter = reporter
        self.pool = pool
        self.outage = outage
        self._lease = config.worker_lease()
        # The next time a claim pass has something to do (None: nothing scheduled),
        # whether that is known, and whether the last pass left work behind.
        self.tick_at: datetime | None = None
        self.due_stale = True
        self.backlogged = False
        # The wall clock as the last pass read it, and, after it was set back, the time it
        # had reached: what was due by then stays due until claimed (see ``note_wall``).
        self._wall_seen: datetime | None = None
        self._set_back_from: datetime | None = None
        # Runs claimed whose start waits for the database to take their pid.
        self.to_start: list[tuple[ClaimedRun, ClaimedAt]] = []
        # Runs that could not start, whose error could not be written yet: run id -> detail.
        self.unrecorded: dict[int, str] = {}

    # ------------------------------------------------------------------
    # Claiming

    def should_tick(self, now: datetime) -> bool:
        """Whether a claim pass at ``now`` has something to do, or may have."""
        return self.due_stale or self.backlogged or (self.tick_at is not None and self.tick_at <= self.due_by(now))

    def claim(
        self, daemon: str, now: datetime, due_by: datetime | None, *, busy: int, registered: bool, host: str
    ) -> ClaimResult:
        """One claim pass for ``daemon`` on ``host``, with ``busy`` worker slots taken by
        live runs: the store records the runs, skipped slots and errors, and advances
        the requests; the operator is told what was done."""
        self.note_wall(now)
        by = due_by or self.due_by(now)
        # A run whose worker exited holds no slot, even while its outcome waits to be written.
        free = self.config.workers - busy - len(self.to_start)
        self.backlogged = False
        result = self.store.claim_due(
            daemon, now, by, free, limit=self.config.claim_batch, registered=registered, host=host
        )
        # Only once committed: a pass that failed is tried again.
        self.tick_at, self.backlogged, self.due_stale = result.next_due, result.more, False
        if self._set_back_from is not None:
            self._caught_up(self.store.next_due_at())
        for message in result.events:
            self.reporter.event(message)
        return result

    def delays(self, now: datetime, once_from: datetime | None) -> list[float]:
        """When a claim pass is next worth making (none: when something changes).
        ``once_from``: with ``once``, when the daemon started (later fires are not its)."""
        if self.backlogged or self.due_stale:
            return [0.0]
        if self.tick_at is None or (once_from is not None and self.tick_at > once_from):
            return []
        return [(self.tick_at - now).total_seconds()]

    # ------------------------------------------------------------------
    # The wall clock set back

    def note_wall(self, now: datetime) -> None:
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
        self.due_stale = True
        if seen - now >= timedelta(seconds=1):
            self.reporter.event(
                f"the system clock was set back by {(seen - now).total_seconds():.0f}s: what was due by "
                f"{iso_local(seen)} runs now; later fires wait for the clock to reach them"
            )

    def due_by(self, now: datetime) -> datetime:
        """What a claim pass at ``now`` takes: due by now, or by the time the clock had
        reached before it was set back, while something due by then is unclaimed."""
        if self._set_back_from is None:
            return now
        return max(now, self._set_back_from)

    def _caught_up(self, first: datetime | None) -> None:
        """After the clock was set back: once the earliest due fire (``first``) is past
        the time the clock had reached, what was due then is all claimed."""
        if self._set_back_from is not None and (first is None or first > self._set_back_from):
            self._set_back_from = None

    # ------------------------------------------------------------------
    # Starting runs

    def start(self, claimed: list[ClaimedRun], at: ClaimedAt, *, stopping: bool) -> None:
        """Start the runs claimed ``at``, and the spare worker again."""
        for item in claimed:
            self._start(item, at)
        if claimed:
            self.ensure_spare(stopping=stopping)

    def start_delayed(self) -> None:
        """Start the claimed runs whose start the database delayed, oldest first."""
        delayed, self.to_start = self.to_start, []
        for item, at in delayed:
            self._start(item, at)

    def _start(self, item: ClaimedRun, at: ClaimedAt) -> None:
        """Start a claimed run. A database that refuses the pid's write for now (busy,
        an I/O error) delays the start to a later pass: the run is claimed, so it
        must not fail for that; anything else fails the run, not the daemon."""
        run_id, request, task = item
        try:
            self._spawn(run_id, request, task, at)
        except StoreFault as fault:
            self.outage.write_failed(fault, self.clock.monotonic())
            self.to_start.append((item, at))
        except Exception as exc:  # noqa: BLE001 - the run fails, not the daemon (nor the others)
            self._spawn_failed(run_id, request.task, exc)

    def _spawn(self, run_id: int, request: RequestRecord, task: TaskRecord, at: ClaimedAt) -> None:
        """Hand a claimed run to a worker. Raises (OSError, StoreError) with no worker
        left behind."""
        timeout_s = request.timeout_s or task.timeout_s
        launched = self.pool.launch_for(task)
        try:
            # Before the job is sent: a run never goes on without its pid recorded.
            self.store.set_run_pid(run_id, launched.proc.pid)
        except BaseException:
            self.pool.discard(launched)
            raise
        run = self.pool.start(
            launched, run_id=run_id, request=request, task=task, timeout_s=timeout_s,
            startup_s=self.config.startup_timeout_s, lease=self._lease,
        )
        run.claimed_at, run.claimed_mono = at
        self.reporter.event(f"started run {run_id} ({request.task}) as pid {launched.proc.pid}")

    def _spawn_failed(self, run_id: int, task: str, exc: Exception) -> None:
        detail = f"could not start the worker: {type(exc).__name__}: {exc}"
        self.reporter.event(f"run {run_id} ({task}): {detail}")
        self.unrecorded[run_id] = detail
        self.due_stale = True  # the slot it was claimed for is free again
        self.record_unstarted()

    def record_unstarted(self) -> None:
        """Record the runs that could not start as errors (retried until written)."""
        for run_id, detail in list(self.unrecorded.items()):
            try:
                self.store.finish_run(run_id, status="error", ended_at=self.clock.now(), detail=detail)
            except StoreFault as fault:
                self.outage.write_failed(fault, self.clock.monotonic())
                return
            del self.unrecorded[run_id]

    def ensure_spare(self, *, stopping: bool) -> None:
        """Keep one worker started ahead, so that a claimed run need not wait for an
        interpreter to start (it still gets a process of its own)."""
        if stopping or not self.config.spare:
            return
        if not self.pool.wants_spare():
            self.pool.warm()  # runs are forked by the fork server: it is started ahead instead
            return
        if self.pool.spare is not None or self.config.once:
            return
        try:
            self.pool.ensure_spare()
        except OSError as exc:
            self.reporter.event(f"could not start a spare worker ({exc}); starting workers on demand")
