"""JSON-ready views of tasks, requests and runs (the ``--json`` documents).

Times are ISO 8601 with offset: a request's in its own zone (where its wall
times live), a run's in UTC.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from . import params as params_codec
from .errors import ParamsError
from .reruns import RetryPolicy
from .store.records import RequestRecord, RunRecord, TaskRecord
from .timing import Timing


def iso(value: datetime | None, zone: str | None = None) -> str | None:
    if value is None:
        return None
    return value.astimezone(ZoneInfo(zone) if zone else UTC).isoformat()


def task_json(task: TaskRecord) -> dict[str, Any]:
    return {
        "name": task.name,
        "import_path": task.import_path,
        "module": task.module,
        "description": task.description,
        "timeout_s": task.timeout_s,
        **policy_json(task.policy()),
        "params": task.fields,
        "registered_at": iso(task.registered_at),
        "updated_at": iso(task.updated_at),
    }


def timing_json(timing: Timing) -> dict[str, Any]:
    return {**timing.to_dict(), "text": timing.describe()}


def params_json(data: bytes) -> Any:
    try:
        return params_codec.to_jsonable(params_codec.decode_raw(data))
    except ParamsError:
        return None


def request_json(request: RequestRecord) -> dict[str, Any]:
    zone = request.timing.zone
    return {
        "id": request.id,
        "task": request.task,
        "status": request.status,
        "timing": timing_json(request.timing),
        "params": params_json(request.params),
        "next_run_at": iso(request.next_run_at, zone),
        "start": iso(request.timing.start, zone),
        "finish": iso(request.timing.finish, zone),
        "timezone": zone,
        "timeout_s": request.timeout_s,
        "allow_overlap": request.allow_overlap,
        **policy_json(request.policy()),
        "user": request.user,
        "created_at": iso(request.created_at, zone),
        "updated_at": iso(request.updated_at, zone),
        "last_run_status": request.last_run_status,
        "last_run_at": iso(request.last_run_at, zone),
        "manual_run_at": iso(request.manual_at, zone),
        "follow_up_reason": request.follow_up_reason,
        "follow_up_at": iso(request.follow_up_at, zone),
    }


def policy_json(policy: RetryPolicy) -> dict[str, Any]:
    """How runs are followed up: ``retries``, ``retry_delay`` (seconds, before the
    first retry) and ``recover``, as they apply (a request's over its task's)."""
    return {"retries": policy.retries, "retry_delay": policy.retry_delay_s, "recover": policy.recover}


def plan_json(request: dict[str, Any], fires: list[datetime], zone: str) -> dict[str, Any]:
    return {"request": request, "next": [iso(f, zone) for f in fires]}


def run_json(run: RunRecord, now: datetime | None = None) -> dict[str, Any]:
    duration = run.duration_s(now if run.status == "running" else None)
    progress = None
    if run.progress_done is not None:
        progress = {
            "done": _finite(run.progress_done),
            "total": _finite(run.progress_total),
            "message": run.progress_message,
        }
    return {
        "id": run.id,
        "request_id": run.request_id,
        "task": run.task,
        "status": run.status,
        "reason": run.reason,
        "attempt": run.attempt,
        "retry_of": run.retry_of,
        "planned_at": iso(run.planned_at),
        "started_at": iso(run.started_at),
        "ended_at": iso(run.ended_at),
        "duration_s": None if duration is None else round(duration, 6),
        "lateness_s": None if run.lateness_s() is None else round(run.lateness_s() or 0.0, 6),
        "exit_code": run.exit_code,
        "signal": run.signal,
        "pid": run.pid,
        "daemon_id": run.daemon_id,
        "host": run.host,
        "cpu_s": run.cpu_s,
        "max_rss_kb": run.max_rss_kb,
        "detail": run.detail,
        "missed_count": run.missed_count,
        "missed_until": iso(run.missed_until),
        "progress": progress,
        "cancel_requested_at": iso(run.cancel_requested_at),
        "log": run.log,
        "log_dropped_bytes": run.log_dropped,
    }


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or Infinity: a task that reports them shows null."""
    return value if value is not None and math.isfinite(value) else None
