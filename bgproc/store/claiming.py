"""The claim pass, written once for every store.

What a daemon does with due work is decided by the pure rules of ``decide``; this
module records those decisions through a narrow interface of reads and writes
(``ClaimTransaction``) that a store provides inside its own transaction, with its
own locking (SQLite: one writer at a time; PostgreSQL: rows locked, others
skipped). So each store differs only in how it finds and locks due work, never
in what claiming means.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ..errors import StoreConflict, StoreFault
from .base import ClaimedRun, ClaimResult
from .decide import Claim, decide, decide_rerun, iso_local, slots_text
from .records import RequestRecord, RunRecord, TaskRecord


@dataclass(frozen=True, kw_only=True)
class UnloadableRequest:
    """A due request whose stored row cannot be read back (a time zone this host's
    tzdata lacks, a damaged timing): claiming records an error and unschedules it."""

    id: int
    task: str
    reason: str
    planned_at: datetime | None
    manual: bool


@dataclass(frozen=True, kw_only=True)
class DueRerun:
    """A retry or a recovery due (``reason``): a new run of ``request`` that follows
    up run ``run_id``, with its attempt number."""

    id: int
    run_id: int
    reason: str
    attempt: int
    due_at: datetime
    request: RequestRecord | UnloadableRequest

    @property
    def request_id(self) -> int:
        return self.request.id


@dataclass(frozen=True, kw_only=True)
class DueWork:
    """What one claim pass acts on, oldest first, and whether more due work that
    could start was left for another pass."""

    items: list[RequestRecord | UnloadableRequest | DueRerun]
    more: bool


class ClaimTransaction(Protocol):
    """The reads and writes of a claim pass, all inside one transaction of the store
    that holds whatever locks make its claims exclusive. A write that would record
    an occurrence twice raises ``StoreConflict``; a condition of the database, a
    ``StoreFault`` (the whole pass is then undone)."""

    def daemon_stopped(self, daemon_id: str) -> bool:
        """Whether a daemon's row says it stopped, or is gone."""
        ...

    def due_requests(self, now: datetime, limit: int) -> DueWork:
        """Up to ``limit`` fires, manual runs, retries and recoveries due by ``now`` that
        can start (see ``Store.next_due_at``), and every recurring request due whose
        run still goes (its slot is skipped: it takes no worker), oldest first, locked
        for this transaction. A row that cannot be read back is an ``UnloadableRequest``."""
        ...

    def busy_requests(self) -> set[int]:
        """Requests with a run going (any daemon)."""
        ...

    def next_due_at(self, after: datetime | None = None) -> datetime | None: ...

    def savepoint(self) -> AbstractContextManager[None]:
        """A block whose writes alone are undone if it raises."""
        ...

    def get_task(self, name: str) -> TaskRecord | None: ...

    def insert_run(
        self,
        *,
        request_id: int,
        task: str,
        status: str,
        now: datetime,
        reason: str | None = None,
        planned_at: datetime | None = None,
        started_at: datetime | None = None,
        daemon_id: str | None = None,
        host: str | None = None,
        detail: str | None = None,
        missed_count: int | None = None,
        missed_until: datetime | None = None,
        attempt: int = 1,
        retry_of: int | None = None,
    ) -> int: ...

    def finish_run(self, run_id: int, *, status: str, ended_at: datetime, detail: str | None = None) -> bool:
        """As ``Store.finish_run``, inside this transaction (its follow-up included)."""
        ...

    def latest_run_row(self, request_id: int) -> RunRecord | None:
        """A request's newest run row of any status (without its log)."""
        ...

    def extend_skipped(self, run_id: int, *, count: int, until: datetime, detail: str) -> None:
        """A ``skipped`` row now stands for ``count`` more slots after its own, up to ``until``."""
        ...

    def advance_request(self, request_id: int, next_run_at: datetime | None, now: datetime) -> None:
        """Move a request to its next fire, or mark it complete when there is none."""
        ...

    def clear_manual_run(self, request_id: int) -> None: ...

    def unschedule_unloadable(self, request_id: int, now: datetime) -> None:
        """No further fires or manual run for a request that cannot be loaded."""
        ...

    def take_rerun(self, rerun_id: int) -> None:
        """A retry or recovery was claimed or dropped: it is no longer due."""
        ...

    def add_run_note(self, run_id: int, note: str) -> None:
        """Append to a run's detail."""
        ...


