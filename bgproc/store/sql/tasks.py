"""The registered tasks."""

from __future__ import annotations

from datetime import datetime

from ...errors import NotFound, RegistryError
from ..records import TaskRecord
from . import rows
from .connection import SQLConnection, operation


class Tasks(SQLConnection):
    @operation
    def save_modules(self, modules: list[tuple[str, list[TaskRecord]]], now: datetime) -> list[list[str]]:
        owner = {task.name: module for module, tasks in modules for task in tasks}
        batch = {module for module, _ in modules}
        with self.write():
            if self.dialect.lock_registrations:
                # One registration at a time: two of one module must not both add its tasks.
                self.execute(self.dialect.lock_registrations)
            for name, module in owner.items():
                self._refuse_taken(name, module, batch)
            for module, tasks in modules:
                for task in tasks:
                    self._upsert_task(module, task, now)
            return [self._unregister_gone(module, owner, now) for module, _ in modules]

    def _refuse_taken(self, name: str, module: str, batch: set[str]) -> None:
        found = self.values("SELECT module FROM tasks WHERE name = ? AND unregistered_at IS NULL", (name,))
        other = found[0] if found else None
        if other is not None and other != module and other not in batch:
            raise RegistryError(
                f"task name {name!r} is already registered from module {other}; "
                f"set a different `name` on the task in {module}, or "
                f"`bgproc unregister {name}` first if it moved"
            )

    def _unregister_gone(self, module: str, owner: dict[str, str], now: datetime) -> list[str]:
        registered = self.values(
            "SELECT name FROM tasks WHERE module = ? AND unregistered_at IS NULL ORDER BY name", (module,)
        )
        gone = [name for name in registered if name not in owner]
        for name in gone:
            self._unregister(name, now)
        return gone

    def _upsert_task(self, module: str, task: TaskRecord, now: datetime) -> None:
        d = self.dialect
        self.execute(
            """
            INSERT INTO tasks (name, import_path, module, search_path, params_type, fields,
                description, timeout_s, registered_at, updated_at, unregistered_at,
                retries, retry_delay_s, recover)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)
            ON CONFLICT (name) DO UPDATE SET
                import_path = excluded.import_path, module = excluded.module,
                search_path = excluded.search_path, params_type = excluded.params_type,
                fields = excluded.fields, description = excluded.description,
                timeout_s = excluded.timeout_s, updated_at = excluded.updated_at,
                unregistered_at = NULL, retries = excluded.retries,
                retry_delay_s = excluded.retry_delay_s, recover = excluded.recover
            """,
            (
                task.name, task.import_path, module, task.search_path, task.params_type, d.json(task.fields),
                task.description, task.timeout_s, d.instant(now), d.instant(now), task.retries,
                task.retry_delay_s, d.flag(task.recover),
            ),
        )

    @operation
    def get_task(self, name: str, *, include_unregistered: bool = False) -> TaskRecord | None:
        sql = "SELECT * FROM tasks WHERE name = ?"
        if not include_unregistered:
            sql += " AND unregistered_at IS NULL"
        found = self.row(sql, (name,))
        return rows.task(self.dialect, found) if found else None

    @operation
    def find_task_by_import_path(self, import_path: str) -> TaskRecord | None:
        found = self.row("SELECT * FROM tasks WHERE import_path = ? AND unregistered_at IS NULL", (import_path,))
        return rows.task(self.dialect, found) if found else None

    @operation
    def pending_request_params(self, task: str) -> list[tuple[int, bytes]]:
        found = self.tuples(
            "SELECT id, params FROM requests WHERE task = ? AND (status = 'scheduled' OR manual_at IS NOT NULL "
            "OR id IN (SELECT request_id FROM reruns)) ORDER BY id",
            (task,),
        )
        return [(int(r[0]), bytes(r[1])) for r in found]

    @operation
    def list_tasks(self) -> list[TaskRecord]:
        found = self.rows("SELECT * FROM tasks WHERE unregistered_at IS NULL ORDER BY name")
        return [rows.task(self.dialect, r) for r in found]

    @operation
    def unregister_task(self, name: str, now: datetime) -> int:
        with self.write():
            return self._unregister(name, now)

    def _unregister(self, name: str, now: datetime) -> int:
        at = self.dialect.instant(now)
        found = self.execute(
            "UPDATE tasks SET unregistered_at = ?, updated_at = ? WHERE name = ? AND unregistered_at IS NULL",
            (at, at, name),
        )
        if not found:
            raise NotFound(f"no registered task named {name!r}; see `bgproc tasks`")
        return self.execute(
            "UPDATE requests SET status = 'unscheduled', next_run_at = NULL, updated_at = ? "
            "WHERE task = ? AND status = 'scheduled'",
            (at, name),
        )
