"""The PostgreSQL store's queries for due work (see ``sql.due``): finding and locking
it. A claim pass runs inside one short transaction.

Daemons on several hosts claim at once. Each pass locks the rows it acts on
(``FOR NO KEY UPDATE ... SKIP LOCKED``): a row another pass holds is left to it,
never waited for, so daemons do not queue behind each other's claims, and a
request (with its retries) is handled by one pass at a time. The unique index on
a request's occurrences (``runs_occurrence``) refuses a second record of one all
the same. A pass with nothing due takes no lock: ``claiming`` reads what is due
first, with a plain read.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ..sql.due import BUSY as _BUSY
from ..sql.due import DueQueries

# A one-time timing (its kind is in the stored JSON).
_ONE_TIME = "COALESCE(r.timing->>'kind' IN ('now', 'at'), false)"
# Its request has a run going and does not allow overlap: a one-time or manual run
# waits, a recurring slot is skipped.
_WAITS = f"(NOT r.allow_overlap AND r.id IN ({_BUSY}))"
_LOCKED = "FOR NO KEY UPDATE OF r SKIP LOCKED"
# The keys of what a claim pass acts on (see ``Due.due_requests``), locked, in due order.
_DUE_SCHEDULED = (
    "SELECT r.next_run_at AS due, r.id FROM requests r"
    f" WHERE r.status = 'scheduled' AND r.next_run_at <= ? AND NOT {_WAITS}"
    f" ORDER BY r.next_run_at, r.id LIMIT ? {_LOCKED}"
)
_DUE_MANUAL = (
    "SELECT r.manual_at AS due, r.id FROM requests r"
    f" WHERE r.manual_at IS NOT NULL AND r.manual_at <= ? AND NOT {_WAITS}"
    f" ORDER BY r.manual_at, r.id LIMIT ? {_LOCKED}"
)
# Retries and recoveries that can start, each with its request locked too: a request's
# own fire and its retry are never claimed by two passes at once.
_DUE_RERUNS = (
    "SELECT x.due_at AS due, x.id FROM reruns x JOIN requests r ON r.id = x.request_id"
    f" WHERE x.due_at <= ? AND NOT {_WAITS} ORDER BY x.due_at, x.id LIMIT ? FOR NO KEY UPDATE OF x, r SKIP LOCKED"
)
# Recurring requests due behind their running run.
_DUE_SKIPPED = (
    "SELECT r.next_run_at AS due, r.id FROM requests r"
    f" WHERE r.id IN ({_BUSY}) AND r.status = 'scheduled' AND r.next_run_at <= ?"
    f" AND NOT r.allow_overlap AND NOT {_ONE_TIME} {_LOCKED}"
)
_NEXT = (
    "SELECT r.next_run_at FROM requests r"
    f" WHERE r.status = 'scheduled' AND r.next_run_at > ? AND NOT ({_WAITS} AND {_ONE_TIME})"
    " ORDER BY r.next_run_at LIMIT 1",
    "SELECT r.manual_at FROM requests r"
    f" WHERE r.manual_at IS NOT NULL AND r.manual_at > ? AND NOT {_WAITS}"
    " ORDER BY r.manual_at LIMIT 1",
    "SELECT x.due_at FROM reruns x JOIN requests r ON r.id = x.request_id"
    f" WHERE x.due_at > ? AND NOT {_WAITS} ORDER BY x.due_at LIMIT 1",
)
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)

QUERIES = DueQueries(
    scheduled=_DUE_SCHEDULED, manual=_DUE_MANUAL, reruns=_DUE_RERUNS, skipped=_DUE_SKIPPED, firsts=_NEXT,
    earliest=_EARLIEST,
)
