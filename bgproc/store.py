"""The store: the schema, its migrations, and every query. Nothing else writes SQL.

One SQLite file in WAL mode, through sqlite-utils. Instants are stored as
fixed-width UTC text (``2026-05-01T07:30:00.000000Z``) so that text order is
time order and the file reads well in ``sqlite3``.

The interface is narrow on purpose (rows in, value objects out) so that a
PostgreSQL store can stand beside it for daemons on several hosts.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from . import filesafety, wakeup
from .dbfile import FileWatch
from .errors import NotFound, RegistryError, StateError, StoreError
from .records import DaemonRecord, RequestRecord, RunRecord, TaskRecord
from .reruns import FollowUp, RetryPolicy, follow_up
from .timing import Timing

BUSY_TIMEOUT_MS = 30_000

# The runs that stand for one occurrence of their request (see migration 2).
_OCCURRENCE_RUN = "{t}.reason IN ('schedule', 'now', 'catch-up', 'manual') AND {t}.status NOT IN ('skipped', 'missed')"
_SAME_OCCURRENCE = (
    "o.planned_at = runs.planned_at AND (o.reason IS 'manual') = (runs.reason IS 'manual') AND "
    + _OCCURRENCE_RUN.format(t="o")
)

# Ordered migrations; the schema version is PRAGMA user_version = len(applied).
MIGRATIONS: list[str] = [
    """
    CREATE TABLE tasks (
        name TEXT PRIMARY KEY,
        import_path TEXT NOT NULL,
        module TEXT NOT NULL,
        search_path TEXT,
        params_type TEXT NOT NULL,
        fields TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        timeout_s REAL NOT NULL,
        registered_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        unregistered_at TEXT
    );
    CREATE INDEX tasks_import_path ON tasks(import_path);

    CREATE TABLE requests (
        id INTEGER PRIMARY KEY,
        task TEXT NOT NULL REFERENCES tasks(name),
        params BLOB NOT NULL,
        timing TEXT NOT NULL,
        timezone TEXT NOT NULL,
        start_at TEXT NOT NULL,
        finish_at TEXT,
        status TEXT NOT NULL CHECK (status IN ('scheduled', 'unscheduled', 'complete')),
        next_run_at TEXT,
        timeout_s REAL,
        allow_overlap INTEGER NOT NULL DEFAULT 0,
        user TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        manual_at TEXT
    );
    -- "what is due next": scheduled requests in fire order (equality, then range)
    CREATE INDEX requests_due ON requests(status, next_run_at);
    -- runs asked for by hand (`bgproc run`), whatever the request's status
    CREATE INDEX requests_manual ON requests(manual_at) WHERE manual_at IS NOT NULL;

    CREATE TABLE daemons (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        heartbeat_at TEXT NOT NULL,
        stopped_at TEXT,
        workers INTEGER NOT NULL
    );
    -- the live daemons, scanned by every daemon's reaper (stopped rows pile up until pruned)
    CREATE INDEX daemons_live ON daemons(started_at) WHERE stopped_at IS NULL;

    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        request_id INTEGER NOT NULL REFERENCES requests(id),
        task TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('running', 'success', 'error', 'timeout',
            'cancelled', 'interrupted', 'skipped', 'missed')),
        reason TEXT,
        planned_at TEXT,
        started_at TEXT,
        ended_at TEXT,
        exit_code INTEGER,
        signal INTEGER,
        daemon_id TEXT,
        pid INTEGER,
        cpu_s REAL,
        max_rss_kb INTEGER,
        detail TEXT,
        missed_count INTEGER,
        missed_until TEXT,
        progress_done REAL,
        progress_total REAL,
        progress_message TEXT,
        cancel_requested_at TEXT,
        created_at TEXT NOT NULL
    );
    -- "latest runs" overall is the rowid; these serve the monitor's filters
    CREATE INDEX runs_request ON runs(request_id, id);
    CREATE INDEX runs_task ON runs(task, id);
    CREATE INDEX runs_status ON runs(status, id);
    CREATE INDEX runs_running ON runs(daemon_id) WHERE status = 'running';

    CREATE TABLE run_logs (
        run_id INTEGER PRIMARY KEY REFERENCES runs(id),
        head TEXT NOT NULL DEFAULT '',
        tail TEXT NOT NULL DEFAULT '',
        dropped_bytes INTEGER NOT NULL DEFAULT 0
    );
    """,
    # One record per occurrence, held by the schema too: a run that executes for a
    # planned slot (schedule, now, catch-up) or a manual run is unique by request and
    # planned instant (a manual run and a slot may share an instant). Skipped and
    # missed rows share their slot's instant and are left out. A run recorded twice
    # before this (a bug) keeps its row, its reason cleared and its detail saying so.
    f"""
    UPDATE runs SET reason = NULL,
        detail = COALESCE(detail || ' - ', '') || 'recorded the same occurrence as run ' || (
            SELECT MIN(o.id) FROM runs o WHERE o.request_id = runs.request_id AND {_SAME_OCCURRENCE}
        ) || ' (found when the database was upgraded, and not counted as a run of it)'
    WHERE {_OCCURRENCE_RUN.format(t="runs")} AND EXISTS (
        SELECT 1 FROM runs o WHERE o.request_id = runs.request_id AND o.id < runs.id AND {_SAME_OCCURRENCE}
    );
    CREATE UNIQUE INDEX runs_occurrence ON runs(request_id, reason IS 'manual', planned_at)
        WHERE {_OCCURRENCE_RUN.format(t="runs")};
    """,
    # Retries and recovery, by choice: the task's policy (recorded at registration) and
    # the request's (NULL: the task's); each run's attempt and the run it follows up,
    # at most one follow-up per run; the follow-ups not yet claimed, in due order.
    """
    ALTER TABLE tasks ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tasks ADD COLUMN retry_delay_s REAL;
    ALTER TABLE tasks ADD COLUMN recover INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE requests ADD COLUMN retries INTEGER;
    ALTER TABLE requests ADD COLUMN retry_delay_s REAL;
    ALTER TABLE requests ADD COLUMN recover INTEGER;
    ALTER TABLE runs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE runs ADD COLUMN retry_of INTEGER REFERENCES runs(id);
    CREATE UNIQUE INDEX runs_retry_of ON runs(retry_of) WHERE retry_of IS NOT NULL;

    CREATE TABLE reruns (
        id INTEGER PRIMARY KEY,
        request_id INTEGER NOT NULL REFERENCES requests(id),
        run_id INTEGER NOT NULL UNIQUE REFERENCES runs(id),
        reason TEXT NOT NULL CHECK (reason IN ('retry', 'recovery')),
        attempt INTEGER NOT NULL,
        due_at TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX reruns_due ON reruns(due_at);
    CREATE INDEX reruns_request ON reruns(request_id);
    """,
]


def ts(value: datetime | None) -> str | None:
    """An aware instant as fixed-width UTC text."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dt(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def default_path() -> Path:
    """``BGPROC_DB`` if set, else ``bgproc.db`` in the user's data directory."""
    env = os.environ.get("BGPROC_DB")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("bgproc", appauthor=False)) / "bgproc.db"


