"""Claiming: reading due work, and the writes of a claim pass, run by ``claiming``
inside one write transaction. The queries that find due work (and lock it, where
rows are locked) are the store's own (``DueQueries``); what is done with what
they find is written here once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from .. import claiming
from ..base import ClaimResult
from ..claiming import ClaimTransaction, DueRerun, DueWork, UnloadableRequest
from ..records import RequestRecord
from . import rows
from .connection import operation
from .daemons import Daemons
from .tasks import Tasks

# The requests with a run going.
BUSY = "SELECT request_id FROM runs WHERE status = 'running'"


@dataclass(frozen=True)
class DueQueries:
    """A store's queries for due work. Each of the first four gives ``(due, id)``
    rows in due order and takes the time due by (then, but for ``skipped``, how many
    rows at most); each of ``firsts`` gives the first due time after one time."""

    scheduled: str  # scheduled requests whose fire is due and can start
    manual: str  # runs asked for by hand that can start
    reruns: str  # retries and recoveries that can start (the ids are the reruns')
    skipped: str  # every recurring request due behind its run going
    firsts: tuple[str, ...]  # what ``next_due_at`` reads
    earliest: Any  # the parameter of ``firsts`` for "after nothing"


class Due(Daemons, Tasks):
    due_queries: ClassVar[DueQueries]

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
        with self.write():
            yield self

    @operation
    def next_due_at(self, after: datetime | None = None) -> datetime | None:
        """Each source is read in its index's order and stops at its first row."""
        values = (self.dialect.instant(after) if after is not None else self.due_queries.earliest,)
        firsts = [first for sql in self.due_queries.firsts for first in self.values(sql, values)]
        return self.dialect.to_instant(min(firsts)) if firsts else None

    @operation
    def due_requests(self, now: datetime, limit: int) -> DueWork:
        """What a claim pass acts on, oldest first (locked for this transaction where
        rows are locked: rows another pass holds are skipped): up to ``limit`` fires,
        manual runs, retries and recoveries due by ``now`` that can start (see
        ``next_due_at`` for what waits), and every recurring request due whose
        previous run still goes (its slot is skipped: it takes no worker; there are no
        more of them than runs going). A request row that cannot be read back (a time
        zone this host lacks...) comes as an ``UnloadableRequest``.

        Keys first (ids and due times, in index order, ``limit`` + 1 of each kind to
        tell whether more wait), then only the chosen rows: the cost follows
        ``limit``, not how many requests are due, nor their parameters' size."""
        queries, d = self.due_queries, self.dialect
        at = d.instant(now)
        due: dict[int, Any] = {}
        for sql in (queries.scheduled, queries.manual):
            for when, request_id in self.tuples(sql, (at, limit + 1)):
                due[request_id] = min(when, due.get(request_id, when))
        # (due, 0, request id) for a request's own fire or manual run, (due, 1, rerun id)
        keys = sorted([(when, 0, request_id) for request_id, when in due.items()] + [
            (when, 1, rerun_id) for when, rerun_id in self.tuples(queries.reruns, (at, limit + 1))
        ])
        more = len(keys) > limit
        keys = keys[:limit] + [(when, 0, request_id) for when, request_id in self.tuples(queries.skipped, (at,))]
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
                request: RequestRecord | UnloadableRequest = rows.request(d, row)
            except Exception as exc:  # noqa: BLE001 - one bad row must not stop claiming
                request = rows.unloadable(d, row, now, exc)
            items.append(request if rerun is None else rows.rerun(d, rerun, request))
        return DueWork(items=items, more=more)

    def _rows(self, table: str, ids: list[int]) -> list[dict[str, Any]]:
        """The rows of ``table`` with these ids (a handful: what one pass claims)."""
        if not ids:
            return []
        these, params = self.dialect.any_of("id", ids)
        return self.rows(f"SELECT * FROM {table} WHERE {these}", params)

    @operation
    def take_rerun(self, rerun_id: int) -> None:
        self.execute("DELETE FROM reruns WHERE id = ?", (rerun_id,))

    @operation
    def busy_requests(self) -> set[int]:
        return {int(v) for v in self.values(BUSY)}

    @operation
    def unschedule_unloadable(self, request_id: int, now: datetime) -> None:
        self.execute(
            "UPDATE requests SET status = CASE status WHEN 'scheduled' THEN 'unscheduled' ELSE status END, "
            "next_run_at = NULL, manual_at = NULL, updated_at = ? WHERE id = ?",
            (self.dialect.instant(now), request_id),
        )

    @operation
    def clear_manual_run(self, request_id: int) -> None:
        self.execute("UPDATE requests SET manual_at = NULL WHERE id = ?", (request_id,))

    @operation
    def advance_request(self, request_id: int, next_run_at: datetime | None, now: datetime) -> None:
        status = "scheduled" if next_run_at is not None else "complete"
        self.execute(
            "UPDATE requests SET next_run_at = ?, status = ?, updated_at = ? WHERE id = ?",
            (self.dialect.instant(next_run_at), status, self.dialect.instant(now), request_id),
        )
