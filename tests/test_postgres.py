"""The PostgreSQL store through the command line and the daemon: the same commands
on both stores, what only a server's database does (the schema made on first use,
a lost connection, wake-ups from NOTIFY, heartbeats on the server's clock), and a
daemon whose host clock is an hour off. Each test has a database of its own
(``pgserver``; skipped without a server, or failed with BGPROC_REQUIRE_POSTGRES=1)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pgserver
import pytest
from conftest import Result, cli_on, query, run_bgproc, wait_until
from daemon_tasks.helpers import TASKS_FILE, daemon, register, schedule, wait_finished

from bgproc.clock import utcnow
from bgproc.errors import StoreBusy, StoreConflict, StoreError, StoreFull, StoreIOError, StoreReadOnly
from bgproc.store import open_store
from bgproc.store.records import DaemonRecord

psycopg = pytest.importorskip("psycopg", reason="the postgres extra is not installed: pip install -e '.[postgres]'")

from bgproc.store.postgres import PostgresStore  # noqa: E402 - needs psycopg
from bgproc.store.postgres.faults import named  # noqa: E402


def test_the_commands_say_the_same_on_both_stores(store_db: Path | str, store_cli: Callable[..., Result]) -> None:
    assert store_cli("register", TASKS_FILE).code == 0
    once = store_cli("schedule", "Echo", "-p", "text=hi", "--now")
    assert once.code == 0 and once.out.strip().isdigit()
    every = store_cli("schedule", "Noop", "--every", "5m", "--retries", "2")
    cron = store_cli("schedule", "Noop", "--cron", "0 9 * * mon-fri", "--tz", "Europe/Berlin")
    assert every.code == cron.code == 0
    dry = store_cli("schedule", "Noop", "--daily", "--start", "09:30", "--tz", "UTC", "--dry-run", "--json")
    assert dry.code == 0 and dry.json()
    listed = store_cli("requests", "--json").json()
    assert [r["task"] for r in listed] == ["Echo", "Noop", "Noop"] and {r["status"] for r in listed} == {"scheduled"}
    assert len(store_cli("upcoming", str(listed[1]["id"]), "--json").json()) > 1
    assert store_cli("unschedule", str(listed[2]["id"])).code == 0
    assert [r["id"] for r in store_cli("requests", "--json").json()] == [listed[0]["id"], listed[1]["id"]]
    assert store_cli("monitor", "--json").json() == []
    # The same error line for the same bad input, and nothing written.
    bad = store_cli("schedule", "Nope", "--now")
    assert bad.code == 1 and bad.err.startswith("bgproc: error: ") and bad.err.count("\n") == 1
    assert len(store_cli("requests", "--all", "--json").json()) == 3


def test_a_database_without_bgproc_tables_is_refused_and_left_empty(pg_db: str) -> None:
    refused = run_bgproc(pg_db, "requests")
    assert refused.code == 1 and refused.out == ""
    assert refused.err == (
        f"bgproc: error: {pg_db} is not a bgproc database (it has no bgproc tables); "
        "register a task first (`bgproc register MODULE`) or check --db / BGPROC_DB\n"
    )
    assert query(pg_db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'") == []


def test_a_database_from_a_newer_bgproc_is_refused(pg_db: str) -> None:
    register(pg_db)
    query(pg_db, "UPDATE bgproc_schema SET version = 99 RETURNING version")
    refused = run_bgproc(pg_db, "requests")
    assert refused.code == 1
    assert "has schema version 99, newer than this bgproc understands (1); upgrade bgproc" in refused.err


def test_a_password_in_the_url_is_not_shown(pg_db: str) -> None:
    secret = pg_db.replace("postgres@", "postgres:hunter2@", 1)
    refused = run_bgproc(secret, "requests")
    assert refused.code == 1 and "hunter2" not in refused.err and "is not a bgproc database" in refused.err


@pytest.mark.parametrize(
    ("url", "words"),
    [
        pytest.param("postgresql://postgres:hunter2@127.0.0.1:1/test",
                     ["cannot connect to postgresql://postgres:***@127.0.0.1:1/test (", "Connection refused",
                      "; check that the server runs, and --db / BGPROC_DB"], id="no server there"),
        pytest.param("postgresql://postgres:hunter2@{host}/bgproc_no_such_database",
                     ["postgresql://postgres:***@{host}/bgproc_no_such_database: the server has no such database; "
                      "create it (`createdb NAME`) or check --db / BGPROC_DB"], id="no such database"),
        pytest.param("postgresql://postgres:hunter2@{host}:port/test",
                     ["cannot read the PostgreSQL URL postgresql://postgres:***@{host}:port/test in --db / BGPROC_DB (",
                      "; write it as postgresql://USER@HOST:PORT/DBNAME"], id="port not a number"),
        pytest.param("postgresql://postgres:hunter2@[::1/test",
                     ["cannot read the PostgreSQL URL postgresql://postgres:***@[::1/test", "write it as"],
                     id="unclosed bracket"),
        pytest.param("postgresql://postgres@{host}/test?password=hunter2&colour=blue",
                     ["cannot read the PostgreSQL URL postgresql://postgres@{host}/test?password=***&colour=blue",
                      '(invalid URI query parameter: "colour"); write it as'], id="unknown parameter"),
    ],
)
def test_a_database_that_cannot_be_reached_or_read_is_one_line_without_its_password(
    url: str, words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    pgserver.require()
    host = urlsplit(pgserver.admin_url()).hostname or ""
    url = url.format(host=host)
    for args in (["requests"], ["register", TASKS_FILE], ["monitor", "--json"]):
        said = cli_on(url, capsys)(*args)
        assert said.code == 1 and said.out == "", said
        (line,) = said.err.splitlines()
        assert line.startswith("bgproc: error: ") and "hunter2" not in line, line
        for word in words:
            assert word.format(host=host) in line, line


def test_a_url_is_shown_with_its_password_masked() -> None:
    from bgproc.store import shown

    assert shown("postgresql://ann:s3cret@db:5432/jobs") == "postgresql://ann:***@db:5432/jobs"
    assert shown("postgres://ann:@db/jobs?password=s3cret&sslmode=require") == (
        "postgres://ann:***@db/jobs?password=***&sslmode=require"
    )
    assert shown("postgresql://ann@db/jobs") == "postgresql://ann@db/jobs"
    assert shown("postgresql:///jobs?host=/run/pg&PASSWORD=x") == "postgresql:///jobs?host=/run/pg&PASSWORD=***"
    assert shown("sqlite://u:p@host/x") == "sqlite://u:***@host/x"
    assert shown("/home/ann/user:pw@x/bgproc.db") == "/home/ann/user:pw@x/bgproc.db"  # a file's path, as it is


@pytest.mark.daemon
def test_the_daemon_says_where_it_started_without_the_password(pg_db: str) -> None:
    secret = pg_db.replace("postgres@", "postgres:hunter2@", 1)
    register(secret)
    done = run_bgproc(secret, "daemon", "--once", "--workers", "1")
    assert done.code == 0, done.err
    said = done.out + done.err
    assert f"started on {pg_db.replace('postgres@', 'postgres:***@', 1)} (" in said and "hunter2" not in said, said


def test_a_lost_connection_is_an_io_error_and_the_next_operation_connects_again(pg_db: str) -> None:
    register(pg_db)
    with open_store(pg_db) as store:
        assert isinstance(store, PostgresStore)
        (pid,) = store.values("SELECT pg_backend_pid()")
        query(pg_db, "SELECT pg_terminate_backend(?) AS done", pid)
        with pytest.raises(StoreIOError, match="the connection to the PostgreSQL server was lost"):
            store.list_tasks()
        assert "Noop" in [t.name for t in store.list_tasks()]  # connected again


def test_the_servers_errors_are_named_as_the_bgproc_family() -> None:
    for error, kind in [
        (psycopg.errors.LockNotAvailable("lock timeout"), StoreBusy),
        (psycopg.errors.DeadlockDetected("deadlock"), StoreBusy),
        (psycopg.errors.SerializationFailure("serialize"), StoreBusy),
        (psycopg.errors.DiskFull("no space"), StoreFull),
        (psycopg.errors.ReadOnlySqlTransaction("read-only"), StoreReadOnly),
        (psycopg.errors.AdminShutdown("terminating"), StoreIOError),
        (psycopg.OperationalError("server closed the connection unexpectedly\nThis probably means"), StoreIOError),
        (psycopg.errors.UniqueViolation("duplicate key"), StoreConflict),
    ]:
        said = named(error)
        assert type(said) is kind, (error, said)
        assert "\n" not in str(said)
    assert type(named(psycopg.errors.UndefinedTable("no table"))) is StoreError


def test_a_lock_held_elsewhere_says_busy_through_the_command_line(pg_db: str) -> None:
    register(pg_db)
    with open_store(pg_db) as store:
        store.set_busy_timeout(50)
        with pgserver.lock_everything(pg_db), pytest.raises(StoreBusy) as refused:
            store.unregister_task("Noop", utcnow())
    assert str(refused.value).startswith("the database is busy (")


# ----------------------------------------------------------------------
# The daemon on PostgreSQL


@pytest.mark.daemon
def test_a_daemon_runs_a_task_end_to_end(pg_db: str) -> None:
    register(pg_db)
    request_id = schedule(pg_db, "Echo", "-p", "text=hello", "--now")
    done = run_bgproc(pg_db, "daemon", "--once", "--workers", "1")
    assert done.code == 0, done.err + done.out
    (run,) = run_bgproc(pg_db, "monitor", "--json").json()
    assert (run["request_id"], run["status"], run["exit_code"]) == (request_id, "success", 0)
    assert "got 5 chars" in run["log"]
    assert run_bgproc(pg_db, "monitor", str(run["id"]), "--json").json()["status"] == "success"


@pytest.mark.daemon
def test_a_request_made_elsewhere_wakes_an_idle_daemon_through_notify(pg_db: str) -> None:
    register(pg_db)
    # It would look at the database unprompted only every 30 s.
    with daemon(pg_db, "--workers", "1", env={"BGPROC_TEST_DAEMON": "heartbeat_s=30,poll_s=30"}) as proc:
        time.sleep(0.5)  # idle, waiting on its selector
        asked = time.monotonic()
        request_id = schedule(pg_db, "Noop", "--now")
        run = wait_finished(pg_db, request_id, timeout=10)
        assert run["status"] == "success" and time.monotonic() - asked < 5, proc.output()
        proc.assert_healthy()


@pytest.mark.daemon
def test_a_daemon_with_its_clock_an_hour_ahead_neither_fires_early_nor_is_judged_dead(pg_db: str) -> None:
    """Two daemons on two "hosts", one whose wall clock is an hour ahead: a run due in a
    few seconds starts when it is due, by the database's clock, whoever claims it;
    run times are the database's; nobody is declared dead, and a command that looks
    once (the monitor) judges them as the daemons do."""
    register(pg_db)
    fast = "heartbeat_s=0.3,heartbeat_expiry_s=3,poll_s=0.2"
    skewed = daemon(pg_db, "--workers", "2", env={"BGPROC_TEST_DAEMON": f"{fast},host=ahead,clock_skew_s=3600"})
    normal = daemon(pg_db, "--workers", "2", env={"BGPROC_TEST_DAEMON": f"{fast},host=behind"})
    with skewed as ahead, normal as behind:
        made = [schedule(pg_db, "Noop", "--at", "+3s") for _ in range(4)]
        recurring = schedule(pg_db, "Noop", "--every", "1s")
        runs = [wait_finished(pg_db, request_id, timeout=20) for request_id in made]
        time.sleep(4)  # over the heartbeat expiry: anyone taken for dead would be by now
        assert run_bgproc(pg_db, "monitor", "--json").code == 0  # a command judges (and settles) too
        for proc in (ahead, behind):
            proc.assert_healthy()
            assert "declared dead" not in proc.output() and "set back" not in proc.output(), proc.output()
    for run in runs:
        started, planned = run["started_at"], run["planned_at"]
        assert isinstance(started, datetime) and isinstance(planned, datetime)
        assert run["status"] == "success"
        assert planned <= started < planned + timedelta(seconds=2.5), run
        assert abs((started - utcnow()).total_seconds()) < 60, run  # the database's hour, not the skewed one
    every = query(pg_db, "SELECT status, planned_at, started_at FROM runs WHERE request_id = ?", recurring)
    assert len([r for r in every if r["status"] == "success"]) >= 3, every
    assert all(r["started_at"] is None or r["started_at"] >= r["planned_at"] for r in every), every
    assert query(pg_db, "SELECT id FROM runs WHERE detail LIKE '%heartbeat%'") == []
    assert len({r["daemon_id"] for r in query(pg_db, "SELECT daemon_id FROM runs WHERE started_at IS NOT NULL")}) >= 1


def test_a_command_that_looks_once_settles_a_daemon_silent_past_the_expiry(pg_db: str) -> None:
    """Where the database keeps the time, the monitor judges a daemon on another host
    as the daemons do: silent for the expiry (60 s) by the server's clock, dead."""
    register(pg_db)
    request_id = schedule(pg_db, "Noop", "--now")
    with open_store(pg_db) as store:
        for name in ("gone", "alive"):
            store.register_daemon(
                DaemonRecord(id=f"{name}:1:aaaaaa", host=f"{name} boot=x pidns=pid:[9]", pid=1, started_at=utcnow(),
                             heartbeat_at=utcnow(), stopped_at=None, workers=1)
            )
        (run_id,) = [c.run_id for c in store.claim_due("gone:1:aaaaaa", utcnow(), utcnow(), 1).runs]
    query(pg_db, "UPDATE daemons SET heartbeat_at = heartbeat_at - interval '61 seconds' WHERE id LIKE 'gone:%' "
          "RETURNING id")
    shown = run_bgproc(pg_db, "monitor", str(run_id), "--json")
    assert shown.code == 0, shown.err
    run = shown.json()
    assert run["status"] == "interrupted" and run["request_id"] == request_id
    assert re.search(r"daemon gone:1:aaaaaa stopped heartbeating \(no heartbeat for 6\ds by the database's clock",
                     run["detail"]), run["detail"]
    assert [r["id"] for r in query(pg_db, "SELECT id FROM daemons WHERE stopped_at IS NULL")] == ["alive:1:aaaaaa"]


