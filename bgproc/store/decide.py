"""What a claim pass does with one due request: start a run, skip the slot, or wait.

Pure: no I/O, "now" an argument, so each rule is tested without processes. Every
store's claim pass (``claiming``) applies these rules inside its transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..timing import BACKLOG_LIMIT
from .records import RequestRecord


@dataclass(frozen=True, kw_only=True)
class Claim:
    """What to do with one due request: ``start`` a run, ``skip`` the slot (a
    ``skipped`` row), ``wait`` (nothing written), or ``drop`` a retry or recovery."""

    action: str
    reason: str | None = None  # the run's reason: schedule, now, catch-up, manual, retry, recovery
    planned_at: datetime | None = None
    missed: int = 0  # later slots coalesced into this run (a ``missed`` row), or skipped with it
    missed_until: datetime | None = None
    advance: bool = False  # move the request on to ``next_run_at`` (None: complete)
    next_run_at: datetime | None = None
    manual: bool = False  # a manual run: the request's timing is left alone
    why: str = ""
    attempt: int = 1
    retry_of: int | None = None  # the run a retry or recovery follows up


def decide(request: RequestRecord, *, now: datetime, due_by: datetime, busy: bool, free: int) -> Claim:
    """What to do with ``request``, due by ``due_by``, at ``now``: ``busy`` if a run of
    it is going, ``free`` worker slots left. Pure.

    A recurring request's slots up to the later of the two are handled now (run,
    coalesced or skipped), and it moves on to its first fire after that: never to a
    slot at or before one it has had, even when ``now`` is the earlier (the clock
    was set back after the slot fell due)."""
    blocked = busy and not request.allow_overlap
    manual_due = request.manual_at is not None and request.manual_at <= due_by
    planned = request.next_run_at
    scheduled_due = request.status == "scheduled" and planned is not None and planned <= due_by
    if manual_due and not blocked:
        # Asked for by hand (`bgproc run`): once, now, the timing untouched.
        if free <= 0:
            return Claim(action="wait", why="no free worker")
        return Claim(action="start", reason="manual", planned_at=request.manual_at, manual=True)
    if not scheduled_due or planned is None:
        # Like a one-time run, a manual run waits for the previous run rather than skip.
        return Claim(action="wait", why="the previous run is still going")
    timing = request.timing
    upto = max(now, due_by)
    if blocked and not timing.recurring:
        return Claim(action="wait", why="the previous run is still going")
    if blocked:
        later, last = timing.backlog(planned, upto)
        detail = "the previous run was still going"
        if later:
            detail += f"; {slots_text(later)} after it, up to {iso_local(last)}, skipped with it"
        return Claim(
            action="skip", planned_at=planned, missed=later, missed_until=last, advance=True,
            next_run_at=timing.next_fire(upto), why=detail,
        )
    if free <= 0:
        return Claim(action="wait", why="no free worker")
    later, last = timing.backlog(planned, upto) if timing.recurring else (0, None)
    reason = "catch-up" if later else ("now" if timing.kind == "now" else "schedule")
    return Claim(
        action="start", reason=reason, planned_at=planned, missed=later, missed_until=last, advance=True,
        next_run_at=timing.next_fire(upto) if timing.recurring else None,
    )


def decide_rerun(
    request: RequestRecord, *, reason: str, attempt: int, retry_of: int, due_at: datetime, busy: bool, free: int
) -> Claim:
    """What to do with a retry or recovery (``reason``) of run ``retry_of`` that is
    due: it waits behind the rules a run of its request meets (overlap, free
    workers), and is dropped if its request was unscheduled meanwhile. Pure."""
    if request.status == "unscheduled":
        return Claim(action="drop", why=f"{reason} dropped: its request was unscheduled")
    if busy and not request.allow_overlap:
        return Claim(action="wait", why="the previous run is still going")
    if free <= 0:
        return Claim(action="wait", why="no free worker")
    return Claim(action="start", reason=reason, planned_at=due_at, attempt=attempt, retry_of=retry_of)


def iso_local(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone().isoformat(timespec="seconds")


def slots_text(count: int) -> str:
    return f"{count}{'+' if count >= BACKLOG_LIMIT else ''} more slot{'s' if count != 1 else ''}"