class Store:
    """The bgproc database. Open with ``Store.open(path)``."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn
        self.db = sqlite_utils.Database(conn, execute_plugins=False)
        # Where a retry's jitter comes from (0 to 1); tests make it steady.
        self.jitter: Callable[[], float] = random.random
        self._watch: FileWatch | None = None

    # ------------------------------------------------------------------
    # Opening

    @classmethod
    def open(cls, path: str | Path | None = None, *, create: bool = True) -> Store:
        """Open and migrate the database file; create it (owner-only) if missing and
        ``create`` is true, else refuse, so a mistyped path is not silently a new one.
        A database that another user could change is refused (``filesafety``), each time."""
        with filesafety.private_umask():  # the file, and SQLite's -wal and -shm
            return cls._open(path, create=create)

    @classmethod
    def _open(cls, path: str | Path | None, *, create: bool) -> Store:
        path = Path(path).expanduser() if path is not None else default_path()
        path = path.absolute()
        if not create and not path.exists():
            raise StoreError(
                f"no bgproc database at {path}; register a task first (`bgproc register MODULE`) "
                "or check --db / BGPROC_DB"
            )
        path = filesafety.private_database(path, create=create)
        try:
            conn = sqlite3.connect(
                str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            ours = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'requests'").fetchone()
            if (version == 0 and not create) or (version > 0 and ours is None):
                # An empty file, or another program's database: not ours to set up.
                conn.close()
                raise StoreError(
                    f"{path} is not a bgproc database (it has no bgproc tables); "
                    + ("register a task first (`bgproc register MODULE`) or " if version == 0 else "")
                    + "check --db / BGPROC_DB"
                )
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open database {path}: {exc}; is it a bgproc database?") from None
        store = cls(path, conn)
        store._migrate()
        return store

    def close(self) -> None:
        self.conn.close()
        if self._watch is not None:
            # Only now: closing it drops this process's locks on the file (see dbfile).
            self._watch.close()
            self._watch = None

    def file_watch(self) -> FileWatch:
        """A watch on the database file: whether it is still the one opened (see
        ``dbfile``). Its descriptor stays open until the store is closed."""
        if self._watch is None:
            try:
                self._watch = FileWatch(self.path, os.open(self.path, os.O_RDONLY))
            except OSError as exc:
                raise StoreError(f"cannot open database {self.path}: {exc.strerror}") from None
        return self._watch

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        version = self.schema_version()
        if version > len(MIGRATIONS):
            raise StoreError(
                f"database {self.path} has schema version {version}, newer than this bgproc "
                f"understands ({len(MIGRATIONS)}); upgrade bgproc"
            )
        if version == len(MIGRATIONS):
            return
        with self.immediate():
            version = self.schema_version()  # another process may have migrated meanwhile
            for number in range(version, len(MIGRATIONS)):
                for statement in _statements(MIGRATIONS[number]):
                    self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {number + 1}")

    def set_busy_timeout(self, ms: int) -> None:
        """How long a statement waits for another connection's lock before failing."""
        self.conn.execute(f"PRAGMA busy_timeout = {int(ms)}")

    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def immediate(self) -> Iterator[None]:
        """A write transaction that takes the write lock at once (``BEGIN IMMEDIATE``)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            # SQLite ends the transaction itself on some errors (a full disk, an I/O
            # error): rolling back again would hide the error that matters.
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def data_version(self) -> int:
        """Changes whenever another connection commits (``PRAGMA data_version``)."""
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def notify(self) -> None:
        """Wake the daemons on this database after a change they should see."""
        wakeup.notify(self.path)

    # ------------------------------------------------------------------
    # Tasks

    def save_modules(
        self, modules: list[tuple[str, list[TaskRecord]]], now: datetime
    ) -> list[list[str]]:
        """Record the tasks of each module, in one transaction.

        The batch is taken as a whole: a task that moved between two modules
        of the batch is updated, and a registered task of these modules is
        unregistered only when no module of the batch defines it any more
        (returned per module). A name registered from a module outside the
        batch is refused and nothing is written.
        """
        owner = {task.name: module for module, tasks in modules for task in tasks}
        batch = {module for module, _ in modules}
        gone_per_module = []
        with self.immediate():
            for name, module in owner.items():
                other = self.conn.execute(
                    "SELECT module, import_path FROM tasks WHERE name = ? AND unregistered_at IS NULL", (name,)
                ).fetchone()
                if other is not None and other[0] != module and other[0] not in batch:
                    raise RegistryError(
                        f"task name {name!r} is already registered from module {other[0]}; "
                        f"set a different `name` on the task in {module}, or "
                        f"`bgproc unregister {name}` first if it moved"
                    )
            for module, tasks in modules:
                for task in tasks:
                    self._upsert_task(module, task, now)
            for module, _ in modules:
                gone = [
                    row[0]
                    for row in self.conn.execute(
                        "SELECT name FROM tasks WHERE module = ? AND unregistered_at IS NULL", (module,)
                    ).fetchall()
                    if row[0] not in owner
                ]
                for name in gone:
                    self._unregister(name, now)
                gone_per_module.append(gone)
        return gone_per_module

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

    def get_task(self, name: str, *, include_unregistered: bool = False) -> TaskRecord | None:
        sql = "SELECT * FROM tasks WHERE name = ?"
        if not include_unregistered:
            sql += " AND unregistered_at IS NULL"
        rows = list(self.db.query(sql, [name]))
        return _task(rows[0]) if rows else None

    def find_task_by_import_path(self, import_path: str) -> TaskRecord | None:
        rows = list(
            self.db.query(
                "SELECT * FROM tasks WHERE import_path = ? AND unregistered_at IS NULL", [import_path]
            )
        )
        return _task(rows[0]) if rows else None

    def pending_request_params(self, task: str) -> list[tuple[int, bytes]]:
        """(id, parameter bytes) of the task's requests that may still run."""
        rows = self.conn.execute(
            "SELECT id, params FROM requests WHERE task = ? AND (status = 'scheduled' OR manual_at IS NOT NULL "
            "OR id IN (SELECT request_id FROM reruns)) ORDER BY id",
            (task,),
        )
        return [(int(r[0]), bytes(r[1])) for r in rows]

    def list_tasks(self) -> list[TaskRecord]:
        return [
            _task(r)
            for r in self.db.query("SELECT * FROM tasks WHERE unregistered_at IS NULL ORDER BY name")
        ]

    def unregister_task(self, name: str, now: datetime) -> int:
        """Unregister a task and unschedule its scheduled requests; returns how many."""
        with self.immediate():
            return self._unregister(name, now)

    def _unregister(self, name: str, now: datetime) -> int:
        found = self.conn.execute(
            "UPDATE tasks SET unregistered_at = ?, updated_at = ? "
            "WHERE name = ? AND unregistered_at IS NULL",
            (ts(now), ts(now), name),
        ).rowcount
        if not found:
            raise NotFound(f"no registered task named {name!r}; see `bgproc tasks`")
        return self.conn.execute(
            "UPDATE requests SET status = 'unscheduled', next_run_at = NULL, updated_at = ? "
            "WHERE task = ? AND status = 'scheduled'",
            (ts(now), name),
        ).rowcount

    # ------------------------------------------------------------------
    # Requests

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
        self.notify()
        return request_id

    def get_request(self, request_id: int) -> RequestRecord:
        rows = list(self.db.query(_REQUEST_SELECT + " WHERE r.id = ?", [request_id]))
        if not rows:
            raise NotFound(f"no request with id {request_id}; see `bgproc requests --all`")
        return _request(rows[0])

    def list_requests(self, *, include_all: bool = False, limit: int | None = None) -> list[RequestRecord]:
        sql = _REQUEST_SELECT
        if not include_all:
            sql += " WHERE r.status = 'scheduled'"
        sql += " ORDER BY r.id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_request(r) for r in self.db.query(sql)]

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
        """Change a request's status and next fire (and timing, and the retry policy
        values in ``policy``); checks its status first."""
        with self.immediate():
            row = self.conn.execute("SELECT status FROM requests WHERE id = ?", (request_id,)).fetchone()
            if row is None:
                raise NotFound(f"no request with id {request_id}; see `bgproc requests --all`")
            if expect_status is not None and row[0] not in expect_status:
                raise StateError(f"request {request_id} is {row[0]}")
            sets = "status = ?, next_run_at = ?, updated_at = ?"
            if status == "unscheduled":
                sets += ", manual_at = NULL"  # no future runs: a pending manual one included
            values: list[Any] = [status, ts(next_run_at), ts(now)]
            if timing is not None:
                sets += ", timing = ?, timezone = ?, start_at = ?, finish_at = ?"
                values += [json.dumps(timing.to_dict()), timing.zone, ts(timing.start), ts(timing.finish)]
            for name, value in _policy_columns(policy).items():
                sets += f", {name} = ?"
                values.append(value)
            self.conn.execute(f"UPDATE requests SET {sets} WHERE id = ?", [*values, request_id])
        self.notify()

    def unschedule_requests(self, request_ids: list[int], now: datetime) -> None:
        """No future runs for these requests, a pending manual run, retry or recovery
        included, nor a follow-up of a run going; refused as a whole when one is
        unknown or has nothing that could still run."""
        with self.immediate():
            for request_id in request_ids:
                row = self.conn.execute(
                    f"SELECT r.status, r.manual_at, {_FOLLOWS_UP.format(r='r')} FROM requests r WHERE r.id = ?",
                    (request_id,),
                ).fetchone()
                if row is None:
                    raise NotFound(f"no request with id {request_id}; see `bgproc requests --all`")
                if row[0] != "scheduled" and row[1] is None and not row[2]:
                    raise StateError(f"request {request_id} is {row[0]}, not scheduled; nothing to unschedule")
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
        self.notify()

    def last_planned_at(self, request_id: int) -> datetime | None:
        """The latest slot of a request that a daemon has already handled (ran, skipped
        or coalesced), so that rescheduling never plans it again."""
        row = self.conn.execute(
            "SELECT MAX(COALESCE(missed_until, planned_at)) FROM runs "
            "WHERE request_id = ? AND COALESCE(reason, '') NOT IN ('manual', 'retry', 'recovery')",
            (request_id,),
        ).fetchone()
        return dt(row[0]) if row and row[0] else None

    def next_due_at(self, after: datetime | None = None) -> datetime | None:
        """The earliest fire or manual run a daemon can act on (strictly after ``after``
        if given). A one-time or manual run waiting for its request's previous run to
        end is left out: that run ending is what makes it claimable, not the time.
        Each source is read in its index's order and stops at its first row."""
        values = (ts(after) or "",)
        firsts = [
            row[0] for sql in (_NEXT_SCHEDULED, _NEXT_MANUAL, _NEXT_RERUN) for row in self.conn.execute(sql, values)
        ]
        return dt(min(firsts)) if firsts else None

    def request_manual_run(self, request_id: int, now: datetime) -> RequestRecord:
        """Ask for one run of a request now, outside its timing (reason ``manual``)."""
        with self.immediate():
            changed = self.conn.execute(
                "UPDATE requests SET manual_at = COALESCE(manual_at, ?), updated_at = ? WHERE id = ?",
                (ts(now), ts(now), request_id),
            ).rowcount
            if not changed:
                raise NotFound(f"no request with id {request_id}; see `bgproc requests --all`")
        self.notify()
        return self.get_request(request_id)

    # ------------------------------------------------------------------
    # Claiming (inside ``immediate()``; the daemon decides, the store records)

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
                request: RequestRecord | UnloadableRequest = _request(row)
            except Exception as exc:  # noqa: BLE001 - one bad row must not stop claiming
                request = _unloadable(row, now, exc)
            items.append(request if rerun is None else _rerun(rerun, request))
        return DueWork(items=items, more=more)

    def _rows(self, table: str, ids: list[int]) -> list[dict[str, Any]]:
        """The rows of ``table`` with these ids (a handful: what one pass claims)."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        return list(self.db.query(f"SELECT * FROM {table} WHERE id IN ({marks})", ids))

    def take_rerun(self, rerun_id: int) -> None:
        """A retry or recovery was claimed (its run recorded) or dropped: it is no longer due."""
        self.conn.execute("DELETE FROM reruns WHERE id = ?", (rerun_id,))

    def add_run_note(self, run_id: int, note: str) -> None:
        """Append to a run's detail (what followed it, or why nothing did)."""
        self.conn.execute(
            "UPDATE runs SET detail = COALESCE(detail || '; ', '') || ? WHERE id = ?", (note, run_id)
        )

    def busy_requests(self) -> set[int]:
        """Requests with a run going (any daemon)."""
        return {int(r[0]) for r in self.conn.execute(_BUSY)}

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside ``immediate()``: undo only this block's writes if it raises."""
        self.conn.execute("SAVEPOINT claim")
        try:
            yield
        except BaseException:
            if self.conn.in_transaction:  # not ended by SQLite itself (see ``immediate``)
                self.conn.execute("ROLLBACK TO claim")
                self.conn.execute("RELEASE claim")
            raise
        else:
            self.conn.execute("RELEASE claim")

    def unschedule_unloadable(self, request_id: int, now: datetime) -> None:
        """No further fires or manual run for a request that cannot be loaded."""
        self.conn.execute(
            "UPDATE requests SET status = CASE status WHEN 'scheduled' THEN 'unscheduled' ELSE status END, "
            "next_run_at = NULL, manual_at = NULL, updated_at = ? WHERE id = ?",
            (ts(now), request_id),
        )

    def clear_manual_run(self, request_id: int) -> None:
        self.conn.execute("UPDATE requests SET manual_at = NULL WHERE id = ?", (request_id,))

    def advance_request(self, request_id: int, next_run_at: datetime | None, now: datetime) -> None:
        """Move a request to its next fire, or mark it complete when there is none."""
        status = "scheduled" if next_run_at is not None else "complete"
        self.conn.execute(
            "UPDATE requests SET next_run_at = ?, status = ?, updated_at = ? WHERE id = ?",
            (ts(next_run_at), status, ts(now), request_id),
        )

    def latest_run_row(self, request_id: int) -> RunRecord | None:
        """A request's newest runs row of any status (without its log)."""
        rows = self.list_runs(request_id=request_id, limit=1)
        return rows[0] if rows else None

    def extend_skipped(self, run_id: int, *, count: int, until: datetime, detail: str) -> None:
        """A ``skipped`` row now stands for ``count`` more slots after its own, up to
        ``until`` (inside ``immediate()``)."""
        self.conn.execute(
            "UPDATE runs SET missed_count = ?, missed_until = ?, detail = ? WHERE id = ? AND status = 'skipped'",
            (count, ts(until), detail, run_id),
        )

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
        detail: str | None = None,
        missed_count: int | None = None,
        missed_until: datetime | None = None,
        attempt: int = 1,
        retry_of: int | None = None,
    ) -> int:
        cursor = self.conn.execute(
            """
            INSERT INTO runs (request_id, task, status, reason, planned_at, started_at, daemon_id,
                detail, missed_count, missed_until, created_at, attempt, retry_of)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            (
                request_id, task, status, reason, ts(planned_at), ts(started_at), daemon_id,
                detail, missed_count, ts(missed_until), ts(now), attempt, retry_of,
            ),
        )
        run_id = int(cursor.lastrowid or 0)
        if status == "running":
            self.conn.execute("INSERT INTO run_logs (run_id) VALUES (?)", (run_id,))
        return run_id

    # ------------------------------------------------------------------
    # Runs

    def set_run_pid(self, run_id: int, pid: int) -> None:
        self.conn.execute("UPDATE runs SET pid = ? WHERE id = ?", (pid, run_id))

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
    ) -> bool:
        """Record a run's outcome, once: only a run still ``running`` changes. In the
        same transaction, the retry or recovery the outcome calls for is scheduled."""
        changed = self.conn.execute(
            """
            UPDATE runs SET status = ?, ended_at = ?, exit_code = ?, signal = ?, cpu_s = ?,
                max_rss_kb = ?, detail = COALESCE(?, detail)
            WHERE id = ? AND status = 'running'
            """,
            (status, ts(ended_at), exit_code, signal, cpu_s, max_rss_kb, detail, run_id),
        ).rowcount
        if changed:
            self.follow_up(run_id, ended_at)
        return bool(changed)

    def follow_up(self, run_id: int, now: datetime) -> FollowUp:
        """Schedule the retry or recovery that a run's recorded outcome calls for, if
        any, and say so in its detail (inside ``immediate()``, with the outcome)."""
        found = list(self.db.query(
            """
            SELECT runs.status, runs.reason, runs.attempt, runs.request_id, q.status AS request_status,
                q.retries, q.retry_delay_s, q.recover, t.retries AS task_retries,
                t.retry_delay_s AS task_retry_delay_s, t.recover AS task_recover,
                t.name IS NOT NULL AND t.unregistered_at IS NULL AS registered
            FROM runs JOIN requests q ON q.id = runs.request_id LEFT JOIN tasks t ON t.name = runs.task
            WHERE runs.id = ?
            """,
            [run_id],
        ))
        if not found:
            return FollowUp(reason=None)
        row = found[0]
        task = RetryPolicy.of(
            retries=row["task_retries"], retry_delay_s=row["task_retry_delay_s"], recover=_flag(row["task_recover"])
        )
        decided = follow_up(
            status=row["status"], reason=row["reason"], attempt=row["attempt"], registered=bool(row["registered"]),
            unscheduled=row["request_status"] == "unscheduled", now=now, jitter=self.jitter(),
            policy=RetryPolicy.of(
                retries=row["retries"], retry_delay_s=row["retry_delay_s"], recover=_flag(row["recover"]), task=task
            ),
        )
        if decided.reason is not None:
            self.conn.execute(
                "INSERT INTO reruns (request_id, run_id, reason, attempt, due_at, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (row["request_id"], run_id, decided.reason, decided.attempt, ts(decided.due_at), ts(now)),
            )
            # Whoever recorded an interruption said "not re-run", the default; this run is.
            self.conn.execute("UPDATE runs SET detail = REPLACE(detail, '; not re-run', '') WHERE id = ?", (run_id,))
        if decided.note:
            self.add_run_note(run_id, decided.note)
        return decided

    def set_progress(self, run_id: int, done: float, total: float | None, message: str | None) -> None:
        self.conn.execute(
            "UPDATE runs SET progress_done = ?, progress_total = ?, progress_message = ? WHERE id = ?",
            (done, total, message, run_id),
        )

    def write_log(self, run_id: int, *, append_head: str, tail: str | None, dropped: int) -> None:
        """Append to a run's log head and replace its tail (the daemon bounds both)."""
        if tail is None:
            self.conn.execute(
                "UPDATE run_logs SET head = head || ?, dropped_bytes = ? WHERE run_id = ?",
                (append_head, dropped, run_id),
            )
        else:
            self.conn.execute(
                "UPDATE run_logs SET head = head || ?, tail = ?, dropped_bytes = ? WHERE run_id = ?",
                (append_head, tail, dropped, run_id),
            )

    def request_cancel(self, run_id: int, now: datetime) -> RunRecord:
        with self.immediate():
            run = self.get_run(run_id)
            if run.status != "running":
                raise StateError(f"run {run_id} is {run.status}, not running; nothing to cancel")
            self.conn.execute(
                "UPDATE runs SET cancel_requested_at = COALESCE(cancel_requested_at, ?) WHERE id = ?",
                (ts(now), run_id),
            )
        self.notify()
        return self.get_run(run_id)

    def cancel_requested(self, run_ids: list[int]) -> list[int]:
        if not run_ids:
            return []
        marks = ",".join("?" * len(run_ids))
        rows = self.conn.execute(
            f"SELECT id FROM runs WHERE id IN ({marks}) AND cancel_requested_at IS NOT NULL", run_ids
        )
        return [int(r[0]) for r in rows]

    def get_run(self, run_id: int, *, with_log: bool = True) -> RunRecord:
        rows = list(self.db.query(_run_select(with_log) + " WHERE runs.id = ?", [run_id]))
        if not rows:
            raise NotFound(f"no run with id {run_id}; see `bgproc monitor`")
        return _run(rows[0])

    def list_runs(
        self,
        *,
        task: str | None = None,
        status: str | None = None,
        request_id: int | None = None,
        since: datetime | None = None,
        limit: int = 50,
        with_log: bool = False,
    ) -> list[RunRecord]:
        where: list[str] = []
        values: list[Any] = []
        if task is not None:
            where.append("runs.task = ?")
            values.append(task)
        if status is not None:
            where.append("runs.status = ?")
            values.append(status)
        if request_id is not None:
            where.append("runs.request_id = ?")
            values.append(request_id)
        if since is not None:
            where.append("runs.created_at >= ?")
            values.append(ts(since))
        sql = _run_select(with_log)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY runs.id DESC LIMIT ?"
        values.append(limit)
        return [_run(r) for r in self.db.query(sql, values)]

    def runs_changed_marker(self) -> tuple[int, int]:
        """A cheap value that changes when runs are added or change (for --follow)."""
        return self.data_version(), int(
            self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM runs").fetchone()[0]
        )

    def running_runs(self, daemon_id: str | None = None) -> list[RunRecord]:
        sql = _run_select(False) + " WHERE runs.status = 'running'"
        values: list[Any] = []
        if daemon_id is not None:
            sql += " AND runs.daemon_id = ?"
            values.append(daemon_id)
        return [_run(r) for r in self.db.query(sql + " ORDER BY runs.id", values)]

    # ------------------------------------------------------------------
    # Daemons

    def register_daemon(self, daemon: DaemonRecord) -> None:
        with self.immediate():
            self.conn.execute(
                "INSERT INTO daemons (id, host, pid, started_at, heartbeat_at, stopped_at, workers) "
                "VALUES (?, ?, ?, ?, ?, NULL, ?)",
                (daemon.id, daemon.host, daemon.pid, ts(daemon.started_at),
                 ts(daemon.heartbeat_at), daemon.workers),
            )

    def heartbeat(self, daemon_id: str, now: datetime) -> bool:
        """Record that a daemon lives; False if it was declared dead (stopped) meanwhile."""
        with self.immediate():
            changed = self.conn.execute(
                "UPDATE daemons SET heartbeat_at = ? WHERE id = ? AND stopped_at IS NULL", (ts(now), daemon_id)
            ).rowcount
        return bool(changed)

    def get_daemon(self, daemon_id: str) -> DaemonRecord | None:
        rows = list(self.db.query("SELECT * FROM daemons WHERE id = ?", [daemon_id]))
        return _daemon(rows[0]) if rows else None

    def daemon_stopped(self, daemon_id: str) -> bool:
        """Whether a daemon's row says it stopped (or was declared dead), or is gone
        (pruned long after it was declared dead)."""
        row = self.conn.execute("SELECT stopped_at FROM daemons WHERE id = ?", (daemon_id,)).fetchone()
        return row is None or row[0] is not None

    def orphaned_runs(self) -> list[tuple[int, str | None]]:
        """Runs still ``running`` whose daemon row is stopped or gone: (run id, daemon id)."""
        rows = self.conn.execute(
            "SELECT runs.id, runs.daemon_id FROM runs LEFT JOIN daemons ON daemons.id = runs.daemon_id "
            "WHERE runs.status = 'running' AND (daemons.id IS NULL OR daemons.stopped_at IS NOT NULL) "
            "ORDER BY runs.id"
        )
        return [(int(r[0]), r[1]) for r in rows]

    def interrupt_run(self, run_id: int, now: datetime, detail: str) -> bool:
        """Mark one run interrupted if it is still ``running``, and schedule its recovery
        if it opted in (inside ``immediate()``)."""
        changed = self.conn.execute(
            "UPDATE runs SET status = 'interrupted', ended_at = ?, detail = ? WHERE id = ? AND status = 'running'",
            (ts(now), detail, run_id),
        ).rowcount
        if changed:
            self.follow_up(run_id, now)
        return bool(changed)

    def prune_daemons(self, stopped_before: datetime) -> int:
        """Forget daemons stopped before ``stopped_before``; returns how many."""
        with self.immediate():
            return self.conn.execute(
                "DELETE FROM daemons WHERE stopped_at IS NOT NULL AND stopped_at < ?", (ts(stopped_before),)
            ).rowcount

    def stop_daemon(self, daemon_id: str, now: datetime) -> None:
        with self.immediate():
            self.conn.execute("UPDATE daemons SET stopped_at = ? WHERE id = ?", (ts(now), daemon_id))

    def live_daemons(self) -> list[DaemonRecord]:
        return [
            _daemon(r)
            for r in self.db.query("SELECT * FROM daemons WHERE stopped_at IS NULL ORDER BY started_at")
        ]

    def interrupt_daemon_runs(self, daemon_id: str, now: datetime, detail: str) -> list[int]:
        """Mark a dead daemon stopped and its running runs interrupted, and schedule the
        recovery of those that opted in (inside ``immediate()``)."""
        ids = [
            int(r[0])
            for r in self.conn.execute(
                "SELECT id FROM runs WHERE daemon_id = ? AND status = 'running'", (daemon_id,)
            )
        ]
        self.conn.execute(
            "UPDATE runs SET status = 'interrupted', ended_at = ?, detail = ? "
            "WHERE daemon_id = ? AND status = 'running'",
            (ts(now), detail, daemon_id),
        )
        self.conn.execute(
            "UPDATE daemons SET stopped_at = ? WHERE id = ? AND stopped_at IS NULL", (ts(now), daemon_id)
        )
        for run_id in ids:
            self.follow_up(run_id, now)
        return ids


# ----------------------------------------------------------------------
# Claiming: what waits rather than being claimed

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
# A request ({r}) with a retry or recovery waiting, or a run going that one may follow.
_FOLLOWS_UP = (
    "(EXISTS (SELECT 1 FROM reruns x WHERE x.request_id = {r}.id) OR (EXISTS (SELECT 1 FROM runs "
    "WHERE runs.request_id = {r}.id AND runs.status = 'running') AND EXISTS (SELECT 1 FROM tasks t "
    "WHERE t.name = {r}.task AND (COALESCE({r}.retries, t.retries) > 0 OR COALESCE({r}.recover, t.recover)))))"
)
# The keys of what a claim pass acts on (see ``Store.due_requests``), each read in
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


@dataclass(frozen=True, kw_only=True)
class DueRerun:
    """A retry or a recovery due (``reason``): a new run of ``request`` that follows
    up run ``run_id``, with its attempt number."""

    id: int
    run_id: int
    reason: str
    attempt: int
    due_at: datetime
    request: RequestRecord | UnloadableRequest

    @property
    def request_id(self) -> int:
        return self.request.id


@dataclass(frozen=True, kw_only=True)
class DueWork:
    """What one claim pass acts on, oldest first, and whether more due work that
    could start was left for another pass."""

    items: list[RequestRecord | UnloadableRequest | DueRerun]
    more: bool


@dataclass(frozen=True, kw_only=True)
class UnloadableRequest:
    """A due request whose stored row cannot be read back (a time zone this host's
    tzdata lacks, a damaged timing): claiming records an error and unschedules it."""

    id: int
    task: str
    reason: str
    planned_at: datetime | None
    manual: bool


def _rerun(row: dict[str, Any], request: RequestRecord | UnloadableRequest) -> DueRerun:
    due = dt(row["due_at"])
    assert due is not None
    return DueRerun(
        id=row["id"], run_id=row["run_id"], reason=row["reason"], attempt=row["attempt"], due_at=due,
        request=request,
    )


def _policy_columns(policy: dict[str, Any] | None) -> dict[str, Any]:
    """The requests columns of retry policy values given as ``retries``,
    ``retry_delay_s`` and ``recover``."""
    columns = {}
    for name, value in (policy or {}).items():
        if name not in ("retries", "retry_delay_s", "recover"):
            raise ValueError(f"not a retry policy value: {name}")
        columns[name] = int(value) if isinstance(value, bool) else value
    return columns


def _unloadable(row: dict[str, Any], now: datetime, exc: Exception) -> UnloadableRequest:
    def when(name: str) -> datetime | None:
        try:
            return dt(row.get(name))
        except (TypeError, ValueError):
            return None

    manual_at, next_run_at = when("manual_at"), when("next_run_at")
    manual = manual_at is not None and manual_at <= now and not (
        row.get("status") == "scheduled" and next_run_at is not None and next_run_at <= now
    )
    return UnloadableRequest(
        id=int(row["id"]), task=str(row.get("task")), reason=f"{type(exc).__name__}: {exc}",
        planned_at=manual_at if manual else next_run_at, manual=manual,
    )


# ----------------------------------------------------------------------
# Rows to records

_REQUEST_SELECT = """
    SELECT r.*,
        (SELECT status FROM runs WHERE request_id = r.id AND status NOT IN ('skipped', 'missed')
            ORDER BY id DESC LIMIT 1) AS last_run_status,
        (SELECT started_at FROM runs WHERE request_id = r.id AND status NOT IN ('skipped', 'missed')
            ORDER BY id DESC LIMIT 1) AS last_run_at,
        t.retries AS task_retries, t.retry_delay_s AS task_retry_delay_s, t.recover AS task_recover
    FROM requests r LEFT JOIN tasks t ON t.name = r.task
"""


# For "attempt 2 of 4" and "retried by run 18": the request's retries now, and the
# run that followed this one up (both found by key).
_RUN_FOLLOW_UPS = (
    "(SELECT COALESCE(q.retries, t.retries, 0) FROM requests q LEFT JOIN tasks t ON t.name = q.task "
    "WHERE q.id = runs.request_id) AS request_retries, "
    "(SELECT f.id FROM runs f WHERE f.retry_of = runs.id) AS followed_by"
)


def _run_select(with_log: bool) -> str:
    if with_log:
        return (
            "SELECT runs.*, run_logs.head AS log_head, run_logs.tail AS log_tail, "
            f"COALESCE(run_logs.dropped_bytes, 0) AS log_dropped, {_RUN_FOLLOW_UPS} "
            "FROM runs LEFT JOIN run_logs ON run_logs.run_id = runs.id"
        )
    # The monitor's list shows the log's last line only: take it from the tail
    # (or the head's end) without loading whole logs.
    return (
        "SELECT runs.*, NULL AS log_head, "
        "substr(CASE WHEN run_logs.tail != '' THEN run_logs.tail ELSE run_logs.head END, -400) "
        f"AS log_tail, 0 AS log_dropped, {_RUN_FOLLOW_UPS} "
        "FROM runs LEFT JOIN run_logs ON run_logs.run_id = runs.id"
    )


def _task(row: dict[str, Any]) -> TaskRecord:
    return TaskRecord(
        name=row["name"], import_path=row["import_path"], module=row["module"],
        search_path=row["search_path"], params_type=row["params_type"],
        fields=json.loads(row["fields"]), description=row["description"],
        timeout_s=row["timeout_s"], registered_at=dt(row["registered_at"]),
        updated_at=dt(row["updated_at"]), unregistered_at=dt(row["unregistered_at"]),
        retries=row["retries"], retry_delay_s=row["retry_delay_s"], recover=bool(row["recover"]),
    )


def _request(row: dict[str, Any]) -> RequestRecord:
    start = dt(row["start_at"])
    assert start is not None
    timing = Timing.from_dict(
        json.loads(row["timing"]), zone=row["timezone"], start=start, finish=dt(row["finish_at"])
    )
    created, updated = dt(row["created_at"]), dt(row["updated_at"])
    assert created is not None and updated is not None
    task_policy = None
    if "task_retries" in row and row["task_retries"] is not None:  # read with its task
        task_policy = RetryPolicy.of(
            retries=row["task_retries"], retry_delay_s=row["task_retry_delay_s"], recover=_flag(row["task_recover"])
        )
    return RequestRecord(
        id=row["id"], task=row["task"], params=row["params"], timing=timing, status=row["status"],
        next_run_at=dt(row["next_run_at"]), timeout_s=row["timeout_s"],
        allow_overlap=bool(row["allow_overlap"]), user=row["user"], created_at=created,
        updated_at=updated, last_run_status=row.get("last_run_status"),
        last_run_at=dt(row.get("last_run_at")), manual_at=dt(row.get("manual_at")),
        retries=row["retries"], retry_delay_s=row["retry_delay_s"], recover=_flag(row["recover"]),
        task_policy=task_policy,
    )


def _flag(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def _run(row: dict[str, Any]) -> RunRecord:
    return RunRecord(
        id=row["id"], request_id=row["request_id"], task=row["task"], status=row["status"],
        reason=row["reason"], planned_at=dt(row["planned_at"]), started_at=dt(row["started_at"]),
        ended_at=dt(row["ended_at"]), exit_code=row["exit_code"], signal=row["signal"],
        daemon_id=row["daemon_id"], pid=row["pid"], cpu_s=row["cpu_s"],
        max_rss_kb=row["max_rss_kb"], detail=row["detail"], missed_count=row["missed_count"],
        missed_until=dt(row["missed_until"]), progress_done=row["progress_done"],
        progress_total=row["progress_total"], progress_message=row["progress_message"],
        cancel_requested_at=dt(row["cancel_requested_at"]), log_head=row["log_head"],
        log_tail=row["log_tail"], log_dropped=row["log_dropped"] or 0, attempt=row["attempt"],
        retry_of=row["retry_of"], retries=row.get("request_retries") or 0, followed_by=row.get("followed_by"),
    )


def _daemon(row: dict[str, Any]) -> DaemonRecord:
    started, beat = dt(row["started_at"]), dt(row["heartbeat_at"])
    assert started is not None and beat is not None
    return DaemonRecord(
        id=row["id"], host=row["host"], pid=row["pid"], started_at=started, heartbeat_at=beat,
        stopped_at=dt(row["stopped_at"]), workers=row["workers"],
    )


def _statements(script: str) -> list[str]:
    """Split a migration into statements (they hold no semicolons inside literals)."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
