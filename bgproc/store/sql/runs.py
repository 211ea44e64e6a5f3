"""Runs: recording them, their outcomes and follow-ups, logs,
progress and cancels, and reading them for the monitor."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ...errors import NotFound, StateError
from ...reruns import FollowUp, RetryPolicy, follow_up
from ..base import LogWrite
from ..records import RunRecord
from . import rows
from .connection import SQLConnection, operation

_FOLLOW_UP_FACTS = """
    SELECT runs.status, runs.reason, runs.attempt, runs.request_id, q.status AS request_status,
        q.retries, q.retry_delay_s, q.recover, t.retries AS task_retries,
        t.retry_delay_s AS task_retry_delay_s, t.recover AS task_recover,
        t.name IS NOT NULL AND t.unregistered_at IS NULL AS registered
    FROM runs JOIN requests q ON q.id = runs.request_id LEFT JOIN tasks t ON t.name = runs.task
    WHERE runs.id = ?
"""


class Runs(SQLConnection):
    @operation
    def insert_run(
        self,
        *,
        request_id: int,
        task: str,
        status: str,
        now: datetime,
        reason: str | None = None,
        planned_at: datetime | None = None,
        started_at: datetime | None = None,
        daemon_id: str | None = None,
        host: str | None = None,
        detail: str | None = None,
        missed_count: int | None = None,
        missed_until: datetime | None = None,
        attempt: int = 1,
        retry_of: int | None = None,
    ) -> int:
        """Record a run row (inside ``write()``: claiming's)."""
        t = self.dialect.instant
        run_id = self.insert(
            """
            INSERT INTO runs (request_id, task, status, reason, planned_at, started_at, daemon_id, host,
                detail, missed_count, missed_until, created_at, attempt, retry_of)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            (
                request_id, task, status, reason, t(planned_at), t(started_at), daemon_id, host,
                detail, missed_count, t(missed_until), t(now), attempt, retry_of,
            ),
        )
        if status == "running":
            self.execute("INSERT INTO run_logs (run_id) VALUES (?)", (run_id,))
        return run_id

    @operation
    def set_run_pid(self, run_id: int, pid: int) -> None:
        with self.write():
            self.execute("UPDATE runs SET pid = ? WHERE id = ?", (pid, run_id))

    @operation
    def finish_run(
        self,
        run_id: int,
        *,
        status: str,
        ended_at: datetime,
        exit_code: int | None = None,
        signal: int | None = None,
        cpu_s: float | None = None,
        max_rss_kb: int | None = None,
        detail: str | None = None,
        log: LogWrite | None = None,
    ) -> bool:
        with self.write():
            changed = self.execute(
                """
                UPDATE runs SET status = ?, ended_at = ?, exit_code = ?, signal = ?, cpu_s = ?,
                    max_rss_kb = ?, detail = COALESCE(?, detail)
                WHERE id = ? AND status = 'running'
                """,
                (status, self.dialect.instant(ended_at), exit_code, signal, cpu_s, max_rss_kb, detail, run_id),
            )
            if changed:
                self.follow_up(run_id, ended_at)
            if log is not None:
                self._write(log)
        return bool(changed)

    @operation
    def follow_up(self, run_id: int, now: datetime) -> FollowUp:
        """Schedule the retry or recovery that a run's recorded outcome calls for, if
        any, and say so in its detail (inside ``write()``, with the outcome)."""
        d = self.dialect
        row = self.row(_FOLLOW_UP_FACTS, (run_id,))
        if row is None:
            return FollowUp(reason=None)
        task = RetryPolicy.of(
            retries=row["task_retries"], retry_delay_s=row["task_retry_delay_s"], recover=d.to_flag(row["task_recover"])
        )
        decided = follow_up(
            status=row["status"], reason=row["reason"], attempt=row["attempt"], registered=bool(row["registered"]),
            unscheduled=row["request_status"] == "unscheduled", now=now, jitter=self.jitter(),
            policy=RetryPolicy.of(
                retries=row["retries"], retry_delay_s=row["retry_delay_s"], recover=d.to_flag(row["recover"]),
                task=task,
            ),
        )
        if decided.reason is not None:
            self.execute(
                "INSERT INTO reruns (request_id, run_id, reason, attempt, due_at, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (row["request_id"], run_id, decided.reason, decided.attempt, d.instant(decided.due_at), d.instant(now)),
            )
            # Whoever recorded an interruption said "not re-run", the default; this run is.
            self.execute("UPDATE runs SET detail = replace(detail, '; not re-run', '') WHERE id = ?", (run_id,))
        if decided.note:
            self.add_run_note(run_id, decided.note)
        return decided

    @operation
    def add_run_note(self, run_id: int, note: str) -> None:
        """Append to a run's detail (what followed it, or why nothing did)."""
        self.execute("UPDATE runs SET detail = COALESCE(detail || '; ', '') || ? WHERE id = ?", (note, run_id))

    @operation
    def latest_run_row(self, request_id: int) -> RunRecord | None:
        """A request's newest runs row of any status (without its log)."""
        found = self.list_runs(request_id=request_id, limit=1)
        return found[0] if found else None

    @operation
    def extend_skipped(self, run_id: int, *, count: int, until: datetime, detail: str) -> None:
        """A ``skipped`` row now stands for ``count`` more slots after its own, up to
        ``until`` (inside ``write()``)."""
        self.execute(
            "UPDATE runs SET missed_count = ?, missed_until = ?, detail = ? WHERE id = ? AND status = 'skipped'",
            (count, self.dialect.instant(until), detail, run_id),
        )

    @operation
    def write_logs(self, writes: list[LogWrite]) -> None:
        with self.write():
            for write in writes:
                self._write(write)

    def _write(self, write: LogWrite) -> None:
        if write.dropped is not None:
            self.write_log(write.run_id, append_head=write.append_head, tail=write.tail, dropped=write.dropped)
        if write.progress is not None:
            self.set_progress(write.run_id, *write.progress)

    @operation
    def set_progress(self, run_id: int, done: float, total: float | None, message: str | None) -> None:
        self.execute(
            "UPDATE runs SET progress_done = ?, progress_total = ?, progress_message = ? WHERE id = ?",
            (done, total, message, run_id),
        )

    @operation
    def write_log(self, run_id: int, *, append_head: str, tail: str | None, dropped: int) -> None:
        """Append to a run's log head and replace its tail (the daemon bounds both)."""
        if tail is None:
            self.execute(
                "UPDATE run_logs SET head = head || ?, dropped_bytes = ? WHERE run_id = ?",
                (append_head, dropped, run_id),
            )
        else:
            self.execute(
                "UPDATE run_logs SET head = head || ?, tail = ?, dropped_bytes = ? WHERE run_id = ?",
                (append_head, tail, dropped, run_id),
            )

    @operation
    def request_cancel(self, run_id: int, now: datetime) -> RunRecord:
        with self.write():
            run = self.get_run(run_id)
            if run.status != "running":
                raise StateError(f"run {run_id} is {run.status}, not running; nothing to cancel")
            self.execute(
                "UPDATE runs SET cancel_requested_at = COALESCE(cancel_requested_at, ?) WHERE id = ?",
                (self.dialect.instant(now), run_id),
            )
        self._notify()
        return self.get_run(run_id)

    @operation
    def cancel_requested(self, run_ids: list[int]) -> list[int]:
        if not run_ids:
            return []
        these, ids = self.dialect.any_of("id", run_ids)
        found = self.values(f"SELECT id FROM runs WHERE {these} AND cancel_requested_at IS NOT NULL ORDER BY id", ids)
        return [int(v) for v in found]

    @operation
    def get_run(self, run_id: int, *, with_log: bool = True) -> RunRecord:
        found = self.row(rows.run_select(self.dialect, with_log) + " WHERE runs.id = ?", (run_id,))
        if found is None:
            raise NotFound(f"no run with id {run_id}; see `bgproc monitor`")
        return rows.run(self.dialect, found)

    @operation
    def list_runs(
        self,
        *,
        task: str | None = None,
        status: str | None = None,
        request_id: int | None = None,
        since: datetime | None = None,
        host: str | None = None,
        limit: int = 50,
        with_log: bool = False,
    ) -> list[RunRecord]:
        filters = {"runs.task = ?": task, "runs.status = ?": status, "runs.request_id = ?": request_id,
                   "runs.created_at >= ?": self.dialect.instant(since), "runs.host = ?": host}
        where = [clause for clause, value in filters.items() if value is not None]
        values: list[Any] = [value for value in filters.values() if value is not None]
        sql = rows.run_select(self.dialect, with_log)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY runs.id DESC LIMIT ?"
        values.append(limit)
        return [rows.run(self.dialect, r) for r in self.rows(sql, values)]

    @operation
    def running_runs(self, daemon_id: str | None = None) -> list[RunRecord]:
        sql = rows.run_select(self.dialect, False) + " WHERE runs.status = 'running'"
        values: list[Any] = []
        if daemon_id is not None:
            sql += " AND runs.daemon_id = ?"
            values.append(daemon_id)
        return [rows.run(self.dialect, r) for r in self.rows(sql + " ORDER BY runs.id", values)]
