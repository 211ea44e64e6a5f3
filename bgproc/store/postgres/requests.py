"""The PostgreSQL store's process requests. Each change wakes the daemons once committed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from ...errors import NotFound, StateError
from ...timing import Timing
from ..records import RequestRecord
from . import rows
from .connection import PostgresConnection
from .faults import operation

# A request ({r}) with a retry or recovery waiting, or a run going that one may follow.
_FOLLOWS_UP = (
    "(EXISTS (SELECT 1 FROM reruns x WHERE x.request_id = {r}.id) OR (EXISTS (SELECT 1 FROM runs "
    "WHERE runs.request_id = {r}.id AND runs.status = 'running') AND EXISTS (SELECT 1 FROM tasks t "
    "WHERE t.name = {r}.task AND (COALESCE({r}.retries, t.retries) > 0 OR COALESCE({r}.recover, t.recover)))))"
)


def _unknown(request_id: int) -> NotFound:
    return NotFound(f"no request with id {request_id}; see `bgproc requests --all`")


class Requests(PostgresConnection):
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
        with self.transaction():
            (request_id,) = self.values(
                """
                INSERT INTO requests (task, params, timing, timezone, start_at, finish_at, status,
                    next_run_at, timeout_s, allow_overlap, "user", created_at, updated_at,
                    retries, retry_delay_s, recover)
                VALUES (%s, %s, %s, %s, %s, %s, 'scheduled', %s, %s, %s, %s, %s, %s, %s, %s, %s)
                RETURNING id
                """,
                (
                    task, params, Jsonb(timing.to_dict()), timing.zone, timing.start, timing.finish, next_run_at,
                    timeout_s, allow_overlap, user, now, now, retries, retry_delay_s, recover,
                ),
            )
        self._notify()
        return int(request_id)

    @operation
    def get_request(self, request_id: int) -> RequestRecord:
        found = self.row(rows.REQUEST_SELECT + " WHERE r.id = %s", (request_id,))
        if found is None:
            raise _unknown(request_id)
        return rows.request(found)

    @operation
    def list_requests(self, *, include_all: bool = False, limit: int | None = None) -> list[RequestRecord]:
        sql = rows.REQUEST_SELECT
        if not include_all:
            sql += " WHERE r.status = 'scheduled'"
        sql += " ORDER BY r.id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [rows.request(r) for r in self.rows(sql)]

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
        with self.transaction():
            row = self.row("SELECT status FROM requests WHERE id = %s FOR NO KEY UPDATE", (request_id,))
            if row is None:
                raise _unknown(request_id)
            if expect_status is not None and row["status"] not in expect_status:
                raise StateError(f"request {request_id} is {row['status']}")
            sets = "status = %s, next_run_at = %s, updated_at = %s"
            if status == "unscheduled":
                sets += ", manual_at = NULL"  # no future runs: a pending manual one included
            values: list[Any] = [status, next_run_at, now]
            if timing is not None:
                sets += ", timing = %s, timezone = %s, start_at = %s, finish_at = %s"
                values += [Jsonb(timing.to_dict()), timing.zone, timing.start, timing.finish]
            for name, value in rows.policy_columns(policy).items():
                sets += f", {name} = %s"
                values.append(value)
            self.execute(f"UPDATE requests SET {sets} WHERE id = %s", [*values, request_id])
        self._notify()

    @operation
    def unschedule_requests(self, request_ids: list[int], now: datetime) -> None:
        with self.transaction():
            self.execute("SELECT 1 FROM requests WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE", (request_ids,))
            for request_id in request_ids:
                self._check_unschedulable(request_id)
            # A retry or recovery waiting, or one that a run going may call for, is a
            # future run too: it goes, and from now on no run of it is followed up.
            self.execute(
                "UPDATE requests SET status = CASE WHEN status = 'scheduled' OR "
                f"{_FOLLOWS_UP.format(r='requests')} THEN 'unscheduled' ELSE status END, "
                "next_run_at = NULL, manual_at = NULL, updated_at = %s WHERE id = ANY(%s)",
                (now, request_ids),
            )
            self.execute("DELETE FROM reruns WHERE request_id = ANY(%s)", (request_ids,))
        self._notify()

    def _check_unschedulable(self, request_id: int) -> None:
        row = self.row(
            f"SELECT r.status, r.manual_at, {_FOLLOWS_UP.format(r='r')} AS follows FROM requests r WHERE r.id = %s",
            (request_id,),
        )
        if row is None:
            raise _unknown(request_id)
        if row["status"] != "scheduled" and row["manual_at"] is None and not row["follows"]:
            raise StateError(f"request {request_id} is {row['status']}, not scheduled; nothing to unschedule")

    @operation
    def last_planned_at(self, request_id: int) -> datetime | None:
        (last,) = self.values(
            "SELECT MAX(COALESCE(missed_until, planned_at)) FROM runs "
            "WHERE request_id = %s AND COALESCE(reason, '') NOT IN ('manual', 'retry', 'recovery')",
            (request_id,),
        )
        return last  # type: ignore[no-any-return]

    @operation
    def request_manual_run(self, request_id: int, now: datetime) -> RequestRecord:
        with self.transaction():
            changed = self.execute(
                "UPDATE requests SET manual_at = COALESCE(manual_at, %s), updated_at = %s WHERE id = %s",
                (now, now, request_id),
            )
            if not changed:
                raise _unknown(request_id)
        self._notify()
        return self.get_request(request_id)
