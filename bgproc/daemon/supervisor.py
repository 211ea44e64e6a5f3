"""The supervisor: the runs this daemon started, until their outcome is recorded.

It reaps workers that exited and keeps at once how each run ended (wait status,
usage, end time, outcome), whatever the database does; the outcomes are
written in the order the runs ended when the database allows (on a full disk,
with the run's log cut to its tail rather than held back). It stops runs past
their deadline (the start-up limit, then the timeout), cancelled, or
interrupted by a stopping daemon: SIGTERM, then SIGKILL after ``kill_after_s``.
It flushes the runs' logs and progress, and has each worker's *lease* renewed
(``leases``).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import StoreError, StoreFault, StoreFull
from ..store import LogWrite
from ..store.decide import iso_local
from .leases import Leases
from .outage import said
from .runlog import stamp

if TYPE_CHECKING:
    from ..clock import Clock
    from ..store import Store
    from .active import ActiveRun
    from .loop import DaemonConfig
    from .outage import Outage
    from .pool import Pool
    from .reporter import Reporter

# On a full disk an outcome is recorded with its log cut to its last lines, this many
# bytes (then to nothing but the line that says so, if that does not fit either).
CUT_LOG_BYTES = 16 * 1024

# What a run's log is told when it is stopped, by reason.
_STOP_WHY = {
    "cancelled": "cancel requested",
    "interrupted": "the daemon is stopping",
}


class Supervisor:
    """The active runs of one daemon (``pool.runs``: started, their outcome not
    recorded yet): reaping, outcomes, deadlines, stops, cancels, log flushing and
    lease renewals. ``beaten``: when the last heartbeat the database took was sent."""

    def __init__(
        self, store: Store, config: DaemonConfig, clock: Clock, reporter: Reporter, pool: Pool, outage: Outage,
        beaten: Callable[[], float],
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.reporter = reporter
        self.pool = pool
        self.outage = outage
        self.leases = Leases(store, config, reporter, pool, outage, beaten)
        self.last_flush = 0.0  # monotonic
        # When every live run is stopped as interrupted (the daemon stopping), monotonic.
        self.stop_deadline: float | None = None
        # Runs whose worker exited, in that order, whose outcome is not written yet.
        self.pending: list[ActiveRun] = []

    def live(self) -> list[ActiveRun]:
        """The runs whose worker has not exited yet."""
        return [run for run in self.pool.runs.values() if not run.reaped]

    def running(self) -> list[ActiveRun]:
        """The live runs not being stopped."""
        return [run for run in self.live() if run.stop_reason is None]

    # ------------------------------------------------------------------
    # Reaping, recording how runs ended

    def reap(self) -> int:
        """Reap the workers that exited and record their outcomes; returns how many
        were reaped. An outcome the database refuses is kept and written later."""
        count = self.observe()
        self.record_outcomes()
        return count

    def observe(self) -> int:
        """Reap the workers that exited, keeping at once how each ended (wait status,
        usage, end time, outcome), whatever the database does; returns how many."""
        spare = self.pool.reap_spare()
        if spare is not None:
            self.reporter.event(f"the spare worker exited (code {spare.proc.returncode}); starting workers on demand")
        return sum(1 for run in self.live() if self._poll(run))

    def _poll(self, run: ActiveRun) -> bool:
        """Whether the run's worker has exited (reaped now, or before)."""
        if run.reaped:
            return True
        if not self.pool.poll(run):
            return False
        self._exited(run)
        return True

    def _exited(self, run: ActiveRun) -> None:
        """A run's worker was just reaped: how it ended now is the run's outcome, kept
        until it is written (deadlines and stops no longer apply to it)."""
        self.pool.drain(run)
        run.ended_mono = self.clock.monotonic()
        run.ended_at = run.end_at(run.ended_mono, self.clock.now())
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
        self.pending.append(run)

    def record_outcomes(self) -> None:
        """Write the outcomes that wait, in the order the runs ended; the first one the
        database refuses stops the rest (all kept, and tried again later)."""
        while self.pending:
            try:
                self._finish(self.pending[0])
            except StoreFault as fault:
                self.outage.write_failed(fault, self.clock.monotonic())
                return
            self.pending.pop(0)

    def _finish(self, run: ActiveRun) -> None:
        """Write an exited run's outcome and let the run go (raises ``StoreFault`` if it
        cannot be written: nothing is lost, call again). On a full disk the outcome is
        written with the log cut to its tail rather than held back."""
        outcome = run.outcome or "error"
        detail = describe(run, outcome)
        cut = None
        try:
            recorded = self._write_outcome(run, outcome, detail)
        except StoreFull as fault:
            try:
                recorded, cut = self._write_cut(run, outcome, detail, fault, CUT_LOG_BYTES)
            except StoreFull:
                recorded, cut = self._write_cut(run, outcome, detail, fault, 0)
        self.pool.close(run)
        assert run.ended_mono is not None
        took = run.ended_mono - run.spawned_mono
        shown = detail if cut is None else f"{detail}; {cut}" if detail else cut
        self.reporter.finished(run.run_id, run.task, outcome if recorded else f"{outcome} (not recorded)", shown, took)

    def _write_outcome(self, run: ActiveRun, outcome: str, detail: str | None) -> bool:
        """One transaction: the run's outcome and the rest of its log. Returns False if
        the run was recorded ended already (that record stands: the log says so)."""
        exit_code, signum = run.exit_status()
        ended_at = run.ended_at or self.clock.now()
        write, marks = log_write(run)
        recorded = self.store.finish_run(
            run.run_id, status=outcome, ended_at=ended_at, exit_code=exit_code, signal=signum,
            cpu_s=run.cpu_s(), max_rss_kb=run.max_rss_kb(), detail=detail, log=write,
        )
        written(run, marks)
        if not recorded and not run.noted:
            # Recorded ended already (interrupted, after this daemon was declared dead).
            run.log.add(
                stamp(ended_at),
                f"[bgproc] the run ended ({outcome}{', ' + detail if detail else ''}) "
                "after it had been recorded as ended; that record stands",
            )
            run.noted = True
            write, marks = log_write(run)
            self.store.write_logs([write] if write is not None else [])
            written(run, marks)
        return recorded

    def _write_cut(
        self, run: ActiveRun, outcome: str, detail: str | None, fault: StoreFull, keep: int
    ) -> tuple[bool, str]:
        """The database has no room for the run's log: write the outcome with the log cut
        to its last ``keep`` bytes, saying so in the log. Raises ``StoreFault`` if even
        that cannot be written. Returns whether it was recorded, and what was cut."""
        lost = run.log.cut(
            keep,
            f"{stamp(self.clock.now())} [bgproc] {fault.condition}: the log is cut to its last {keep} bytes; "
            "what came before them is not recorded",
        )
        recorded = self._write_outcome(run, outcome, detail)
        return recorded, f"database {fault.kind}: log cut to its last {keep} bytes ({lost} bytes not recorded)"

    # ------------------------------------------------------------------
    # Stopping runs

    def enforce_deadlines(self, mono: float) -> None:
        """Stop the runs past their deadline, SIGKILL those that outlived their SIGTERM
        by ``kill_after_s``, and interrupt every run at the stop deadline."""
        for run in self.live():
            if run.stop_reason is None and mono >= run.deadline:
                self.stop(run, "timeout", mono)
            elif run.term_at is not None and not run.killed and mono >= run.term_at + self.config.kill_after_s:
                run.log.add(stamp(self.clock.now()), "[bgproc] still running: SIGKILL sent")
                self.pool.signal_group(run, signal.SIGKILL)
                run.killed = True
        if self.stop_deadline is not None and mono >= self.stop_deadline:
            self.interrupt(self.running(), mono)

    def stop(self, run: ActiveRun, reason: str, mono: float, why: str | None = None) -> None:
        """SIGTERM to the run's process group, for ``reason`` (its outcome)."""
        if self._poll(run):
            return  # its worker exited first: it ended as it ended, not stopped
        run.stop_reason = reason
        run.term_at = mono
        why = why or (run.timeout_why() if reason == "timeout" else _STOP_WHY.get(reason, reason))
        run.log.add(
            stamp(self.clock.now()),
            f"[bgproc] {why}: SIGTERM sent, SIGKILL in {self.config.kill_after_s:g}s if still running",
        )
        self.reporter.event(f"run {run.run_id}: {reason}; sending SIGTERM to its process group")
        self.pool.signal_group(run, signal.SIGTERM)

    def interrupt(self, runs: list[ActiveRun], mono: float, why: str | None = None) -> None:
        """Stop ``runs`` as interrupted (the daemon stopping, or declared dead)."""
        for run in runs:
            self.stop(run, "interrupted", mono, why)

    def check_cancels(self) -> None:
        """Stop the runs whose cancel was asked for."""
        ids = self.store.cancel_requested([run.run_id for run in self.running()])
        mono = self.clock.monotonic()
        for run_id in ids:
            self.stop(self.pool.runs[run_id], "cancelled", mono)

    def end_runs(self) -> None:
        """At shutdown: runs that ended are kept as they ended; any other run (an error
        in the loop, a database given up on) is stopped, and killed after
        ``kill_after_s``."""
        self.observe()
        mono = self.clock.monotonic()
        deadline = mono + self.config.kill_after_s
        self.interrupt(self.running(), mono)
        while self.live() and self.clock.monotonic() < deadline:
            self.observe()
            if self.live():
                self.clock.sleep(0.05)
        for run in self.live():
            self.pool.kill(run)
            self._exited(run)

    def record_last(self, *, writable: bool, given_up: str | None) -> None:
        """At shutdown: write the outcomes that wait, trying again with a growing delay
        for up to ``record_wait_s``; then say, one line per run, what was not recorded.
        ``given_up``: why the daemon gave up on its database (nothing is tried)."""
        deadline = self.clock.monotonic() + self.config.record_wait_s
        hopeless: str | None = None
        while self.pending and writable:
            if self.outage.due(self.clock.monotonic()):
                self.outage.attempt()
                try:
                    self.record_outcomes()
                except StoreError as exc:
                    hopeless = said(exc)  # waiting cannot help (corrupt)
                    break
            left = deadline - self.clock.monotonic()
            if not self.pending or left <= 0:
                break
            self.clock.sleep(min(left, max(0.01, self.outage.retry_at - self.clock.monotonic())))
        why = given_up or hopeless or (
            self.outage.fault.condition if self.outage.fault else "the database refused it"
        )
        for run in self.pending:
            self._say_unrecorded(run, why)
            self.pool.close(run)
        self.pending.clear()

    def _say_unrecorded(self, run: ActiveRun, why: str) -> None:
        detail = describe(run, run.outcome or "error")
        exit_code, signum = run.exit_status()
        self.reporter.event(
            f"run {run.run_id} ({run.task}) could not be recorded: it ended {run.outcome}"
            + (f" ({detail})" if detail else "")
            + f" at {iso_local(run.ended_at or self.clock.now())}"
            + (f", exit code {exit_code}" if exit_code is not None else "")
            + (f", signal {signum}" if signum else "")
            + f"; {why}"
        )

    # ------------------------------------------------------------------
    # Logs, progress, leases

    def flush_in(self, mono: float) -> float:
        """Seconds until the runs' logs are next flushed (<= 0: now)."""
        return self.config.flush_s - (mono - self.last_flush)

    def unwritten(self) -> bool:
        """Whether a live run has output or progress not written yet."""
        return any(r.log.dirty or r.progress_dirty for r in self.pool.runs.values())

    def flush(self) -> None:
        """Write the live runs' new log lines and progress, together."""
        self.last_flush = self.clock.monotonic()
        self.pool.sample(self.clock.now())
        writes = [(run, *log_write(run)) for run in self.live() if run.log.dirty or run.progress_dirty]
        if not writes:
            return
        try:
            self.store.write_logs([write for _, write, _ in writes if write is not None])
        except StoreFault as fault:
            # The logs wait in memory (bounded), the rest of the pass goes on.
            self.outage.write_failed(fault, self.clock.monotonic())
            return
        for run, _, marks in writes:
            written(run, marks)

    def delays(self, mono: float) -> list[float]:
        """When the live runs need the loop next: deadlines, SIGKILLs, the stop deadline,
        their leases' renewal."""
        live = self.live()
        if not live:
            return []
        delays = [0.5]  # reap even if a SIGCHLD was lost
        delays += self.leases.delays(mono)
        for run in live:
            if run.term_at is None:
                delays.append(run.deadline - mono)
            elif not run.killed:
                delays.append(run.term_at + self.config.kill_after_s - mono)
        if self.stop_deadline is not None and any(r.stop_reason is None for r in live):
            delays.append(self.stop_deadline - mono)
        return delays


