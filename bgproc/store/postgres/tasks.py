"""The PostgreSQL store's registered tasks."""

from __future__ import annotations

from datetime import datetime

from psycopg.types.json import Jsonb

from ...errors import NotFound, RegistryError
from ..records import TaskRecord
from . import rows
from .connection import PostgresConnection
from .faults import operation


class Tasks(PostgresConnection):
    @operation
    def save_modules(self, modules: list[tuple[str, list[TaskRecord]]], now: datetime) -> list[list[str]]:
        owner = {task.name: module for module, tasks in modules for task in tasks}
        batch = {module for module, _ in modules}
        with self.transaction():
            # One registration at a time: two of one module must not both add its tasks.
            self.execute("LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE")
            for name, module in owner.items():
                self._refuse_taken(name, module, batch)
            for module, tasks in modules:
                for task in tasks:
                    self._upsert_task(module, task, now)
            return [self._unregister_gone(module, owner, now) for module, _ in modules]

    def _refuse_taken(self, name: str, module: str, batch: set[str]) -> None:
        other = self.row("SELECT module FROM tasks WHERE name = %s AND unregistered_at IS NULL", (name,))
        if other is not None and other["module"] != module and other["module"] not in batch:
            raise RegistryError(
                f"task name {name!r} is already registered from module {other['module']}; "
                f"set a different `name` on the task in {module}, or "
                f"`bgproc unregister {name}` first if it moved"
            )

    def _unregister_gone(self, module: str, owner: dict[str, str], now: datetime) -> list[str]:
        registered = self.values(
            "SELECT name FROM tasks WHERE module = %s AND unregistered_at IS NULL ORDER BY name", (module,)
        )
        gone = [name for name in registered if name not in owner]
        for name in gone:
            self._unregister(name, now)
        return gone

    def _upsert_task(self, module: str, task: TaskRecord, now: datetime) -> None:
        self.execute(
            """
            INSERT INTO tasks (name, import_path, module, search_path, params_type, fields,
                description, timeout_s, registered_at, updated_at, unregistered_at,
                retries, retry_delay_s, recover)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, NULL, %s, %s, %s)
            ON CONFLICT (name) DO UPDATE SET
                import_path = excluded.import_path, module = excluded.module,
                search_path = excluded.search_path, params_type = excluded.params_type,
                fields = excluded.fields, description = excluded.description,
                timeout_s = excluded.timeout_s, updated_at = excluded.updated_at,
                unregistered_at = NULL, retries = excluded.retries,
                retry_delay_s = excluded.retry_delay_s, recover = excluded.recover
            """,
            (
                task.name, task.import_path, module, task.search_path, task.params_type, Jsonb(task.fields),
                task.description, task.timeout_s, now, now, task.retries, task.retry_delay_s, task.recover,
            ),
        )

    @operation
    def get_task(self, name: str, *, include_unregistered: bool = False) -> TaskRecord | None:
        sql = "SELECT * FROM tasks WHERE name = %s"
        if not include_unregistered:
            sql += " AND unregistered_at IS NULL"
        found = self.row(sql, (name,))
        return rows.task(found) if found else None

    @operation
    def find_task_by_import_path(self, import_path: str) -> TaskRecord | None:
        found = self.row("SELECT * FROM tasks WHERE import_path = %s AND unregistered_at IS NULL", (import_path,))
        return rows.task(found) if found else None

    @operation
    def pending_request_params(self, task: str) -> list[tuple[int, bytes]]:
        found = self.rows(
            "SELECT id, params FROM requests WHERE task = %s AND (status = 'scheduled' OR manual_at IS NOT NULL "
            "OR id IN (SELECT request_id FROM reruns)) ORDER BY id",
            (task,),
        )
        return [(int(r["id"]), bytes(r["params"])) for r in found]

    @operation
    def list_tasks(self) -> list[TaskRecord]:
        return [rows.task(r) for r in self.rows("SELECT * FROM tasks WHERE unregistered_at IS NULL ORDER BY name")]

    @operation
    def unregister_task(self, name: str, now: datetime) -> int:
        with self.transaction():
            return self._unregister(name, now)

    def _unregister(self, name: str, now: datetime) -> int:
        found = self.execute(
            "UPDATE tasks SET unregistered_at = %s, updated_at = %s WHERE name = %s AND unregistered_at IS NULL",
            (now, now, name),
        )
        if not found:
            raise NotFound(f"no registered task named {name!r}; see `bgproc tasks`")
        return self.execute(
            "UPDATE requests SET status = 'unscheduled', next_run_at = NULL, updated_at = %s "
            "WHERE task = %s AND status = 'scheduled'",
            (now, name),
        )