def test_a_dropped_database_is_gone_for_the_watch(pg_db: str) -> None:
    register(pg_db)
    with open_store(pg_db) as store:
        watch = store.watch()
        assert watch.check() is None
        pgserver.drop_database(pg_db)
        for _ in range(2):  # the connection ended; then none can be made
            with pytest.raises(StoreIOError):
                store.list_tasks()
        problem = watch.check()
        assert problem is not None and problem.gone and "was dropped" in problem.text


def test_a_listener_whose_connection_is_lost_listens_again(pg_db: str) -> None:
    import select

    register(pg_db)
    with open_store(pg_db) as store, open_store(pg_db) as other:
        notifier = store.listen("d1")
        assert notifier is not None
        try:
            before = (notifier.fileno(), notifier.generation)  # type: ignore[attr-defined]
            query(pg_db, "SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity "
                  "WHERE application_name = 'bgproc listen' AND datname = current_database()")

            def listening_again() -> bool:
                # Its socket reads the server's last words, then its end: listening again then.
                select.select([notifier.fileno()], [], [], 1)
                notifier.drain()
                return (notifier.fileno(), notifier.generation) != before  # type: ignore[attr-defined]

            wait_until(listening_again, 10)
            assert select.select([notifier.fileno()], [], [], 5)[0]  # woken once, for what it missed
            notifier.drain()
            assert select.select([notifier.fileno()], [], [], 0)[0] == []
            schedule(pg_db, "Noop", "--now")
            assert select.select([notifier.fileno()], [], [], 5)[0]
            assert other.list_requests()
        finally:
            notifier.close()
