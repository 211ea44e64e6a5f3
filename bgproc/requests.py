"""Process requests: the operations the command line and the Python API share.

Everything is validated (task, parameters, timing) before anything is
written; each operation writes at most one transaction.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from . import params as params_codec
from . import registry
from .errors import BgprocError, ParamsError, RegistryError, StateError, TimingError
from .reruns import MAX_RETRIES
from .store import Store, open_store
from .store.records import RequestRecord, TaskRecord
from .task import BackgroundTask
from .timing import AT_GRACE, Timing, TimingOptions, parse_duration, parse_timing


@dataclass(frozen=True)
class Plan:
    """A validated request that has not been written (``--dry-run``), with its next fires."""

    task: TaskRecord
    params: bytes
    timing: Timing
    timeout_s: float | None
    allow_overlap: bool
    user: str
    next_fires: list[datetime]
    retries: int | None = None  # None: the task's
    retry_delay_s: float | None = None
    recover: bool | None = None


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user database entry in some containers
        return "unknown"


def plan(
    store: Store,
    task: str | type[BackgroundTask[Any]],
    *,
    now: datetime,
    default_zone: str,
    params: Any = None,
    pairs: list[str] | None = None,
    params_json: str | None = None,
    timing: TimingOptions | None = None,
    timeout: str | float | timedelta | None = None,
    allow_overlap: bool = False,
    user: str | None = None,
    count: int = 5,
    retries: int | None = None,
    retry_delay: str | float | timedelta | None = None,
    recover: bool | None = None,
) -> Plan:
    """Validate a request completely, without writing it."""
    record = registry.resolve_class(store, task) if isinstance(task, type) else registry.resolve(store, task)
    cls = registry.load_class(record)
    ptype = cls.params_type()
    if params is None:
        params = params_codec.from_inputs(ptype, pairs, params_json)
    elif pairs or params_json is not None:
        raise ParamsError("params: give either a parameters object or -p/--params-json, not both")
    elif not isinstance(params, ptype):
        raise ParamsError(
            f"params: expected {ptype.__name__} for task {record.name}, got {type(params).__name__}"
        )
    data = params_codec.encode(params)
    parsed = parse_timing(timing or TimingOptions(), now, default_zone)
    timeout_s = parse_duration(timeout, "--timeout").total_seconds() if timeout is not None else None
    policy = retry_policy(retries, retry_delay, recover)
    first = parsed.due_from(now)
    fires = parsed.fires_from(first, count)
    return Plan(record, data, parsed, timeout_s, allow_overlap, _user(user), fires, **policy)


def _user(user: str | None) -> str:
    """The user a request is made for: as given, or the OS user when left out."""
    if user is None:
        return current_user()
    if not isinstance(user, str):
        raise BgprocError(f"--user {user!r} is not a name; give a string, or leave --user out for the OS user")
    if not user.strip():
        shown = "only white space" if user else "empty"
        raise BgprocError(f"--user is {shown}; give a name, or leave --user out for the OS user")
    return user


def retry_policy(
    retries: int | None, retry_delay: str | float | timedelta | None, recover: bool | None
) -> dict[str, Any]:
    """The retry policy values given (``retries``, ``retry_delay_s``, ``recover``),
    checked; those not given are left out."""
    given: dict[str, Any] = {}
    if retries is not None:
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
            raise BgprocError(f"--retries {retries!r} must be a whole number from 0 to {MAX_RETRIES}")
        given["retries"] = retries
    if retry_delay is not None:
        given["retry_delay_s"] = parse_duration(retry_delay, "--retry-delay").total_seconds()
    if recover is not None:
        given["recover"] = bool(recover)
    return given


def create(store: Store, planned: Plan, now: datetime) -> RequestRecord:
    """Write a validated request; it is due at its first fire."""
    request_id = store.insert_request(
        task=planned.task.name,
        params=planned.params,
        timing=planned.timing,
        next_run_at=planned.timing.due_from(now),
        timeout_s=planned.timeout_s,
        allow_overlap=planned.allow_overlap,
        user=planned.user,
        now=now,
        retries=planned.retries,
        retry_delay_s=planned.retry_delay_s,
        recover=planned.recover,
    )
    return store.get_request(request_id)


def unschedule(store: Store, request_id: int, now: datetime) -> RequestRecord:
    """No future runs; a run in progress finishes; history stays."""
    return unschedule_all(store, [request_id], now)[0]


def unschedule_all(store: Store, request_ids: list[int], now: datetime) -> list[RequestRecord]:
    """Unschedule several requests (and withdraw their pending manual runs) in one
    transaction: all of them, or none when one cannot be."""
    ids = list(dict.fromkeys(request_ids))
    store.unschedule_requests(ids, now)
    return [store.get_request(request_id) for request_id in ids]


def run_now(store: Store, request_id: int, now: datetime) -> RequestRecord:
    """Ask for one run of a request now, outside its timing (reason ``manual``).

    Checked like a new request: its task must be registered and importable,
    and its stored parameters must still fit the task's parameters.
    """
    current = store.get_request(request_id)
    record = store.get_task(current.task)
    if record is None:
        raise RegistryError(
            f"request {request_id} runs task {current.task!r}, which is not registered; "
            "register its module again first"
        )
    cls = registry.load_class(record)
    try:
        params_codec.decode(cls.params_type(), current.params)
    except ParamsError as exc:
        raise ParamsError(
            f"request {request_id}: its parameters no longer fit task {record.name} ({exc}); "
            "schedule a new request with the new parameters"
        ) from None
    return store.request_manual_run(request_id, now)


def reschedule(
    store: Store,
    request_id: int,
    now: datetime,
    default_zone: str,
    timing: TimingOptions | None = None,
    policy: dict[str, Any] | None = None,
) -> RequestRecord:
    """Schedule a request again, with its own timing or a new one, and the retry
    policy values in ``policy`` (from ``retry_policy``).

    Without a new timing a recurring request continues with its first fire
    after now (slots while it was unscheduled are not caught up). A scheduled
    request given only retry policy values keeps its timing and next fire.
    """
    new_timing, next_at = plan_reschedule(store, request_id, now, default_zone, timing, policy)
    store.set_request_schedule(
        request_id, status="scheduled", next_run_at=next_at, now=now, timing=new_timing, policy=policy
    )
    return store.get_request(request_id)


def plan_reschedule(
    store: Store,
    request_id: int,
    now: datetime,
    default_zone: str,
    timing: TimingOptions | None = None,
    policy: dict[str, Any] | None = None,
) -> tuple[Timing, datetime | None]:
    """What ``reschedule`` would set, checked, with nothing written: the timing and
    the next fire (a scheduled request given only ``policy`` keeps both)."""
    current = store.get_request(request_id)
    if store.get_task(current.task) is None:
        raise RegistryError(
            f"request {request_id} runs task {current.task!r}, which is not registered; "
            "register its module again first"
        )
    if timing is not None and timing.any_given():
        new_timing = parse_timing(timing.completed_from(current.timing, now), now, default_zone)
        next_at = new_timing.due_from(now)
    else:
        if current.status == "scheduled" and policy:
            return current.timing, current.next_run_at
        if current.status == "scheduled":
            raise StateError(
                f"request {request_id} is already scheduled; give a timing to change it "
                f"(for example --every 5m) or unschedule it first"
            )
        new_timing = None
        old = current.timing
        if old.kind == "now":
            next_at = now
        elif old.kind == "at":
            if old.start < now - AT_GRACE:
                raise TimingError(
                    f"request {request_id} was to run once at {old.start.isoformat()}, which is past; "
                    "give a new timing such as --now or --at WHEN"
                )
            next_at = old.start
        else:
            next_at = old.due_from(now)
            if next_at is None:
                raise TimingError(
                    f"request {request_id} has no fires left (its finish has passed); "
                    "give a new timing or a later --finish"
                )
    chosen = new_timing or current.timing
    return chosen, _after_handled_slots(store, request_id, chosen, next_at)


# ----------------------------------------------------------------------
# The Python API (re-exported by ``bgproc``)


def _open(db: str | Path | None) -> Store:
    return open_store(db, create=False)


def start_new(
    task: type[BackgroundTask[Any]] | str,
    params: Any = None,
    *,
    db: str | Path | None = None,
    user: str | None = None,
    timeout: str | float | timedelta | None = None,
    retries: int | None = None,
    retry_delay: str | float | timedelta | None = None,
    recover: bool | None = None,
) -> int:
    """Request a run of ``task`` as soon as a daemon can; returns the request id."""
    return schedule(
        task, params, db=db, user=user, timeout=timeout, now=True, retries=retries, retry_delay=retry_delay,
        recover=recover,
    )


def schedule(
    task: type[BackgroundTask[Any]] | str,
    params: Any = None,
    *,
    db: str | Path | None = None,
    user: str | None = None,
    timeout: str | float | timedelta | None = None,
    allow_overlap: bool = False,
    retries: int | None = None,
    retry_delay: str | float | timedelta | None = None,
    recover: bool | None = None,
    **timing: Any,
) -> int:
    """Create a process request with any timing; returns its id.

    ``retries``, ``retry_delay`` and ``recover`` (None: the task's) are as
    ``--retries``, ``--retry-delay`` and ``--recover``.

    Timing keywords mirror the command line: ``now=True``, ``at=``,
    ``every="5m"``, ``hourly=True``, ``daily=True``, ``weekly=True, days="mon,fri"``,
    ``monthly=True, day=15``, ``cron="0 9 * * mon-fri"``, with ``start=``,
    ``finish=`` and ``tz=``. Strings are parsed as on the command line;
    datetimes and timedeltas are taken as they are.
    """
    from .clock import utcnow
    from .localzone import system_zone_name

    try:
        options = TimingOptions(**timing)
    except TypeError as exc:
        raise TimingError(f"unknown timing keyword: {exc}") from None
    now = utcnow()
    with _open(db) as store:
        planned = plan(
            store, task, now=now, default_zone=system_zone_name(), params=params, timing=options,
            timeout=timeout, allow_overlap=allow_overlap, user=user, retries=retries, retry_delay=retry_delay,
            recover=recover,
        )
        return create(store, planned, now).id


def _after_handled_slots(store: Store, request_id: int, timing: Timing, next_at: datetime | None) -> datetime | None:
    """Never plan a slot a daemon has already handled: a fire just past (within the
    grace a new timing allows) may be exactly the one that ran a moment ago."""
    last = store.last_planned_at(request_id)
    if last is None or next_at is None or next_at > last:
        return next_at
    if timing.recurring:
        following = timing.next_fire(last)
        if following is None:
            raise TimingError(
                f"request {request_id} has no fires left after its last run ({last.isoformat()}); "
                "give a new timing or a later --finish"
            )
        return following
    if timing.kind == "at":
        raise TimingError(
            f"request {request_id} already ran at {last.isoformat()}; give a new timing such as --now or --at WHEN"
        )
    return next_at
