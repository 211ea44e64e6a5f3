"""The SQLite schema: its migrations, in order, and how instants are stored.

Instants are stored as fixed-width UTC text (``2026-05-01T07:30:00.000000Z``) so
that text order is time order and the file reads well in the ``sqlite3`` shell.
The schema version is ``PRAGMA user_version``: the number of migrations applied.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from ...errors import StoreError

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
    # The host each run was recorded by (its daemon's plain host name: the first word
    # of the daemons row's ``host``), taken from the daemons rows still there; the
    # monitor's --host filter, newest first, as the other filters.
    """
    ALTER TABLE runs ADD COLUMN host TEXT;
    UPDATE runs SET host = (
        SELECT substr(d.host, 1, instr(d.host || ' ', ' ') - 1) FROM daemons d WHERE d.id = runs.daemon_id
    ) WHERE daemon_id IS NOT NULL;
    CREATE INDEX runs_host ON runs(host, id);
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


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the database to the latest schema, in one write transaction; a database
    from a newer bgproc is refused."""
    version = schema_version(conn)
    if version > len(MIGRATIONS):
        raise StoreError(
            f"database {path} has schema version {version}, newer than this bgproc "
            f"understands ({len(MIGRATIONS)}); upgrade bgproc"
        )
    if version == len(MIGRATIONS):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = schema_version(conn)  # another process may have migrated meanwhile
        for number in range(version, len(MIGRATIONS)):
            for statement in _statements(MIGRATIONS[number]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number + 1}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _statements(script: str) -> list[str]:
    """Split a migration into statements (they hold no semicolons inside literals)."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
