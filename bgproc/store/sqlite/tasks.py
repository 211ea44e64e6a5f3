"""The SQLite store's registered tasks."""

from __future__ import annotations

import json
from datetime import datetime

from ...errors import NotFound, RegistryError
from ..records import TaskRecord
from . import rows
from .connection import SQLiteConnection
from .faults import operation
from .schema import ts


class Tasks(SQLiteConnection):
    @operation
    def save_modules(self, modules: list[tuple[str, list[TaskRecord]]], now: datetime) -> list[list[str]]:
        owner = {task.name: module for module, tasks in modules for task in tasks}
        batch = {module for module, _ in modules}
        with self.immediate():
            for name, module in owner.items():
                self._refuse_taken(name, module, batch)
            for module, tasks in modules:
                for task in tasks:
                    self._upsert_task(module, task, now)
            return [self._unregister_gone(module, owner, now) for module, _ in modules]

    def _refuse_taken(self, name: str, module: str, batch: set[str]) -> None:
        other = self.conn.execute(
            "SELECT module, import_path FROM tasks WHERE name = ? AND unregistered_at IS NULL", (name,)
        ).fetchone()
        if other is not None and other[0] != module and other[0] not in batch:
            raise RegistryError(
                f"task name {name!r} is already registered from module {other[0]}; "
                f"set a different `name` on the task in {module}, or "
                f"`bgproc unregister {name}` first if it moved"
            )

    def _unregister_gone(self, module: str, owner: dict[str, str], now: datetime) -> list[str]:
        gone = [
            row[0]
            for row in self.conn.execute(
                "SELECT name FROM tasks WHERE module = ? AND unregistered_at IS NULL", (module,)
            ).fetchall()
            if row[0] not in owner
        ]
        for name in gone:
            self._unregister(name, now)
        return gone

    def _upsert_task(self, module: str, task: TaskRecord, now: datetime) -> None:
        self.conn.execute(
            """
            INSERT INTO tasks (name, import_path, module, search_path, params_type, fields,
                description, timeout_s, registered_at, updated_at, unregistered_at,
                retries, retry_delay_s, recover)
            VALUES (:name, :import_path, :module, :search_path, :params_type, :fields,
                :description, :timeout_s, :now, :now, NULL, :retries, :retry_delay_s, :recover)
            ON CONFLICT (name) DO UPDATE SET
                import_path = excluded.import_path, module = excluded.module,
                search_path = excluded.search_path, params_type = excluded.params_type,
                fields = excluded.fields, description = excluded.description,
                timeout_s = excluded.timeout_s, updated_at = excluded.updated_at,
                unregistered_at = NULL, retries = excluded.retries,
                retry_delay_s = excluded.retry_delay_s, recover = excluded.recover
            """,
            {
                "name": task.name, "import_path": task.import_path, "module": module,
                "search_path": task.search_path, "params_type": task.params_type,
                "fields": json.dumps(task.fields), "description": task.description,
                "timeout_s": task.timeout_s, "now": ts(now), "retries": task.retries,
                "retry_delay_s": task.retry_delay_s, "recover": int(task.recover),
            },
        )

    @operation
    def get_task(self, name: str, *, include_unregistered: bool = False) -> TaskRecord | None:
        sql = "SELECT * FROM tasks WHERE name = ?"
        if not include_unregistered:
            sql += " AND unregistered_at IS NULL"
        found = list(self.db.query(sql, [name]))
        return rows.task(found[0]) if found else None

    @operation
    def find_task_by_import_path(self, import_path: str) -> TaskRecord | None:
        found = list(
            self.db.query("SELECT * FROM tasks WHERE import_path = ? AND unregistered_at IS NULL", [import_path])
        )
        return rows.task(found[0]) if found else None

    @operation
    def pending_request_params(self, task: str) -> list[tuple[int, bytes]]:
        found = self.conn.execute(
            "SELECT id, params FROM requests WHERE task = ? AND (status = 'scheduled' OR manual_at IS NOT NULL "
            "OR id IN (SELECT request_id FROM reruns)) ORDER BY id",
            (task,),
        )
        return [(int(r[0]), bytes(r[1])) for r in found]

    @operation
    def list_tasks(self) -> list[TaskRecord]:
        return [rows.task(r) for r in self.db.query("SELECT * FROM tasks WHERE unregistered_at IS NULL ORDER BY name")]

    @operation
    def unregister_task(self, name: str, now: datetime) -> int:
        with self.immediate():
            return self._unregister(name, now)

    def _unregister(self, name: str, now: datetime) -> int:
        found = self.conn.execute(
            "UPDATE tasks SET unregistered_at = ?, updated_at = ? WHERE name = ? AND unregistered_at IS NULL",
            (ts(now), ts(now), name),
        ).rowcount
        if not found:
            raise NotFound(f"no registered task named {name!r}; see `bgproc tasks`")
        return self.conn.execute(
            "UPDATE requests SET status = 'unscheduled', next_run_at = NULL, updated_at = ? "
            "WHERE task = ? AND status = 'scheduled'",
            (ts(now), name),
        ).rowcount
