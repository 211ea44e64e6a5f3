"""The PostgreSQL store's claiming: finding and locking due work, and the writes of
a claim pass, run by ``claiming`` inside one short transaction.

Daemons on several hosts claim at once. Each pass locks the rows it acts on
(``FOR NO KEY UPDATE ... SKIP LOCKED``): a row another pass holds is left to it,
never waited for, so daemons do not queue behind each other's claims, and a
request (with its retries) is handled by one pass at a time. The unique index on
a request's occurrences (``runs_occurrence``) refuses a second record of one all
the same. A pass with nothing due takes no lock: ``claiming`` reads what is due
first, with a plain read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from .. import claiming
from ..base import ClaimResult
from ..claiming import ClaimTransaction, DueRerun, DueWork, UnloadableRequest
from ..records import RequestRecord
from . import rows
from .daemons import Daemons
from .faults import operation
from .tasks import Tasks

_BUSY = "SELECT request_id FROM runs WHERE status = 'running'"
# A one-time timing (its kind is in the stored JSON).
_ONE_TIME = "COALESCE(r.timing->>'kind' IN ('now', 'at'), false)"
# Its request has a run going and does not allow overlap: a one-time or manual run
# waits, a recurring slot is skipped.
_WAITS = f"(NOT r.allow_overlap AND r.id IN ({_BUSY}))"
_LOCKED = "FOR NO KEY UPDATE OF r SKIP LOCKED"
# The keys of what a claim pass acts on (see ``Due.due_requests``), locked, in due order.
_DUE_SCHEDULED = (
    "SELECT r.next_run_at AS due, r.id FROM requests r"
    f" WHERE r.status = 'scheduled' AND r.next_run_at <= %s AND NOT {_WAITS}"
    f" ORDER BY r.next_run_at, r.id LIMIT %s {_LOCKED}"
)
_DUE_MANUAL = (
    "SELECT r.manual_at AS due, r.id FROM requests r"
    f" WHERE r.manual_at IS NOT NULL AND r.manual_at <= %s AND NOT {_WAITS}"
    f" ORDER BY r.manual_at, r.id LIMIT %s {_LOCKED}"
)
# Retries and recoveries that can start, each with its request locked too: a request's
# own fire and its retry are never claimed by two passes at once.
_DUE_RERUNS = (
    "SELECT x.due_at AS due, x.id FROM reruns x JOIN requests r ON r.id = x.request_id"
    f" WHERE x.due_at <= %s AND NOT {_WAITS} ORDER BY x.due_at, x.id LIMIT %s FOR NO KEY UPDATE OF x, r SKIP LOCKED"
)
# Recurring requests due behind their running run.
_DUE_SKIPPED = (
    "SELECT r.next_run_at AS due, r.id FROM requests r"
    f" WHERE r.id IN ({_BUSY}) AND r.status = 'scheduled' AND r.next_run_at <= %s"
    f" AND NOT r.allow_overlap AND NOT {_ONE_TIME} {_LOCKED}"
)
_NEXT = (
    "SELECT r.next_run_at FROM requests r"
    f" WHERE r.status = 'scheduled' AND r.next_run_at > %s AND NOT ({_WAITS} AND {_ONE_TIME})"
    " ORDER BY r.next_run_at LIMIT 1",
    "SELECT r.manual_at FROM requests r"
    f" WHERE r.manual_at IS NOT NULL AND r.manual_at > %s AND NOT {_WAITS}"
    " ORDER BY r.manual_at LIMIT 1",
    "SELECT x.due_at FROM reruns x JOIN requests r ON r.id = x.request_id"
    f" WHERE x.due_at > %s AND NOT {_WAITS} ORDER BY x.due_at LIMIT 1",
)
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)


class Due(Daemons, Tasks):
    @operation
    def claim_due(
        self,
        daemon: str,
        now: datetime,
        due_by: datetime,
        free: int,
        *,
        limit: int = 100,
        registered: bool = True,
        host: str | None = None,
    ) -> ClaimResult:
        return claiming.claim_due(
            self.next_due_at, self._claim_transaction, daemon, now, due_by, free, limit=limit, registered=registered,
            host=host,
        )

    @contextmanager
    def _claim_transaction(self) -> Iterator[ClaimTransaction]:
        with self.transaction():
            yield self

    @operation
    def next_due_at(self, after: datetime | None = None) -> datetime | None:
        firsts = [first for sql in _NEXT for first in self.values(sql, (after or _EARLIEST,))]
        return min(firsts) if firsts else None

    @operation
    def due_requests(self, now: datetime, limit: int) -> DueWork:
        """What a claim pass acts on, oldest first, locked for this transaction (rows
        another pass holds are skipped): up to ``limit`` fires, manual runs, retries
        and recoveries due by ``now`` that can start, and every recurring request due
        whose previous run still goes (its slot is skipped). A request row that cannot
        be read back comes as an ``UnloadableRequest``."""
        due: dict[int, datetime] = {}
        for sql in (_DUE_SCHEDULED, _DUE_MANUAL):
            for row in self.rows(sql, (now, limit + 1)):
                due[row["id"]] = min(row["due"], due.get(row["id"], row["due"]))
        # (due, 0, request id) for a request's own fire or manual run, (due, 1, rerun id)
        keys = sorted([(when, 0, request_id) for request_id, when in due.items()] + [
            (row["due"], 1, row["id"]) for row in self.rows(_DUE_RERUNS, (now, limit + 1))
        ])
        more = len(keys) > limit
        keys = keys[:limit] + [(row["due"], 0, row["id"]) for row in self.rows(_DUE_SKIPPED, (now,))]
        keys.sort()
        reruns = {row["id"]: row for row in self._rows("reruns", [key for _, kind, key in keys if kind == 1])}
        wanted = [key for _, kind, key in keys if kind == 0] + [row["request_id"] for row in reruns.values()]
        requests = {row["id"]: row for row in self._rows("requests", wanted)}
        items: list[RequestRecord | UnloadableRequest | DueRerun] = []
        for _, kind, key in keys:
            rerun = reruns.get(key) if kind == 1 else None
            request_id = key if kind == 0 else (rerun or {}).get("request_id")
            found = requests.get(request_id) if request_id is not None else None
            if found is None:
                continue
            try:
                request: RequestRecord | UnloadableRequest = rows.request(found)
            except Exception as exc:  # noqa: BLE001 - one bad row must not stop claiming
                request = rows.unloadable(found, now, exc)
            items.append(request if rerun is None else rows.rerun(rerun, request))
        return DueWork(items=items, more=more)

    def _rows(self, table: str, ids: list[int]) -> list[dict[str, Any]]:
        """The rows of ``table`` with these ids (a handful: what one pass claims)."""
        if not ids:
            return []
        return self.rows(f"SELECT * FROM {table} WHERE id = ANY(%s)", (sorted(set(ids)),))

    @operation
    def take_rerun(self, rerun_id: int) -> None:
        self.execute("DELETE FROM reruns WHERE id = %s", (rerun_id,))

    @operation
    def busy_requests(self) -> set[int]:
        return {int(v) for v in self.values(_BUSY)}

    @operation
    def unschedule_unloadable(self, request_id: int, now: datetime) -> None:
        self.execute(
            "UPDATE requests SET status = CASE status WHEN 'scheduled' THEN 'unscheduled' ELSE status END, "
            "next_run_at = NULL, manual_at = NULL, updated_at = %s WHERE id = %s",
            (now, request_id),
        )

    @operation
    def clear_manual_run(self, request_id: int) -> None:
        self.execute("UPDATE requests SET manual_at = NULL WHERE id = %s", (request_id,))

    @operation
    def advance_request(self, request_id: int, next_run_at: datetime | None, now: datetime) -> None:
        status = "scheduled" if next_run_at is not None else "complete"
        self.execute(
            "UPDATE requests SET next_run_at = %s, status = %s, updated_at = %s WHERE id = %s",
            (next_run_at, status, now, request_id),
        )