def log_write(run: ActiveRun) -> tuple[LogWrite | None, tuple[Any, Any]]:
    """A run's new log lines and progress to write (None: nothing new), and what to
    pass to ``written`` once committed."""
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


def written(run: ActiveRun, marks: tuple[Any, Any]) -> None:
    """What ``log_write`` gave was committed."""
    log_mark, progress = marks
    if log_mark is not None:
        run.log.written(log_mark)
    if progress is not None and run.progress is progress:
        run.progress_dirty = False


def describe(run: ActiveRun, outcome: str) -> str | None:
    """A run's detail for its outcome: how it was stopped, how its process ended."""
    how = run.how_ended()
    if outcome == "timeout":
        return f"{run.timeout_why()}; stopped ({how or 'exited'})"
    if outcome == "cancelled":
        return f"cancelled on request ({how or 'exited'})"
    if outcome == "interrupted" and run.stop_reason is None and run.lease_expired:
        return (
            f"the worker stopped the run: no word from this daemon within its lease of {run.lease_s:g}s "
            f"(the daemon was stopped or suspended, or cut off from its database) ({how or 'exited'})"
        )
    if outcome == "interrupted":
        return f"the daemon stopped; run stopped ({how or 'exited'})"
    if outcome == "error":
        return how or "failed"
    return None