def claim_due(
    first_due: Callable[[], datetime | None],
    transaction: Callable[[], AbstractContextManager[ClaimTransaction]],
    daemon: str,
    now: datetime,
    due_by: datetime,
    free: int,
    *,
    limit: int,
    registered: bool,
    host: str | None = None,
) -> ClaimResult:
    """``Store.claim_due``: a cheap read of what is due first, then, only when
    something is, the pass inside ``transaction()``; events are told after the
    commit, never while holding the lock."""
    first = first_due()
    if first is None or first > due_by:
        return ClaimResult(next_due=first)
    with transaction() as txn:
        result = _Pass(txn, daemon, now, due_by, host).run(free, limit, registered)
    return result


Item = RequestRecord | UnloadableRequest | DueRerun
Outcome = tuple[ClaimedRun | None, int]  # the run to start, if any; 1 if anything was written


class _Pass:
    """One claim pass inside one transaction."""

    def __init__(self, txn: ClaimTransaction, daemon: str, now: datetime, by: datetime, host: str | None) -> None:
        self.txn, self.daemon, self.now, self.by = txn, daemon, now, by
        self.host = host  # recorded on every row this pass writes
        self.events: list[str] = []
        self.again = False  # something due is left for the next pass to start

    def run(self, free: int, limit: int, registered: bool) -> ClaimResult:
        if registered and self.txn.daemon_stopped(self.daemon):
            return ClaimResult(declared_dead=True, next_due=self.txn.next_due_at(after=max(self.now, self.by)))
        # No more than the free workers can start: a backlog costs nothing here.
        work = self.txn.due_requests(self.by, max(0, min(free, limit)))
        busy = self.txn.busy_requests() if work.items else set()
        claimed: list[ClaimedRun] = []
        acted = 0
        for item in work.items:
            request_id = item.request_id if isinstance(item, DueRerun) else item.id
            started, did = self._one(item, request_id in busy, free - len(claimed))
            acted += did
            if started is not None:
                claimed.append(started)
                busy.add(request_id)
        # Rows were acted on, workers are left and more waits behind them (a request
        # could not be loaded, its task is gone...): another pass at once. Otherwise
        # what was due was acted on, waits for its run going (a run ending wakes the
        # daemon) or for a worker (one ending wakes it): the next pass is at the next
        # fire after now.
        more = (work.more and len(claimed) < free and acted > 0) or self.again
        return ClaimResult(
            runs=claimed, events=self.events, more=more,
            next_due=self.txn.next_due_at(after=max(self.now, self.by)),
        )

    def _one(self, item: Item, busy: bool, free: int) -> Outcome:
        if isinstance(item, DueRerun):
            return self._rerun(item, busy, free)
        if isinstance(item, UnloadableRequest):
            self._reject(item)
            return None, 1
        try:
            with self.txn.savepoint():
                return self._request(item, busy, free)
        except StoreFault:
            raise  # the database, not this request
        except StoreConflict as exc:
            # The schema refused a second record of an occurrence (a bug in claiming):
            # nothing runs twice; the request stops with an error run that says so.
            rejected = self._rejected(item, "")
            why = f"its run at {iso_local(rejected.planned_at)} is already recorded ({exc})"
            self._reject(dataclasses.replace(rejected, reason=why, planned_at=None))
            return None, 1
        except Exception as exc:  # noqa: BLE001 - one request that cannot be handled must not stop the rest
            self._reject(self._rejected(item, f"{type(exc).__name__}: {exc}"))
            return None, 1

    def _rejected(self, item: RequestRecord, reason: str) -> UnloadableRequest:
        """A due request that could not be handled, as one that cannot be loaded."""
        manual = item.manual_at is not None and item.manual_at <= self.by
        return UnloadableRequest(
            id=item.id, task=item.task, reason=reason, manual=manual,
            planned_at=item.manual_at if manual else item.next_run_at,
        )

    def _request(self, request: RequestRecord, busy: bool, free: int) -> Outcome:
        """Decide and record one due request (inside a savepoint)."""
        decision = decide(request, now=self.now, due_by=self.by, busy=busy, free=free)
        if decision.action == "wait":
            return None, 0
        started = self._apply(request, decision)
        if decision.manual and started is not None:
            self._after_manual(request, free - 1)
        return started, 1

    def _rerun(self, item: DueRerun, busy: bool, free: int) -> Outcome:
        """Decide and record one retry or recovery due: a new run linked to the run it
        follows up, or nothing if it must wait or is dropped (at most once: a
        follow-up that cannot be made is not tried again)."""
        request = item.request
        if isinstance(request, UnloadableRequest):
            self._drop_rerun(item, f"{item.reason} dropped: its request cannot be loaded")
            self._reject(request)
            return None, 1
        try:
            with self.txn.savepoint():
                return self._start_rerun(item, request, busy, free)
        except StoreFault:
            raise  # the database, not this follow-up
        except Exception as exc:  # noqa: BLE001 - one follow-up that cannot be made must not stop the rest
            self._drop_rerun(item, f"{item.reason} dropped: {type(exc).__name__}: {exc}")
            return None, 1

    def _start_rerun(self, item: DueRerun, request: RequestRecord, busy: bool, free: int) -> Outcome:
        decision = decide_rerun(
            request, reason=item.reason, attempt=item.attempt, retry_of=item.run_id, due_at=item.due_at,
            busy=busy, free=free,
        )
        if decision.action == "wait":
            return None, 0
        task = self.txn.get_task(request.task)
        if decision.action == "drop" or task is None:
            why = decision.why or f"{item.reason} dropped: task {request.task!r} is no longer registered"
            self._drop_rerun(item, why)
            return None, 1
        run_id = self.txn.insert_run(
            host=self.host,
            request_id=request.id, task=request.task, status="running", now=self.now, reason=item.reason,
            planned_at=item.due_at, started_at=self.now, daemon_id=self.daemon, attempt=item.attempt,
            retry_of=item.run_id,
        )
        self.txn.take_rerun(item.id)
        self.events.append(
            f"claimed run {run_id} (request {request.id}, {request.task}, {item.reason} of run {item.run_id}, "
            f"attempt {item.attempt})"
        )
        return ClaimedRun(run_id, request, task), 1

    def _drop_rerun(self, item: DueRerun, why: str) -> None:
        self.txn.take_rerun(item.id)
        self.txn.add_run_note(item.run_id, why)
        self.events.append(f"run {item.run_id}: {why}")

    def _after_manual(self, request: RequestRecord, free: int) -> None:
        """A manual run just started: a scheduled slot due as well meets it as it would
        any running run (skipped, or started in a later pass if overlap is allowed),
        rather than being left due behind it."""
        rest = dataclasses.replace(request, manual_at=None)
        follow = decide(rest, now=self.now, due_by=self.by, busy=True, free=free)
        if follow.action == "skip":
            self._apply(rest, follow)
        elif follow.action == "start":
            self.again = True  # overlap allowed: the next pass starts it

    def _apply(self, request: RequestRecord, decision: Claim) -> ClaimedRun | None:
        if decision.action == "skip":
            self._record_skip(request, decision)
            self._advance(request, decision)
            self.events.append(
                f"request {request.id} ({request.task}): slot {iso_local(decision.planned_at)} skipped, "
                "previous run still going"
            )
            return None
        return self._start(request, decision)

    def _start(self, request: RequestRecord, decision: Claim) -> ClaimedRun | None:
        planned = decision.planned_at
        task = self.txn.get_task(request.task)
        run_id = self.txn.insert_run(
            host=self.host,
            request_id=request.id, task=request.task, status="running", now=self.now, reason=decision.reason,
            planned_at=planned, started_at=self.now, daemon_id=self.daemon,
        )
        if decision.missed:
            self.txn.insert_run(
                host=self.host,
                request_id=request.id, task=request.task, status="missed", now=self.now,
                planned_at=planned, missed_count=decision.missed, missed_until=decision.missed_until,
                detail=f"{slots_text(decision.missed)} after {iso_local(planned)} up to "
                f"{iso_local(decision.missed_until)} fell due before a daemon could run them; "
                f"coalesced into run {run_id}",
            )
        if decision.manual:
            self.txn.clear_manual_run(request.id)
        elif decision.advance:
            self._advance(request, decision)
        if task is None:
            self.txn.finish_run(
                run_id, status="error", ended_at=self.now,
                detail=f"task {request.task!r} is not registered; register its module again",
            )
            self.events.append(f"run {run_id}: task {request.task} is not registered")
            return None
        self.events.append(
            f"claimed run {run_id} (request {request.id}, {request.task}, {decision.reason}, "
            f"planned {iso_local(planned)})"
        )
        return ClaimedRun(run_id, request, task)

    def _record_skip(self, request: RequestRecord, decision: Claim) -> None:
        """One ``skipped`` row per run that blocked its slots: while the same run goes
        on, further skipped slots extend the row (a per-second request behind a
        ten-minute run is one row, not six hundred)."""
        assert decision.planned_at is not None
        # As on ``missed`` rows, missed_count counts the slots after planned_at.
        last = decision.missed_until or decision.planned_at
        previous = self.txn.latest_run_row(request.id)
        if previous is not None and previous.status == "skipped" and previous.planned_at is not None:
            further = (previous.missed_count or 0) + 1 + decision.missed
            self.txn.extend_skipped(
                previous.id, count=further, until=last,
                detail=f"the previous run was still going; {further + 1} slots skipped, "
                f"{iso_local(previous.planned_at)} up to {iso_local(last)}",
            )
            return
        self.txn.insert_run(
            host=self.host,
            request_id=request.id, task=request.task, status="skipped", now=self.now,
            reason="schedule", planned_at=decision.planned_at, detail=decision.why,
            missed_count=decision.missed or None, missed_until=decision.missed_until,
        )

    def _advance(self, request: RequestRecord, decision: Claim) -> None:
        """Move the request on to its next fire; a schedule with none left is complete,
        and the operator is told why (its finish, or the end of the calendar)."""
        self.txn.advance_request(request.id, decision.next_run_at, self.now)
        if decision.next_run_at is None and request.timing.recurring:
            self.events.append(f"request {request.id} ({request.task}) is complete: {request.timing.end_reason()}")

    def _reject(self, item: UnloadableRequest) -> None:
        """A due request that cannot be loaded or handled: an error run says why, and
        the request is unscheduled so that it does not fail again at every pass."""
        detail = (
            f"request {item.id} cannot be run: {item.reason}; it is unscheduled. "
            f"Fix the cause (a time zone missing from this host's tzdata, a damaged timing), "
            f"then reschedule it"
        )
        run_id = self.txn.insert_run(
            host=self.host,
            request_id=item.id, task=item.task, status="running", now=self.now,
            reason="manual" if item.manual else "schedule", planned_at=item.planned_at, started_at=self.now,
            daemon_id=self.daemon,
        )
        self.txn.finish_run(run_id, status="error", ended_at=self.now, detail=detail)
        self.txn.unschedule_unloadable(item.id, now=self.now)
        self.events.append(f"run {run_id}: {detail}")
