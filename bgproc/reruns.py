"""Retries and recovery, by choice: whether a run that ended is followed by another.

At-most-once is the default. A request (``--retries``, ``--retry-delay``,
``--recover``) or its task (``retries``, ``retry_delay``, ``recover``) may opt
in: a run that ended ``error`` or ``timeout`` is retried, after a backoff, as a
new run linked to it; a run that ended ``interrupted`` (its daemon stopped or
died) is started again once, at once. The request's values win over the task's.

Pure: no I/O; "now" and the jitter are arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# --retry-delay when none is given: the first retry waits this long.
DEFAULT_RETRY_DELAY_S = 30.0
# The wait doubles at each retry up to this (or the retry delay itself, if longer).
RETRY_DELAY_CAP_S = 3600.0
# Up to this fraction of the wait is added at random, so that runs that failed
# together (a database down for a moment) are not retried together.
JITTER = 0.25
MAX_RETRIES = 1000


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How a request's failed and interrupted runs are followed up."""

    retries: int = 0
    retry_delay_s: float = DEFAULT_RETRY_DELAY_S
    recover: bool = False

    @classmethod
    def of(
        cls,
        *,
        retries: int | None,
        retry_delay_s: float | None,
        recover: bool | None,
        task: RetryPolicy | None = None,
    ) -> RetryPolicy:
        """The request's own values (None: not given) over its task's."""
        base = task or cls()
        return cls(
            retries=base.retries if retries is None else retries,
            retry_delay_s=base.retry_delay_s if retry_delay_s is None else retry_delay_s,
            recover=base.recover if recover is None else recover,
        )


@dataclass(frozen=True, kw_only=True)
class FollowUp:
    """What follows a run that ended: a ``retry`` or a ``recovery`` run (``reason``),
    due at ``due_at``, or nothing (``reason`` None). ``note`` says which, for the
    ended run's detail ("" when there is nothing to say)."""

    reason: str | None
    attempt: int = 0
    due_at: datetime | None = None
    note: str = ""


def backoff_s(retry: int, delay_s: float, jitter: float) -> float:
    """Seconds before retry number ``retry`` (1 for the first): ``delay_s`` doubled at
    each retry, plus ``jitter`` (0 to 1) times a quarter of it, never more than an
    hour (or ``delay_s`` itself, if longer)."""
    cap = max(RETRY_DELAY_CAP_S, delay_s)
    # Doubling stops at the cap: 2**1000 seconds is no wait anyone means.
    base = delay_s
    for _ in range(retry - 1):
        if base >= cap:
            break
        base *= 2
    return min(cap, min(base, cap) * (1 + JITTER * min(max(jitter, 0.0), 1.0)))


def follow_up(
    *,
    status: str,
    reason: str | None,
    attempt: int,
    policy: RetryPolicy,
    registered: bool,
    unscheduled: bool,
    now: datetime,
    jitter: float,
) -> FollowUp:
    """What follows a run that ended with ``status`` at ``now``; ``reason`` and
    ``attempt`` are the run's, ``registered`` whether its task still is,
    ``unscheduled`` whether its request was unscheduled."""
    if status in ("error", "timeout") and policy.retries > 0:
        total = policy.retries + 1
        if attempt >= total:
            return FollowUp(reason=None, note=f"attempt {attempt} of {total}: no retries left")
        why_not = _why_not(registered, unscheduled, "retried")
        if why_not:
            return FollowUp(reason=None, note=why_not)
        due = now + timedelta(seconds=backoff_s(attempt, policy.retry_delay_s, jitter))
        return FollowUp(
            reason="retry", attempt=attempt + 1, due_at=due,
            note=f"retry as attempt {attempt + 1} of {total} at {due.astimezone().isoformat(timespec='seconds')}",
        )
    if status == "interrupted" and policy.recover:
        if reason == "recovery":
            return FollowUp(reason=None, note="not recovered again: it was itself a recovery run")
        why_not = _why_not(registered, unscheduled, "recovered")
        if why_not:
            return FollowUp(reason=None, note=why_not)
        return FollowUp(reason="recovery", attempt=attempt, due_at=now, note="to be recovered: started again once")
    return FollowUp(reason=None)


def _why_not(registered: bool, unscheduled: bool, done: str) -> str:
    if unscheduled:
        return f"not {done}: its request was unscheduled"
    if not registered:
        return f"not {done}: its task is no longer registered"
    return ""


def attempt_text(attempt: int, retries: int | None, reason: str | None, retry_of: int | None) -> str:
    """``2 of 4, retries run 17``: the monitor's attempt of a run."""
    text = f"{attempt}" + (f" of {max(retries + 1, attempt)}" if retries else "")
    if retry_of is not None:
        text += f", {'recovers' if reason == 'recovery' else 'retries'} run {retry_of}"
    return text
