"""The SQLite store's claiming: reading due work from indexes, and the writes of a
claim pass, run by ``claiming`` inside one ``BEGIN IMMEDIATE`` transaction (SQLite
has one writer at a time: holding the write lock is what makes each claim
exclusive)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from .. import claiming
from ..base import ClaimResult
from ..claiming import ClaimTransaction, DueRerun, DueWork, UnloadableRequest
from ..records import RequestRecord
from . import rows
from .daemons import Daemons
from .faults import operation
from .schema import dt, ts
from .tasks import Tasks

_BUSY = "SELECT request_id FROM runs WHERE status = 'running'"
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
        with self.immediate():
            yield self

    @operation
    def next_due_at(self, after: datetime | None = None) -> datetime | None:
        """Each source is read in its index's order and stops at its first row."""
        values = (ts(after) or "",)
        firsts = [
            row[0] for sql in (_NEXT_SCHEDULED, _NEXT_MANUAL, _NEXT_RERUN) for row in self.conn.execute(sql, values)
        ]
        return dt(min(firsts)) if firsts else None

    @operation
    def due_requests(self, now: datetime, limit: int) -> DueWork:
        """What a claim pass acts on, oldest first: up to ``limit`` fires, manual runs,
        retries and recoveries due by ``now`` that can start (see ``next_due_at`` for
        what waits), and every recurring request due whose previous run still goes
        (its slot is skipped: it takes no worker; there are no more of them than runs
        going). A request row that cannot be read back (a time zone this host
        lacks...) comes as an ``UnloadableRequest``.

        Keys first (ids and due times, in index order, ``limit`` + 1 of each kind to
        tell whether more wait), then only the chosen rows: the cost follows
        ``limit``, not how many requests are due, nor their parameters' size."""
        at = ts(now)
        due: dict[int, str] = {}
        for sql in (_DUE_SCHEDULED, _DUE_MANUAL):
            for when, request_id in self.conn.execute(sql, (at, limit + 1)):
                due[request_id] = min(when, due.get(request_id, when))
        # (due, 0, request id) for a request's own fire or manual run, (due, 1, rerun id)
        keys = sorted([(when, 0, request_id) for request_id, when in due.items()] + [
            (when, 1, rerun_id) for when, rerun_id in self.conn.execute(_DUE_RERUNS, (at, limit + 1))
        ])
        more = len(keys) > limit
        keys = keys[:limit] + [(when, 0, request_id) for when, request_id in self.conn.execute(_DUE_SKIPPED, (at,))]
        keys.sort()
        reruns = {row["id"]: row for row in self._rows("reruns", [key for _, kind, key in keys if kind == 1])}
        wanted = [key for _, kind, key in keys if kind == 0] + [row["request_id"] for row in reruns.values()]
        requests = {row["id"]: row for row in self._rows("requests", wanted)}
        items: list[RequestRecord | UnloadableRequest | DueRerun] = []
        for _, kind, key in keys:
            rerun = reruns.get(key) if kind == 1 else None
            request_id = key if kind == 0 else (rerun or {}).get("request_id")
            row = requests.get(request_id) if request_id is not None else None
            if row is None:
                continue
            try:
                request: RequestRecord | UnloadableRequest = rows.request(row)
            except Exception as exc:  # noqa: BLE001 - one bad row must not stop claiming
                request = rows.unloadable(row, now, exc)
            items.append(request if rerun is None else rows.rerun(rerun, request))
        return DueWork(items=items, more=more)

    def _rows(self, table: str, ids: list[int]) -> list[dict[str, Any]]:
        """The rows of ``table`` with these ids (a handful: what one pass claims)."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        return list(self.db.query(f"SELECT * FROM {table} WHERE id IN ({marks})", ids))

    @operation
    def take_rerun(self, rerun_id: int) -> None:
        self.conn.execute("DELETE FROM reruns WHERE id = ?", (rerun_id,))

    @operation
    def busy_requests(self) -> set[int]:
        return {int(r[0]) for r in self.conn.execute(_BUSY)}

    @operation
    def unschedule_unloadable(self, request_id: int, now: datetime) -> None:
        self.conn.execute(
            "UPDATE requests SET status = CASE status WHEN 'scheduled' THEN 'unscheduled' ELSE status END, "
            "next_run_at = NULL, manual_at = NULL, updated_at = ? WHERE id = ?",
            (ts(now), request_id),
        )

    @operation
    def clear_manual_run(self, request_id: int) -> None:
        self.conn.execute("UPDATE requests SET manual_at = NULL WHERE id = ?", (request_id,))

    @operation
    def advance_request(self, request_id: int, next_run_at: datetime | None, now: datetime) -> None:
        status = "scheduled" if next_run_at is not None else "complete"
        self.conn.execute(
            "UPDATE requests SET next_run_at = ?, status = ?, updated_at = ? WHERE id = ?",
            (ts(next_run_at), status, ts(now), request_id),
        )
