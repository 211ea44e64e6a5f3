"""The SQLite store's queries for due work (see ``sql.due``), read from indexes. A
claim pass runs inside one ``BEGIN IMMEDIATE`` transaction: SQLite has one writer
at a time, and holding the write lock is what makes each claim exclusive."""

from __future__ import annotations

from ..sql.due import BUSY as _BUSY
from ..sql.due import DueQueries

# A one-time timing (its kind is in the stored JSON; a malformed one is not one-time
# here, so that claiming reaches it and reports it).
_ONE_TIME = (
    "COALESCE((CASE WHEN json_valid(r.timing) THEN json_extract(r.timing, '$.kind') END) IN ('now', 'at'), 0)"
)
# Its request has a run going and does not allow overlap: a one-time or manual run
# waits, a recurring slot is skipped. The id comes first: it is in the index entry,
# so only such a request's row (parameters and all) is read to look further.
_WAITS = f"(r.id IN ({_BUSY}) AND r.allow_overlap = 0)"
# The keys of what a claim pass acts on (see ``Due.due_requests``), each read in
# its index's order and cut at the limit: no temporary B-tree over the due rows.
_DUE_SCHEDULED = (
    "SELECT r.next_run_at, r.id FROM requests r"
    f" WHERE r.status = 'scheduled' AND r.next_run_at <= ? AND NOT {_WAITS}"
    " ORDER BY r.next_run_at, r.id LIMIT ?"
)
_DUE_MANUAL = (
    "SELECT r.manual_at, r.id FROM requests r"
    f" WHERE r.manual_at IS NOT NULL AND r.manual_at <= ? AND NOT {_WAITS}"
    " ORDER BY r.manual_at, r.id LIMIT ?"
)
_NEXT_SCHEDULED = (
    "SELECT r.next_run_at FROM requests r"
    f" WHERE r.status = 'scheduled' AND r.next_run_at > ? AND NOT ({_WAITS} AND {_ONE_TIME})"
    " ORDER BY r.next_run_at LIMIT 1"
)
_NEXT_MANUAL = (
    "SELECT r.manual_at FROM requests r"
    f" WHERE r.manual_at IS NOT NULL AND r.manual_at > ? AND NOT {_WAITS}"
    " ORDER BY r.manual_at LIMIT 1"
)
# Retries and recoveries that can start, and the first to come.
_RERUN_WAITS = (
    f"(x.request_id IN ({_BUSY}) AND (SELECT r.allow_overlap FROM requests r WHERE r.id = x.request_id) = 0)"
)
_DUE_RERUNS = (
    f"SELECT x.due_at, x.id FROM reruns x WHERE x.due_at <= ? AND NOT {_RERUN_WAITS} ORDER BY x.due_at, x.id LIMIT ?"
)
_NEXT_RERUN = f"SELECT x.due_at FROM reruns x WHERE x.due_at > ? AND NOT {_RERUN_WAITS} ORDER BY x.due_at LIMIT 1"
# Recurring requests due behind their running run: found from the runs going (the
# unary plus keeps the planner from scanning every due request instead).
_DUE_SKIPPED = (
    "SELECT r.next_run_at, r.id FROM requests r"
    f" WHERE r.id IN ({_BUSY}) AND +r.status = 'scheduled' AND +r.next_run_at <= ?"
    f" AND r.allow_overlap = 0 AND NOT {_ONE_TIME}"
)

QUERIES = DueQueries(
    scheduled=_DUE_SCHEDULED,
    manual=_DUE_MANUAL,
    reruns=_DUE_RERUNS,
    skipped=_DUE_SKIPPED,
    firsts=(_NEXT_SCHEDULED, _NEXT_MANUAL, _NEXT_RERUN),
    earliest="",
)
