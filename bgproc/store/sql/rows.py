"""Rows to records: the SELECTs that read whole records, and their conversion
through a store's ``Dialect``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ...reruns import RetryPolicy
from ...timing import Timing
from ..claiming import DueRerun, UnloadableRequest
from ..records import DaemonRecord, RequestRecord, RunRecord, TaskRecord
from .connection import Dialect

REQUEST_SELECT = """
    SELECT r.*,
        (SELECT status FROM runs WHERE request_id = r.id AND status NOT IN ('skipped', 'missed')
            ORDER BY id DESC LIMIT 1) AS last_run_status,
        (SELECT started_at FROM runs WHERE request_id = r.id AND status NOT IN ('skipped', 'missed')
            ORDER BY id DESC LIMIT 1) AS last_run_at,
        (SELECT due_at FROM reruns WHERE request_id = r.id ORDER BY due_at, id LIMIT 1) AS follow_up_at,
        (SELECT reason FROM reruns WHERE request_id = r.id ORDER BY due_at, id LIMIT 1) AS follow_up_reason,
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


def run_select(d: Dialect, with_log: bool) -> str:
    if with_log:
        return (
            "SELECT runs.*, run_logs.head AS log_head, run_logs.tail AS log_tail, "
            f"COALESCE(run_logs.dropped_bytes, 0) AS log_dropped, {_RUN_FOLLOW_UPS} "
            "FROM runs LEFT JOIN run_logs ON run_logs.run_id = runs.id"
        )
    # The monitor's list shows the log's last line only: take it from the tail
    # (or the head's end) without loading whole logs.
    last_line = d.last_chars("CASE WHEN run_logs.tail != '' THEN run_logs.tail ELSE run_logs.head END", 400)
    return (
        f"SELECT runs.*, NULL AS log_head, {last_line} AS log_tail, 0 AS log_dropped, {_RUN_FOLLOW_UPS} "
        "FROM runs LEFT JOIN run_logs ON run_logs.run_id = runs.id"
    )


def task(d: Dialect, row: dict[str, Any]) -> TaskRecord:
    return TaskRecord(
        name=row["name"], import_path=row["import_path"], module=row["module"],
        search_path=row["search_path"], params_type=row["params_type"],
        fields=d.to_json(row["fields"]), description=row["description"],
        timeout_s=row["timeout_s"], registered_at=d.to_instant(row["registered_at"]),
        updated_at=d.to_instant(row["updated_at"]), unregistered_at=d.to_instant(row["unregistered_at"]),
        retries=row["retries"], retry_delay_s=row["retry_delay_s"], recover=bool(row["recover"]),
    )


def request(d: Dialect, row: dict[str, Any]) -> RequestRecord:
    start = d.to_instant(row["start_at"])
    assert start is not None
    timing = Timing.from_dict(
        d.to_json(row["timing"]), zone=row["timezone"], start=start, finish=d.to_instant(row["finish_at"])
    )
    created, updated = d.to_instant(row["created_at"]), d.to_instant(row["updated_at"])
    assert created is not None and updated is not None
    task_policy = None
    if row.get("task_retries") is not None:  # read with its task
        task_policy = RetryPolicy.of(
            retries=row["task_retries"], retry_delay_s=row["task_retry_delay_s"],
            recover=d.to_flag(row["task_recover"]),
        )
    return RequestRecord(
        id=row["id"], task=row["task"], params=bytes(row["params"]), timing=timing, status=row["status"],
        next_run_at=d.to_instant(row["next_run_at"]), timeout_s=row["timeout_s"],
        allow_overlap=bool(row["allow_overlap"]), user=row["user"], created_at=created,
        updated_at=updated, last_run_status=row.get("last_run_status"),
        last_run_at=d.to_instant(row.get("last_run_at")), manual_at=d.to_instant(row.get("manual_at")),
        retries=row["retries"], retry_delay_s=row["retry_delay_s"], recover=d.to_flag(row["recover"]),
        task_policy=task_policy, follow_up_at=d.to_instant(row.get("follow_up_at")),
        follow_up_reason=row.get("follow_up_reason"),
    )


def run(d: Dialect, row: dict[str, Any]) -> RunRecord:
    return RunRecord(
        id=row["id"], request_id=row["request_id"], task=row["task"], status=row["status"],
        reason=row["reason"], planned_at=d.to_instant(row["planned_at"]), started_at=d.to_instant(row["started_at"]),
        ended_at=d.to_instant(row["ended_at"]), exit_code=row["exit_code"], signal=row["signal"],
        daemon_id=row["daemon_id"], pid=row["pid"], cpu_s=row["cpu_s"],
        max_rss_kb=row["max_rss_kb"], detail=row["detail"], missed_count=row["missed_count"],
        missed_until=d.to_instant(row["missed_until"]), progress_done=row["progress_done"],
        progress_total=row["progress_total"], progress_message=row["progress_message"],
        cancel_requested_at=d.to_instant(row["cancel_requested_at"]), log_head=row["log_head"],
        log_tail=row["log_tail"], log_dropped=row["log_dropped"] or 0, attempt=row["attempt"],
        retry_of=row["retry_of"], retries=row.get("request_retries") or 0, followed_by=row.get("followed_by"),
        host=row["host"],
    )


def daemon(d: Dialect, row: dict[str, Any]) -> DaemonRecord:
    started, beat = d.to_instant(row["started_at"]), d.to_instant(row["heartbeat_at"])
    assert started is not None and beat is not None
    return DaemonRecord(
        id=row["id"], host=row["host"], pid=row["pid"], started_at=started, heartbeat_at=beat,
        stopped_at=d.to_instant(row["stopped_at"]), workers=row["workers"], silent_s=row.get("silent_s"),
    )


def rerun(d: Dialect, row: dict[str, Any], request: RequestRecord | UnloadableRequest) -> DueRerun:
    due = d.to_instant(row["due_at"])
    assert due is not None
    return DueRerun(
        id=row["id"], run_id=row["run_id"], reason=row["reason"], attempt=row["attempt"], due_at=due,
        request=request,
    )


def policy_columns(d: Dialect, policy: dict[str, Any] | None) -> dict[str, Any]:
    """The requests columns of retry policy values given as ``retries``,
    ``retry_delay_s`` and ``recover``."""
    columns = {}
    for name, value in (policy or {}).items():
        if name not in ("retries", "retry_delay_s", "recover"):
            raise ValueError(f"not a retry policy value: {name}")
        columns[name] = d.flag(value) if isinstance(value, bool) else value
    return columns


def unloadable(d: Dialect, row: dict[str, Any], now: datetime, exc: Exception) -> UnloadableRequest:
    def when(name: str) -> datetime | None:
        try:
            return d.to_instant(row.get(name))
        except (TypeError, ValueError):
            return None

    manual_at, next_run_at = when("manual_at"), when("next_run_at")
    manual = manual_at is not None and manual_at <= now and not (
        row.get("status") == "scheduled" and next_run_at is not None and next_run_at <= now
    )
    return UnloadableRequest(
        id=int(row["id"]), task=str(row.get("task")), reason=f"{type(exc).__name__}: {exc}",
        planned_at=manual_at if manual else next_run_at, manual=manual,
    )
