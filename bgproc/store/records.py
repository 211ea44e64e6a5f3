"""Value objects that the store returns: tasks, requests, runs, daemons.

Frozen and keyword-only; instants are aware datetimes in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..reruns import RetryPolicy
from ..timing import Timing

RUN_STATUSES = (
    "running", "success", "error", "timeout", "cancelled", "interrupted", "skipped", "missed",
)


@dataclass(frozen=True, kw_only=True)
class TaskRecord:
    name: str
    import_path: str
    module: str
    search_path: str | None
    params_type: str
    fields: list[dict[str, Any]]
    description: str
    timeout_s: float
    registered_at: datetime | None = None
    updated_at: datetime | None = None
    unregistered_at: datetime | None = None
    retries: int = 0
    retry_delay_s: float | None = None
    recover: bool = False

    def policy(self) -> RetryPolicy:
        return RetryPolicy.of(retries=self.retries, retry_delay_s=self.retry_delay_s, recover=self.recover)


@dataclass(frozen=True, kw_only=True)
class RequestRecord:
    id: int
    task: str
    params: bytes
    timing: Timing
    status: str
    next_run_at: datetime | None
    timeout_s: float | None
    allow_overlap: bool
    user: str
    created_at: datetime
    updated_at: datetime
    last_run_status: str | None = None
    last_run_at: datetime | None = None
    manual_at: datetime | None = None
    # Its own retry policy (None: the task's), and the task's where it was read too.
    retries: int | None = None
    retry_delay_s: float | None = None
    recover: bool | None = None
    task_policy: RetryPolicy | None = None
    # The retry or recovery waiting (the earliest, if several): when it is due, and which.
    follow_up_at: datetime | None = None
    follow_up_reason: str | None = None

    def policy(self) -> RetryPolicy:
        """The retry policy its runs follow: its own values over its task's."""
        return RetryPolicy.of(
            retries=self.retries, retry_delay_s=self.retry_delay_s, recover=self.recover, task=self.task_policy
        )


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    id: int
    request_id: int
    task: str
    status: str
    reason: str | None
    planned_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    exit_code: int | None
    signal: int | None
    daemon_id: str | None
    pid: int | None
    cpu_s: float | None
    max_rss_kb: int | None
    detail: str | None
    missed_count: int | None
    missed_until: datetime | None
    progress_done: float | None
    progress_total: float | None
    progress_message: str | None
    cancel_requested_at: datetime | None
    log_head: str | None = None
    log_tail: str | None = None
    log_dropped: int = 0
    attempt: int = 1  # 1 for a first run; a retry's is one more than the run it retries
    retry_of: int | None = None  # the run this one retries or recovers
    retries: int = 0  # its request's retries now (for "attempt 2 of 4")
    followed_by: int | None = None  # the run that retried or recovered this one
    host: str | None = None  # the plain host name of the daemon that recorded it (None: unknown)

    def duration_s(self, now: datetime | None = None) -> float | None:
        """Seconds from start to end, or to ``now`` while it runs."""
        if self.started_at is None:
            return None
        end = self.ended_at or now
        return None if end is None else (end - self.started_at).total_seconds()

    def lateness_s(self) -> float | None:
        if self.started_at is None or self.planned_at is None:
            return None
        return (self.started_at - self.planned_at).total_seconds()

    @property
    def log(self) -> str:
        """The whole stored process log, with a marker where the middle was dropped."""
        head, tail = self.log_head or "", self.log_tail or ""
        if self.log_dropped:
            marker = f"[... {self.log_dropped} bytes of log dropped ...]\n"
            if head and not head.endswith("\n"):
                marker = "\n" + marker
            return head + marker + tail
        return head + tail


@dataclass(frozen=True, kw_only=True)
class DaemonRecord:
    id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    workers: int
    # Seconds since its last heartbeat by the database's clock, read with the row, on
    # a store whose database keeps the time (None: the judge's own clock decides).
    silent_s: float | None = None
