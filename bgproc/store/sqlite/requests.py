"""The SQLite store's process requests. Each change wakes the daemons once committed."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ...errors import NotFound, StateError
from ...timing import Timing
from ..records import RequestRecord
from . import rows
from .connection import SQLiteConnection
from .faults import operation
from .schema import dt, ts

# A request ({r}) with a retry or recovery waiting, or a run going that one may follow.
_FOLLOWS_UP = (
    "(EXISTS (SELECT 1 FROM reruns x WHERE x.request_id = {r}.id) OR (EXISTS (SELECT 1 FROM runs "
    "WHERE runs.request_id = {r}.id AND runs.status = 'running') AND EXISTS (SELECT 1 FROM tasks t "
    "WHERE t.name = {r}.task AND (COALESCE({r}.retries, t.retries) > 0 OR COALESCE({r}.recover, t.recover)))))"
)


def _unknown(request_id: int) -> NotFound:
    return NotFound(f"no request with id {request_id}; see `bgproc requests --all`")


class Requests(SQLiteConnection):
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
        with self.immediate():
            cursor = self.conn.execute(
                """
                INSERT INTO requests (task, params, timing, timezone, start_at, finish_at, status,
                    next_run_at, timeout_s, allow_overlap, user, created_at, updated_at,
                    retries, retry_delay_s, recover)
                VALUES (?, ?, ?, ?, ?, ?, 'scheduled', ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                (
                    task, params, json.dumps(timing.to_dict()), timing.zone, ts(timing.start),
                    ts(timing.finish), ts(next_run_at), timeout_s, int(allow_overlap), user,
                    ts(now), ts(now), retries, retry_delay_s, None if recover is None else int(recover),
                ),
            )
            request_id = int(cursor.lastrowid or 0)
        self._notify()
        return request_id

    @operation
    def get_request(self, request_id: int) -> RequestRecord:
        found = list(self.db.query(rows.REQUEST_SELECT + " WHERE r.id = ?", [request_id]))
        if not found:
            raise _unknown(request_id)
        return rows.request(found[0])

    @operation
    def list_requests(self, *, include_all: bool = False, limit: int | None = None) -> list[RequestRecord]:
        sql = rows.REQUEST_SELECT
        if not include_all:
            sql += " WHERE r.status = 'scheduled'"
        sql += " ORDER BY r.id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [rows.request(r) for r in self.db.query(sql)]

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
        with self.immediate():
            row = self.conn.execute("SELECT status FROM requests WHERE id = ?", (request_id,)).fetchone()
            if row is None:
                raise _unknown(request_id)
            if expect_status is not None and row[0] not in expect_status:
                raise StateError(f"request {request_id} is {row[0]}")
            sets = "status = ?, next_run_at = ?, updated_at = ?"
            if status == "unscheduled":
                sets += ", manual_at = NULL"  # no future runs: a pending manual one included
            values: list[Any] = [status, ts(next_run_at), ts(now)]
            if timing is not None:
                sets += ", timing = ?, timezone = ?, start_at = ?, finish_at = ?"
                values += [json.dumps(timing.to_dict()), timing.zone, ts(timing.start), ts(timing.finish)]
            for name, value in rows.policy_columns(policy).items():
                sets += f", {name} = ?"
                values.append(value)
            self.conn.execute(f"UPDATE requests SET {sets} WHERE id = ?", [*values, request_id])
        self._notify()

    @operation
    def unschedule_requests(self, request_ids: list[int], now: datetime) -> None:
        with self.immediate():
            for request_id in request_ids:
                self._check_unschedulable(request_id)
            marks = ", ".join("?" for _ in request_ids)
            # A retry or recovery waiting, or one that a run going may call for, is a
            # future run too: it goes, and from now on no run of it is followed up.
            self.conn.execute(
                "UPDATE requests SET status = CASE WHEN status = 'scheduled' OR "
                f"{_FOLLOWS_UP.format(r='requests')} THEN 'unscheduled' ELSE status END, "
                f"next_run_at = NULL, manual_at = NULL, updated_at = ? WHERE id IN ({marks})",
                [ts(now), *request_ids],
            )
            self.conn.execute(f"DELETE FROM reruns WHERE request_id IN ({marks})", request_ids)
        self._notify()

    def _check_unschedulable(self, request_id: int) -> None:
        row = self.conn.execute(
            f"SELECT r.status, r.manual_at, {_FOLLOWS_UP.format(r='r')} FROM requests r WHERE r.id = ?",
            (request_id,),
        ).fetchone()
        if row is None:
            raise _unknown(request_id)
        if row[0] != "scheduled" and row[1] is None and not row[2]:
            raise StateError(f"request {request_id} is {row[0]}, not scheduled; nothing to unschedule")

    @operation
    def last_planned_at(self, request_id: int) -> datetime | None:
        row = self.conn.execute(
            "SELECT MAX(COALESCE(missed_until, planned_at)) FROM runs "
            "WHERE request_id = ? AND COALESCE(reason, '') NOT IN ('manual', 'retry', 'recovery')",
            (request_id,),
        ).fetchone()
        return dt(row[0]) if row and row[0] else None

    @operation
    def request_manual_run(self, request_id: int, now: datetime) -> RequestRecord:
        with self.immediate():
            changed = self.conn.execute(
                "UPDATE requests SET manual_at = COALESCE(manual_at, ?), updated_at = ? WHERE id = ?",
                (ts(now), ts(now), request_id),
            ).rowcount
            if not changed:
                raise _unknown(request_id)
        self._notify()
        return self.get_request(request_id)
