"""Process requests. Each change wakes the daemons once committed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ...errors import NotFound, StateError
from ...timing import Timing
from ..records import RequestRecord
from . import rows
from .connection import SQLConnection, operation

# A request ({r}) with a retry or recovery waiting, or a run going that one may follow.
_FOLLOWS_UP = (
    "(EXISTS (SELECT 1 FROM reruns x WHERE x.request_id = {r}.id) OR (EXISTS (SELECT 1 FROM runs "
    "WHERE runs.request_id = {r}.id AND runs.status = 'running') AND EXISTS (SELECT 1 FROM tasks t "
    "WHERE t.name = {r}.task AND (COALESCE({r}.retries, t.retries) > 0 OR COALESCE({r}.recover, t.recover)))))"
)


def _unknown(request_id: int) -> NotFound:
    return NotFound(f"no request with id {request_id}; see `bgproc requests --all`")


class Requests(SQLConnection):
    @operation
    def insert_request(
        self,
        *,
        task: str,
        params: bytes,
        timing: Timing,
        next_run_at: datetime | None,
        timeout_s: float | None,
        allow_overlap: bool,
        user: str,
        now: datetime,
        retries: int | None = None,
        retry_delay_s: float | None = None,
        recover: bool | None = None,
    ) -> int:
        d = self.dialect
        with self.write():
            request_id = self.insert(
                """
                INSERT INTO requests (task, params, timing, timezone, start_at, finish_at, status,
                    next_run_at, timeout_s, allow_overlap, "user", created_at, updated_at,
                    retries, retry_delay_s, recover)
                VALUES (?, ?, ?, ?, ?, ?, 'scheduled', ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                (
                    task, params, d.json(timing.to_dict()), timing.zone, d.instant(timing.start),
                    d.instant(timing.finish), d.instant(next_run_at), timeout_s, d.flag(allow_overlap), user,
                    d.instant(now), d.instant(now), retries, retry_delay_s, d.flag(recover),
                ),
            )
        self._notify()
        return request_id

    @operation
    def get_request(self, request_id: int) -> RequestRecord:
        found = self.row(rows.REQUEST_SELECT + " WHERE r.id = ?", (request_id,))
        if found is None:
            raise _unknown(request_id)
        return rows.request(self.dialect, found)

    @operation
    def list_requests(self, *, include_all: bool = False, limit: int | None = None) -> list[RequestRecord]:
        sql = rows.REQUEST_SELECT
        if not include_all:
            sql += " WHERE r.status = 'scheduled' OR EXISTS (SELECT 1 FROM reruns x WHERE x.request_id = r.id)"
        sql += " ORDER BY r.id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [rows.request(self.dialect, r) for r in self.rows(sql)]

    @operation
    def set_request_schedule(
        self,
        request_id: int,
        *,
        status: str,
        next_run_at: datetime | None,
        now: datetime,
        timing: Timing | None = None,
        expect_status: tuple[str, ...] | None = None,
        policy: dict[str, Any] | None = None,
    ) -> None:
        d = self.dialect
        with self.write():
            found = self.values(d.locking("SELECT status FROM requests WHERE id = ?"), (request_id,))
            if not found:
                raise _unknown(request_id)
            if expect_status is not None and found[0] not in expect_status:
                raise StateError(f"request {request_id} is {found[0]}")
            sets = "status = ?, next_run_at = ?, updated_at = ?"
            if status == "unscheduled":
                sets += ", manual_at = NULL"  # no future runs: a pending manual one included
            values: list[Any] = [status, d.instant(next_run_at), d.instant(now)]
            if timing is not None:
                sets += ", timing = ?, timezone = ?, start_at = ?, finish_at = ?"
                values += [d.json(timing.to_dict()), timing.zone, d.instant(timing.start), d.instant(timing.finish)]
            for name, value in rows.policy_columns(d, policy).items():
                sets += f", {name} = ?"
                values.append(value)
            self.execute(f"UPDATE requests SET {sets} WHERE id = ?", [*values, request_id])
        self._notify()

    @operation
    def unschedule_requests(self, request_ids: list[int], now: datetime) -> None:
        d = self.dialect
        these, ids = d.any_of("id", request_ids)
        with self.write():
            if d.row_locks:
                self.execute(d.locking(f"SELECT 1 FROM requests WHERE {these} ORDER BY id"), ids)
            for request_id in request_ids:
                self._check_unschedulable(request_id)
            # A retry or recovery waiting, or one that a run going may call for, is a
            # future run too: it goes, and from now on no run of it is followed up.
            self.execute(
                "UPDATE requests SET status = CASE WHEN status = 'scheduled' OR "
                f"{_FOLLOWS_UP.format(r='requests')} THEN 'unscheduled' ELSE status END, "
                f"next_run_at = NULL, manual_at = NULL, updated_at = ? WHERE {these}",
                [d.instant(now), *ids],
            )
            self.execute(f"DELETE FROM reruns WHERE {d.any_of('request_id', request_ids)[0]}", ids)
        self._notify()

    def _check_unschedulable(self, request_id: int) -> None:
        found = self.tuples(
            f"SELECT r.status, r.manual_at, {_FOLLOWS_UP.format(r='r')} FROM requests r WHERE r.id = ?",
            (request_id,),
        )
        if not found:
            raise _unknown(request_id)
        status, manual_at, follows = found[0]
        if status != "scheduled" and manual_at is None and not follows:
            raise StateError(f"request {request_id} is {status}, not scheduled; nothing to unschedule")

    @operation
    def last_planned_at(self, request_id: int) -> datetime | None:
        found = self.values(
            "SELECT MAX(COALESCE(missed_until, planned_at)) FROM runs "
            "WHERE request_id = ? AND COALESCE(reason, '') NOT IN ('manual', 'retry', 'recovery')",
            (request_id,),
        )
        return self.dialect.to_instant(found[0]) if found and found[0] else None

    @operation
    def request_manual_run(self, request_id: int, now: datetime) -> RequestRecord:
        at = self.dialect.instant(now)
        with self.write():
            changed = self.execute(
                "UPDATE requests SET manual_at = COALESCE(manual_at, ?), updated_at = ? WHERE id = ?",
                (at, at, request_id),
            )
            if not changed:
                raise _unknown(request_id)
        self._notify()
        return self.get_request(request_id)
