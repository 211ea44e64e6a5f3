"""Rows to records: the SELECTs that read whole records, and their conversion.

psycopg gives instants as aware datetimes (the session is in UTC), ``bytea`` as
bytes and ``jsonb`` as Python values, so a row is a record nearly as it is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ...reruns import RetryPolicy
from ...timing import Timing
from ..claiming import DueRerun, UnloadableRequest
from ..records import DaemonRecord, RequestRecord, RunRecord, TaskRecord

REQUEST_SELECT = """
    SELECT r.*,
        (SELECT status FROM runs WHERE request_id = r.id AND status NOT IN ('skipped', 'missed')
            ORDER BY id DESC LIMIT 1) AS last_run_status,
        (SELECT started_at FROM runs WHERE request_id = r.id AND status NOT IN ('skipped', 'missed')
            ORDER BY id DESC LIMIT 1) AS last_run_at,
        t.retries AS task_retries, t.retry_delay_s AS task_retry_delay_s, t.recover AS task_recover
    FROM requests r LEFT JOIN tasks t ON t.name = r.task
"""

# For "attempt 2 of 4" and "retried by run 18": the request's retries now, and the
# run that followed this one up (both found by key).
_RUN_FOLLOW_UPS = (
    "(SELECT COALESCE(q.retries, t.retries, 0) FROM requests q LEFT JOIN tasks t ON t.name = q.task "
    "WHERE q.id = runs.request_id) AS request_retries, "
    "(SELECT f.id FROM runs f WHERE f.retry_of = runs.id) AS followed_by"
)

# A daemon's row, with the seconds since its last heartbeat by the server's clock.
DAEMON_SELECT = "SELECT *, EXTRACT(EPOCH FROM clock_timestamp() - heartbeat_at)::float8 AS silent_s FROM daemons"


def run_select(with_log: bool) -> str:
    if with_log:
        return (
            "SELECT runs.*, run_logs.head AS log_head, run_logs.tail AS log_tail, "
            f"COALESCE(run_logs.dropped_bytes, 0) AS log_dropped, {_RUN_FOLLOW_UPS} "
            "FROM runs LEFT JOIN run_logs ON run_logs.run_id = runs.id"
        )
    # The monitor's list shows the log's last line only: take it from the tail
    # (or the head's end) without loading whole logs.
    return (
        "SELECT runs.*, NULL AS log_head, "
        "right(CASE WHEN run_logs.tail != '' THEN run_logs.tail ELSE run_logs.head END, 400) "
        f"AS log_tail, 0 AS log_dropped, {_RUN_FOLLOW_UPS} "
        "FROM runs LEFT JOIN run_logs ON run_logs.run_id = runs.id"
    )


def task(row: dict[str, Any]) -> TaskRecord:
    return TaskRecord(
        name=row["name"], import_path=row["import_path"], module=row["module"],
        search_path=row["search_path"], params_type=row["params_type"], fields=row["fields"],
        description=row["description"], timeout_s=row["timeout_s"], registered_at=row["registered_at"],
        updated_at=row["updated_at"], unregistered_at=row["unregistered_at"], retries=row["retries"],
        retry_delay_s=row["retry_delay_s"], recover=row["recover"],
    )


def request(row: dict[str, Any]) -> RequestRecord:
    timing = Timing.from_dict(row["timing"], zone=row["timezone"], start=row["start_at"], finish=row["finish_at"])
    task_policy = None
    if row.get("task_retries") is not None:  # read with its task
        task_policy = RetryPolicy.of(
            retries=row["task_retries"], retry_delay_s=row["task_retry_delay_s"], recover=row["task_recover"]
        )
    return RequestRecord(
        id=row["id"], task=row["task"], params=bytes(row["params"]), timing=timing, status=row["status"],
        next_run_at=row["next_run_at"], timeout_s=row["timeout_s"], allow_overlap=row["allow_overlap"],
        user=row["user"], created_at=row["created_at"], updated_at=row["updated_at"],
        last_run_status=row.get("last_run_status"), last_run_at=row.get("last_run_at"),
        manual_at=row.get("manual_at"), retries=row["retries"], retry_delay_s=row["retry_delay_s"],
        recover=row["recover"], task_policy=task_policy,
    )


def run(row: dict[str, Any]) -> RunRecord:
    return RunRecord(
        id=row["id"], request_id=row["request_id"], task=row["task"], status=row["status"],
        reason=row["reason"], planned_at=row["planned_at"], started_at=row["started_at"],
        ended_at=row["ended_at"], exit_code=row["exit_code"], signal=row["signal"],
        daemon_id=row["daemon_id"], pid=row["pid"], cpu_s=row["cpu_s"],
        max_rss_kb=row["max_rss_kb"], detail=row["detail"], missed_count=row["missed_count"],
        missed_until=row["missed_until"], progress_done=row["progress_done"],
        progress_total=row["progress_total"], progress_message=row["progress_message"],
        cancel_requested_at=row["cancel_requested_at"], log_head=row["log_head"],
        log_tail=row["log_tail"], log_dropped=row["log_dropped"] or 0, attempt=row["attempt"],
        retry_of=row["retry_of"], retries=row.get("request_retries") or 0, followed_by=row.get("followed_by"),
        host=row["host"],
    )


def daemon(row: dict[str, Any]) -> DaemonRecord:
    return DaemonRecord(
        id=row["id"], host=row["host"], pid=row["pid"], started_at=row["started_at"],
        heartbeat_at=row["heartbeat_at"], stopped_at=row["stopped_at"], workers=row["workers"],
        silent_s=row.get("silent_s"),
    )


def rerun(row: dict[str, Any], request: RequestRecord | UnloadableRequest) -> DueRerun:
    return DueRerun(
        id=row["id"], run_id=row["run_id"], reason=row["reason"], attempt=row["attempt"], due_at=row["due_at"],
        request=request,
    )


def policy_columns(policy: dict[str, Any] | None) -> dict[str, Any]:
    """The requests columns of retry policy values given as ``retries``,
    ``retry_delay_s`` and ``recover``."""
    columns = {}
    for name, value in (policy or {}).items():
        if name not in ("retries", "retry_delay_s", "recover"):
            raise ValueError(f"not a retry policy value: {name}")
        columns[name] = value
    return columns


def unloadable(row: dict[str, Any], now: datetime, exc: Exception) -> UnloadableRequest:
    manual_at, next_run_at = row.get("manual_at"), row.get("next_run_at")
    manual = manual_at is not None and manual_at <= now and not (
        row.get("status") == "scheduled" and next_run_at is not None and next_run_at <= now
    )
    return UnloadableRequest(
        id=int(row["id"]), task=str(row.get("task")), reason=f"{type(exc).__name__}: {exc}",
        planned_at=manual_at if manual else next_run_at, manual=manual,
    )
