"""The store: file safety, schema versions, and indexes for the hot queries."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bgproc.errors import StoreConflict, StoreError
from bgproc.store.sqlite import MIGRATIONS, ts
from bgproc.store.sqlite import SQLiteStore as Store
from bgproc.timing import Timing

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_creates_the_file_owner_only_in_a_private_directory(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "bg.db"
    Store.open(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_refuses_a_database_others_can_write(tmp_path: Path) -> None:
    path = tmp_path / "bg.db"
    Store.open(path).close()
    os.chmod(path, 0o664)
    with pytest.raises(StoreError, match="writable by others.*chmod 600"):
        Store.open(path)


def test_wal_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    with Store.open(tmp_path / "bg.db") as store:
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_migrations_set_the_version_and_reopen_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "bg.db"
    Store.open(path).close()
    with Store.open(path) as store:
        assert store.schema_version() == len(MIGRATIONS)
        assert {"tasks", "requests", "runs", "run_logs", "daemons"} <= set(store.db.table_names())


def test_refuses_a_database_from_a_newer_bgproc(tmp_path: Path) -> None:
    path = tmp_path / "bg.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer.*upgrade bgproc"):
        Store.open(path)


def test_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "bg.db"
    path.write_bytes(b"this is not sqlite" * 100)
    os.chmod(path, 0o600)
    with pytest.raises(StoreError, match="not a bgproc database|cannot open"):
        Store.open(path)


def test_instants_are_fixed_width_utc_text_in_time_order() -> None:
    a = datetime(2026, 3, 8, 1, 59, 59, 999999, tzinfo=UTC)
    b = a + timedelta(microseconds=1)
    assert len(ts(a)) == len(ts(b)) == 27
    assert ts(a) < ts(b)  # type: ignore[operator]


def _plan(store: Store, sql: str, params: list) -> str:
    rows = store.conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    return " | ".join(str(r[-1]) for r in rows)


def test_hot_queries_use_indexes(tmp_path: Path) -> None:
    with Store.open(tmp_path / "bg.db") as store:
        due = _plan(
            store,
            "SELECT id FROM requests WHERE status = 'scheduled' AND next_run_at <= ? ORDER BY next_run_at LIMIT 10",
            [ts(NOW)],
        )
        assert "requests_due" in due and "SCAN requests" not in due
        earliest = _plan(store, "SELECT MIN(next_run_at) FROM requests WHERE status = 'scheduled'", [])
        assert "requests_due" in earliest
        by_request = _plan(store, "SELECT id FROM runs WHERE request_id = ? ORDER BY id DESC LIMIT 20", [1])
        assert "runs_request" in by_request and "TEMP B-TREE" not in by_request
        by_status = _plan(store, "SELECT id FROM runs WHERE status = ? ORDER BY id DESC LIMIT 20", ["error"])
        assert "runs_status" in by_status and "TEMP B-TREE" not in by_status
        running = _plan(store, "SELECT id FROM runs WHERE daemon_id = ? AND status = 'running'", ["d"])
        assert "runs_running" in running
        by_host = _plan(store, "SELECT id FROM runs WHERE host = ? ORDER BY id DESC LIMIT 20", ["alpha"])
        assert "runs_host" in by_host and "TEMP B-TREE" not in by_host


def test_requests_round_trip_their_timing(tmp_path: Path) -> None:
    timing = Timing(kind="weekly", zone="Europe/Berlin", start=NOW, finish=NOW + timedelta(days=30), weekdays=(0, 4))
    with Store.open(tmp_path / "bg.db") as store:
        store.conn.execute(
            "INSERT INTO tasks (name, import_path, module, params_type, fields, timeout_s, registered_at, updated_at) "
            "VALUES ('T', 'm:T', 'm', 'm:P', '[]', 60, ?, ?)", (ts(NOW), ts(NOW)),
        )
        request_id = store.insert_request(
            task="T", params=b"\x80", timing=timing, next_run_at=timing.due_from(NOW), timeout_s=None,
            allow_overlap=False, user="u", now=NOW,
        )
        record = store.get_request(request_id)
    assert record.timing == timing
    assert record.next_run_at == timing.due_from(NOW)


def _task_and_request(store: Store) -> int:
    store.conn.execute(
        "INSERT INTO tasks (name, import_path, module, params_type, fields, timeout_s, registered_at, updated_at) "
        "VALUES ('T', 'm:T', 'm', 'm:P', '[]', 60, ?, ?)", (ts(NOW), ts(NOW)),
    )
    timing = Timing(kind="every", zone="UTC", start=NOW, interval=timedelta(minutes=1))
    return store.insert_request(
        task="T", params=b"\x80", timing=timing, next_run_at=NOW, timeout_s=None, allow_overlap=False,
        user="u", now=NOW,
    )


def test_a_second_record_of_one_occurrence_is_refused_by_the_database(tmp_path: Path) -> None:
    with Store.open(tmp_path / "bg.db") as store:
        request = _task_and_request(store)

        def record(status: str, reason: str | None, planned: datetime | None = NOW) -> int:
            with store.immediate():
                return store.insert_run(
                    request_id=request, task="T", status=status, now=NOW, reason=reason, planned_at=planned,
                )

        first = record("running", "schedule")
        # Beside it: the rows that share its instant without being another run of it.
        record("missed", None)
        record("skipped", "schedule")
        record("running", "manual")  # a manual run asked for at that very instant
        record("running", "schedule", NOW + timedelta(minutes=1))  # the next slot
        with store.immediate():
            store.finish_run(first, status="success", ended_at=NOW)
        for reason in ("schedule", "catch-up", "now"):
            with pytest.raises(StoreConflict, match="UNIQUE"):
                record("running", reason)
        with pytest.raises(StoreConflict, match="UNIQUE"):
            record("error", "manual")
        assert store.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 5


def test_a_database_of_the_first_schema_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "bg.db"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0] + "PRAGMA user_version = 1;")
    conn.execute(
        "INSERT INTO tasks (name, import_path, module, params_type, fields, timeout_s, registered_at, updated_at) "
        "VALUES ('T', 'm:T', 'm', 'm:P', '[]', 60, 'x', 'x')"
    )
    conn.execute(
        "INSERT INTO requests (task, params, timing, timezone, start_at, status, user, created_at, updated_at) "
        "VALUES ('T', x'80', '{\"kind\": \"now\"}', 'UTC', 'x', 'complete', 'u', 'x', 'x')"
    )
    rows = [("success", "now", "p1", None), ("error", "now", "p1", "exit code 1"), ("success", "manual", "p1", None),
            ("missed", None, "p1", None), ("error", "now", "p1", None)]
    conn.executemany(
        "INSERT INTO runs (request_id, task, status, reason, planned_at, detail, created_at) "
        "VALUES (1, 'T', ?, ?, ?, ?, 'x')",
        rows,
    )
    conn.commit()
    conn.close()
    os.chmod(path, 0o600)
    with Store.open(path) as store:
        assert store.schema_version() == len(MIGRATIONS)
        got = store.conn.execute("SELECT id, status, reason, detail FROM runs ORDER BY id").fetchall()
        # Two runs recorded for the first one's occurrence (an old bug): kept, and marked.
        assert got[0] == (1, "success", "now", None) and got[2] == (3, "success", "manual", None)
        assert got[3] == (4, "missed", None, None)
        for run_id, detail in ((2, "exit code 1 - "), (5, "")):
            assert got[run_id - 1][2] is None
            assert got[run_id - 1][3] == detail + (
                "recorded the same occurrence as run 1 (found when the database was upgraded, "
                "and not counted as a run of it)"
            )
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            store.conn.execute(
                "INSERT INTO runs (request_id, task, status, reason, planned_at, created_at) "
                "VALUES (1, 'T', 'running', 'catch-up', 'p1', 'x')"
            )
        # Retries and recovery: none by default, every run so far a first attempt.
        assert store.conn.execute("SELECT DISTINCT attempt, retry_of FROM runs").fetchall() == [(1, None)]
        policies = "SELECT retries, retry_delay_s, recover FROM {} WHERE {} = ?"
        assert store.conn.execute(policies.format("tasks", "name"), ("T",)).fetchone() == (0, None, 0)
        assert store.conn.execute(policies.format("requests", "id"), (1,)).fetchone() == (None, None, None)
        assert store.conn.execute("SELECT COUNT(*) FROM reruns").fetchone()[0] == 0
        # Hosts: none known for runs of the first schema without a daemon row.
        assert store.conn.execute("SELECT DISTINCT host FROM runs").fetchall() == [(None,)]


def test_runs_of_an_older_schema_take_their_host_from_their_daemon_row(tmp_path: Path) -> None:
    path = tmp_path / "bg.db"
    conn = sqlite3.connect(path)
    conn.executescript("".join(MIGRATIONS[:3]) + "PRAGMA user_version = 3;")
    conn.execute(
        "INSERT INTO tasks (name, import_path, module, params_type, fields, timeout_s, registered_at, updated_at) "
        "VALUES ('T', 'm:T', 'm', 'm:P', '[]', 60, 'x', 'x')"
    )
    conn.execute(
        "INSERT INTO requests (task, params, timing, timezone, start_at, status, user, created_at, updated_at) "
        "VALUES ('T', x'80', '{\"kind\": \"now\"}', 'UTC', 'x', 'complete', 'u', 'x', 'x')"
    )
    conn.executemany(
        "INSERT INTO daemons (id, host, pid, started_at, heartbeat_at, workers) VALUES (?, ?, 1, 'x', 'x', 1)",
        [("web-1:1:aaaaaa", "web-1 boot=b pidns=pid:[1] pidstart=5"), ("db:2:bbbbbb", "db")],
    )
    conn.executemany(
        "INSERT INTO runs (request_id, task, status, daemon_id, created_at) VALUES (1, 'T', 'success', ?, 'x')",
        [("web-1:1:aaaaaa",), ("db:2:bbbbbb",), ("pruned:3:cccccc",), (None,)],
    )
    conn.commit()
    conn.close()
    os.chmod(path, 0o600)
    with Store.open(path) as store:
        assert store.schema_version() == len(MIGRATIONS)
        hosts = store.conn.execute("SELECT host FROM runs ORDER BY id").fetchall()
        assert hosts == [("web-1",), ("db",), (None,), (None,)]
        assert [r.id for r in store.list_runs(host="web-1")] == [1]


# ----------------------------------------------------------------------
# Targets: what --db and BGPROC_DB name


def test_a_sqlite_url_names_the_file_its_path_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bgproc.store import open_store

    path = tmp_path / "a dir" / "bg.db"
    with open_store(f"sqlite://{str(path).replace(' ', '%20')}") as store:
        assert store.path == path and store.target == str(path)
    with open_store(path, create=False) as store, open_store(store.target, create=False) as again:
        assert again.path == path
    monkeypatch.setenv("BGPROC_DB", f"sqlite://{path}")
    with open_store(create=False) as store:
        assert store.path == path


def test_the_command_line_and_the_python_api_take_a_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import bgproc
    from bgproc.cli import run

    db = tmp_path / "data" / "bg.db"
    url = f"sqlite://{db}"
    tasks = Path(__file__).parent / "daemon_tasks" / "tasks.py"
    assert run(["--db", url, "register", str(tasks)]) == 0
    request_id = bgproc.start_new("Noop", db=url)
    capsys.readouterr()
    assert run(["--db", url, "requests", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [request_id]
    assert run(["--db", "mysql://h/db", "requests"]) == 1
    assert capsys.readouterr().err == (
        "bgproc: error: unknown database URL scheme 'mysql' in --db / BGPROC_DB; "
        "give a file path, sqlite:///ABSOLUTE/PATH or postgresql://USER@HOST:PORT/DBNAME\n"
    )


@pytest.mark.daemon
def test_a_daemon_on_a_url_hands_its_workers_the_database(tmp_path: Path) -> None:
    from conftest import run_bgproc
    from daemon_tasks.helpers import register, runs, schedule

    db = tmp_path / "data" / "bgproc.db"
    register(db)
    request_id = schedule(db, "Noop")
    done = run_bgproc(db, "daemon", "--once", "--workers", "1", BGPROC_DB=f"sqlite://{db}")
    assert done.code == 0, done.err
    assert [r["status"] for r in runs(db, request_id)] == ["success"]
