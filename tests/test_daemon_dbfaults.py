"""The database failing under a daemon: locked, full, read-only, an I/O error, its
file deleted or replaced. Workers' exits are kept in memory and their outcomes
written when the database allows; each condition is named, said once, and waited
out with a growing delay; a database file that is no longer the daemon's own stops
the daemon. In-process tests drive ``Daemon._iterate`` (one pass of the loop) with
a ``FakeClock``; the file tests run a real daemon."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import test_daemon_tick
from conftest import query, wait_until
from daemon_tasks.helpers import DaemonProcess, register, run_of, schedule
from test_daemon_tick import T0, Made, make, runs

from bgproc import requests
from bgproc.clock import FakeClock
from bgproc.daemon import CUT_LOG_BYTES, Daemon
from bgproc.errors import StoreCorrupt, StoreIOError
from bgproc.store.sqlite import SQLiteStore as Store
from bgproc.timing import TimingOptions

# The fixtures of the daemon's hand-driven tests: a store copied from a template, a
# fake clock, and the daemons made (shut down after each test).
tick = test_daemon_tick
template, store, clock, made = tick.template, tick.store, tick.clock, tick.made


def request(
    store: Store, task: str = "Noop", *, timeout: float | None = None, offset_us: int = 0, **params: Any
) -> int:
    """A one-time request due at T0, made as `bgproc schedule TASK --now` makes it."""
    from datetime import timedelta

    planned = requests.plan(
        store, task, now=T0 + timedelta(microseconds=offset_us), default_zone="UTC",
        timing=TimingOptions(now=True), timeout=timeout, pairs=[f"{k}={v}" for k, v in params.items()],
    )
    return requests.create(store, planned, T0 + timedelta(microseconds=offset_us)).id


def exited(pid: int) -> bool:
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def wait_exited(daemon: Daemon) -> None:
    """Let every worker end (reading their pipes meanwhile), without reaping any."""
    deadline = time.monotonic() + 20
    while not all(exited(run.pid) for run in daemon.active.values()):
        assert time.monotonic() < deadline, "workers did not end"
        daemon._wait(0.05)


def said(daemon: Daemon) -> str:
    return daemon.reporter.stream.getvalue()  # type: ignore[attr-defined]


@pytest.fixture
def holder(store: Store) -> Iterator[sqlite3.Connection]:
    """Another connection, to hold the database's write lock."""
    conn = sqlite3.connect(store.path, isolation_level=None)
    yield conn
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    conn.close()


# ----------------------------------------------------------------------
# Outcomes: kept at once, written when the database allows


@pytest.mark.daemon
def test_runs_that_end_while_the_database_is_locked_keep_their_outcome(
    made: Made, store: Store, clock: FakeClock, holder: sqlite3.Connection
) -> None:
    ids = [request(store, timeout=6.0, offset_us=i) for i in range(2)]
    daemon = make(made, store, clock, workers=2)
    store.set_busy_timeout(20)
    clock.advance(1)
    assert len(daemon.tick(clock.now())) == 2
    wait_exited(daemon)
    holder.execute("BEGIN IMMEDIATE")  # a task holding the write lock, say
    daemon._iterate()  # both exits seen now; neither outcome can be written
    clock.advance(10)  # past both deadlines
    for _ in range(3):
        daemon._iterate()
        clock.advance(1)
    assert [runs(store, i)[0]["status"] for i in ids] == ["running", "running"]
    holder.execute("COMMIT")
    clock.advance(5)
    daemon._iterate()
    for request_id in ids:
        (run,) = runs(store, request_id)
        assert (run["status"], run["exit_code"], run["detail"]) == ("success", 0, None)
        assert run["ended_at"].startswith("2026-03-02T09:00:01.")  # when the exit was seen
    assert not daemon.active
    assert said(daemon).count("database busy (database is locked)") == 1
    assert said(daemon).count("database busy cleared") == 1


class ReleasingClock(FakeClock):
    """A fake clock that releases another connection's lock once it has slept enough."""

    def __init__(self, holder: sqlite3.Connection, after_s: float) -> None:
        super().__init__(T0)
        self.holder, self.after_s, self.slept = holder, after_s, 0.0

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        self.slept += seconds
        if self.slept >= self.after_s and self.holder.in_transaction:
            self.holder.execute("COMMIT")


@pytest.mark.daemon
def test_shutdown_writes_the_outcomes_that_wait_when_the_database_allows(
    made: Made, store: Store, holder: sqlite3.Connection
) -> None:
    ids = [request(store, offset_us=i) for i in range(2)]
    clock = ReleasingClock(holder, after_s=3.0)
    daemon = make(made, store, clock, workers=2)
    daemon.register()
    store.set_busy_timeout(20)
    clock.advance(1)
    assert len(daemon.tick(clock.now())) == 2
    wait_exited(daemon)
    holder.execute("BEGIN IMMEDIATE")
    daemon._shutdown()  # a finished run is never recorded interrupted
    assert [runs(store, i)[0]["status"] for i in ids] == ["success", "success"]
    assert "could not be recorded" not in said(daemon)
    assert query(store.path, "SELECT stopped_at FROM daemons")[0]["stopped_at"]


@pytest.mark.daemon
def test_shutdown_says_what_it_could_not_record(made: Made, store: Store, holder: sqlite3.Connection) -> None:
    ids = [request(store, offset_us=i) for i in range(2)]
    clock = ReleasingClock(holder, after_s=float("inf"))
    daemon = make(made, store, clock, workers=2, record_wait_s=10.0)
    store.set_busy_timeout(20)
    clock.advance(1)
    run_ids = daemon.tick(clock.now())
    assert len(run_ids) == 2
    wait_exited(daemon)
    holder.execute("BEGIN IMMEDIATE")
    started = clock.monotonic()
    daemon._shutdown()
    assert 10.0 <= clock.monotonic() - started < 30  # tried for record_wait_s, no longer
    holder.execute("ROLLBACK")
    lines = [line for line in said(daemon).splitlines() if "could not be recorded" in line]
    assert len(lines) == 2
    for run_id, line in zip(run_ids, lines, strict=True):
        assert f"run {run_id} (Noop) could not be recorded: it ended success" in line
        assert "exit code 0" in line and "database busy (database is locked)" in line
    # Nothing false was written: the runs wait, running, for the next daemon to settle.
    assert [runs(store, i)[0]["status"] for i in ids] == ["running", "running"]


def started(daemon: Daemon, text: str) -> Any:
    """The daemon's one run, once its log shows ``text`` (read through the loop's waits)."""
    (run,) = daemon.active.values()
    deadline = time.monotonic() + 30
    while text not in run.log.last_line:
        assert time.monotonic() < deadline, "the task did not start"
        daemon._wait(0.05)
    return run


@pytest.mark.daemon
def test_while_the_database_is_locked_the_daemon_claims_nothing_and_its_runs_are_still_timed(
    made: Made, store: Store, clock: FakeClock, holder: sqlite3.Connection
) -> None:
    from datetime import timedelta

    from test_daemon_tick import new_request

    hang = request(store, "Hang", timeout=5.0)
    later = new_request(store, T0, at=T0 + timedelta(seconds=10))
    daemon = make(made, store, clock, workers=2, kill_after_s=1.0)
    clock.advance(1)
    daemon._iterate()  # claims and starts the hanging run; the other is not due yet
    run = started(daemon, "hanging")
    store.set_busy_timeout(20)
    holder.execute("BEGIN IMMEDIATE")  # another program holds the write lock
    clock.advance(10)  # the other request is due; the hanging run is past its timeout
    deadline = time.monotonic() + 30
    while not run.reaped:
        assert time.monotonic() < deadline, "the run was not stopped"
        daemon._iterate()  # stops it on time, and keeps how it ended
        daemon._wait(0.05)
        clock.advance(0.5)
    assert run.outcome == "timeout" and run.stop_reason == "timeout"
    assert runs(store, later) == [] and runs(store, hang)[0]["status"] == "running"  # nothing written, nothing claimed
    assert said(daemon).count("database busy (database is locked)") == 1
    holder.execute("COMMIT")
    clock.advance(20)  # past the longest delay before the database is tried again
    daemon._iterate()
    (stopped,) = runs(store, hang)
    assert stopped["status"] == "timeout" and stopped["detail"].startswith("passed its timeout of 5s; stopped")
    assert [r.request_id for r in daemon.active.values()] == [later]  # claimed once the database is back
    assert said(daemon).count("database busy cleared") == 1


@pytest.mark.daemon
def test_a_daemon_stopped_while_the_database_is_locked_says_what_it_could_not_record(
    made: Made, store: Store, clock: FakeClock, holder: sqlite3.Connection
) -> None:
    hang = request(store, "Hang")
    daemon = make(made, store, clock, kill_after_s=1.0, grace_s=5.0, record_wait_s=3.0)
    daemon.register()
    clock.advance(1)
    daemon._iterate()
    run = started(daemon, "hanging")
    store.set_busy_timeout(20)
    holder.execute("BEGIN IMMEDIATE")
    daemon.request_stop("SIGTERM")
    assert daemon._iterate() is False  # the run has its grace
    clock.advance(5)  # the grace is over: the run is stopped, though nothing can be written
    deadline = time.monotonic() + 30
    while not daemon._iterate():
        assert time.monotonic() < deadline, "the daemon did not stop"
        daemon._wait(0.05)
    assert run.reaped and run.outcome == "interrupted"
    started_at = clock.monotonic()
    daemon._shutdown()
    assert 3.0 <= clock.monotonic() - started_at < 10  # tried again for record_wait_s
    holder.execute("ROLLBACK")
    (line,) = [line for line in said(daemon).splitlines() if "could not be recorded" in line]
    assert f"run {run.run_id} (Hang) could not be recorded: it ended interrupted (the daemon stopped" in line
    assert line.endswith("; database busy (database is locked)")
    assert "could not record this daemon stopped (database busy (database is locked))" in said(daemon)
    # Nothing false was written: the run waits, running, for the next daemon to settle it.
    assert runs(store, hang)[0]["status"] == "running"
    assert query(store.path, "SELECT stopped_at FROM daemons")[0]["stopped_at"] is None


@pytest.mark.daemon
def test_a_database_corrupt_at_shutdown_is_not_waited_for(
    made: Made, store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    noop = request(store)
    daemon = make(made, store, clock, record_wait_s=60.0)
    clock.advance(1)
    (run_id,) = daemon.tick(clock.now())
    wait_exited(daemon)

    def corrupt() -> Any:
        raise StoreCorrupt("database disk image is malformed")

    monkeypatch.setattr(store, "immediate", corrupt)  # every write fails so
    started_at = clock.monotonic()
    daemon._shutdown()
    assert clock.monotonic() - started_at < 10  # waiting cannot help a corrupt database
    (line,) = [line for line in said(daemon).splitlines() if "could not be recorded" in line]
    assert f"run {run_id} (Noop) could not be recorded: it ended success" in line
    assert line.endswith("exit code 0; database corrupt (database disk image is malformed)")
    assert "could not record this daemon stopped (database corrupt" in said(daemon)
    assert runs(store, noop)[0]["status"] == "running"


# ----------------------------------------------------------------------
# A full disk: the outcome is written with its log cut, and claiming goes on


def fill_up(store: Store, spare_pages: int) -> None:
    """From now on the daemon's connection may grow the file by ``spare_pages`` pages
    only: further writes fail with SQLITE_FULL, as on a full disk."""
    pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
    store.conn.execute(f"PRAGMA max_page_count = {pages + spare_pages}")


@pytest.mark.daemon
def test_a_full_database_records_the_outcome_with_the_log_cut_and_claiming_goes_on(
    made: Made, store: Store, clock: FakeClock
) -> None:
    flood = request(store, "Flood", megabytes=1)
    after = request(store, offset_us=1)
    daemon = make(made, store, clock, workers=1)
    clock.advance(1)
    assert len(daemon.tick(clock.now())) == 1  # one worker: the second request waits
    fill_up(store, spare_pages=24)  # ~100 KB: no room for a 1 MB log
    wait_exited(daemon)
    daemon._iterate()
    run = runs(store, flood)[0]
    assert run["status"] == "success" and run["exit_code"] == 0
    stored = store.get_run(run["id"])
    assert "LAST LINE" in stored.log and "FIRST LINE" not in stored.log
    assert f"database full (database or disk is full): the log is cut to its last {CUT_LOG_BYTES} bytes" in stored.log
    assert len(stored.log.encode()) < CUT_LOG_BYTES + 1024 and stored.log_dropped > 1_000_000
    assert f"success in 0.00s, database full: log cut to its last {CUT_LOG_BYTES} bytes (" in said(daemon)
    # The worker slot went to the next request in the same pass.
    assert [r.request_id for r in daemon.active.values()] == [after]
    wait_exited(daemon)
    daemon._iterate()
    assert runs(store, after)[0]["status"] == "success"


@pytest.mark.daemon
def test_a_full_database_at_shutdown_records_the_outcome_with_the_log_cut(
    made: Made, store: Store, clock: FakeClock
) -> None:
    flood = request(store, "Flood", megabytes=1)
    daemon = make(made, store, clock)
    daemon.tick(clock.now())
    fill_up(store, spare_pages=0)  # not even a cut log fits: only the line that says so
    wait_exited(daemon)
    daemon._shutdown()
    run = store.get_run(runs(store, flood)[0]["id"])
    assert run.status == "success", run.detail
    assert "the log is cut to its last 0 bytes" in run.log and "LAST LINE" not in run.log


# ----------------------------------------------------------------------
# Conditions: named, said once when they start and once when they clear, and
# tried again after a growing delay (not twice a second)


def read_only(store: Store, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    store.conn.execute("PRAGMA query_only = 1")
    return lambda: store.conn.execute("PRAGMA query_only = 0") and None


def io_error(store: Store, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    def failing(*args: Any, **kwargs: Any) -> bool:
        raise StoreIOError("disk I/O error")

    original = store.finish_run
    monkeypatch.setattr(store, "finish_run", failing)
    return lambda: monkeypatch.setattr(store, "finish_run", original)


def busy(store: Store, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    store.set_busy_timeout(1)

    def release() -> None:
        other.execute("ROLLBACK")
        other.close()

    return release


@pytest.mark.daemon
@pytest.mark.parametrize(
    ("condition", "named", "most_attempts"),
    [(read_only, "read-only", 16), (io_error, "I/O error", 16), (busy, "busy", 70)],
)
def test_a_condition_is_said_once_and_waited_out_with_a_growing_delay(
    made: Made, store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch,
    condition: Callable[..., Callable[[], None]], named: str, most_attempts: int,
) -> None:
    noop = request(store)
    daemon = make(made, store, clock)
    daemon.tick(clock.now())
    wait_exited(daemon)
    attempts = []
    original = store.immediate
    monkeypatch.setattr(store, "immediate", lambda: attempts.append(1) or original())
    clear = condition(store, monkeypatch)
    for _ in range(240):  # two minutes, a pass every half second
        daemon._iterate()
        clock.advance(0.5)
    assert runs(store, noop)[0]["status"] == "running"
    assert len(attempts) <= most_attempts  # not 240
    assert said(daemon).count(f"database {named} (") == 1
    clear()
    clock.advance(20)
    daemon._iterate()
    assert runs(store, noop)[0]["status"] == "success"
    assert said(daemon).count(f"database {named} cleared") == 1
    assert len([line for line in said(daemon).splitlines() if "database" in line]) == 2  # nothing else about it


def test_a_corrupt_database_stops_the_daemon(
    made: Made, store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def corrupt(*args: Any, **kwargs: Any) -> None:
        raise StoreCorrupt("database disk image is malformed")

    daemon = make(made, store, clock)
    monkeypatch.setattr(store, "next_due_at", corrupt)
    assert daemon._iterate() is True and daemon.exit_status == 1
    assert "database corrupt (database disk image is malformed); stopping" in said(daemon)


# ----------------------------------------------------------------------
# The command line names the condition


@pytest.mark.parametrize(
    ("condition", "named"),
    [
        ("full", "the database is full (database or disk is full); its disk (or quota) has no room left"),
        ("read-only", "the database is read-only (attempt to write a readonly database); check the permissions"),
        ("busy", "the database is busy (database is locked); another connection holds its lock"),
        ("I/O error", "the database had an I/O error (disk I/O error); the system could not read or write it"),
    ],
)
def test_the_command_line_names_the_condition(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    condition: str, named: str,
) -> None:
    from bgproc.cli import run
    from bgproc.store.sqlite import connection

    db = tmp_path / "data" / "bgproc.db"
    db.parent.mkdir(mode=0o700)
    shutil.copy(template, db)
    db.chmod(0o600)
    opened = Store.open

    def open_in_condition(*args: Any, **kwargs: Any) -> Store:
        store = opened(*args, **kwargs)
        if condition == "full":
            fill_up(store, spare_pages=0)
        elif condition == "read-only":
            store.conn.execute("PRAGMA query_only = 1")
        elif condition == "I/O error":
            exc = StoreIOError("disk I/O error")
            monkeypatch.setattr(store, "insert_request", lambda **kwargs: (_ for _ in ()).throw(exc))
        return store

    monkeypatch.setattr(Store, "open", open_in_condition)
    holder = sqlite3.connect(db, isolation_level=None)
    if condition == "busy":
        monkeypatch.setattr(connection, "BUSY_TIMEOUT_MS", 20)
        holder.execute("BEGIN IMMEDIATE")
    before = query(db, "SELECT COUNT(*) AS n FROM requests")[0]["n"]
    capsys.readouterr()
    code = run(["--db", str(db), "schedule", "Echo", "-p", f"text={'x' * 20000}"])
    err = capsys.readouterr().err
    holder.close()
    assert code == 1
    assert err.startswith(f"bgproc: error: {named}") and err.count("\n") == 1, err
    assert query(db, "SELECT COUNT(*) AS n FROM requests")[0]["n"] == before


# ----------------------------------------------------------------------
# The database file changed under a running daemon: it stops, and says why


def log_head(db: Path, run_id: int) -> str:
    rows = query(db, "SELECT head FROM run_logs WHERE run_id = ?", run_id)
    return rows[0]["head"] if rows else ""


@pytest.fixture(scope="module")
def _no_daemon_left_behind() -> Iterator[None]:
    yield
    DaemonProcess.kill_leftovers()


@pytest.mark.daemon
@pytest.mark.usefixtures("_no_daemon_left_behind")
@pytest.mark.parametrize(
    ("change", "said"),
    [
        ("delete", "was deleted"),
        ("truncate", "was truncated (0 bytes)"),
        ("replace", "was replaced by another file"),
        ("chmod", "is writable by others (mode 666); run: chmod 600"),
        pytest.param(
            "chown", "belongs to nobody", marks=pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
        ),
    ],
)
def test_a_daemon_whose_database_file_changes_stops_its_runs_and_exits_non_zero(
    db: Path, tmp_path: Path, change: str, said: str
) -> None:
    from daemon_tasks.helpers import pid_alive

    register(db)
    other = tmp_path / "other" / "bgproc.db"
    if change == "replace":
        register(other)  # closed: no WAL beside it
    proc = DaemonProcess(db, "--workers", "1", "--kill-after", "1")
    proc.wait_started()
    sleeping = schedule(db, "Sleep", "-p", "seconds=600")
    run = wait_until(lambda: (r := run_of(db, sleeping)) and "sleeping" in log_head(db, r["id"]) and r, 30)
    worker = run["pid"]
    if change == "delete":
        db.unlink()
    elif change == "truncate":
        os.truncate(db, 0)
    elif change == "replace":
        replacement = other.read_bytes()
        os.replace(other, db)
    elif change == "chmod":
        db.chmod(0o666)
    else:
        os.chown(db, 65534, 65534)  # another local user's now
    assert proc.proc.wait(30) == 1, proc.output()
    output = proc.output()
    (line,) = [line for line in output.splitlines() if "; stopping: " in line]
    assert f"{db} {said}" in line
    assert "no new runs, the 1 running stopped now, exit status 1" in line
    assert "Traceback" not in output
    assert not pid_alive(worker)
    if change in ("chmod", "chown"):  # still the file the daemon opened: the run is recorded
        assert run_of(db, sleeping)["status"] == "interrupted"
    else:  # nothing recorded where nobody looks; the log says what was not
        assert "could not be recorded: it ended interrupted" in output
    if change == "replace":
        assert db.read_bytes() == replacement  # the daemon wrote nothing to the new database


def test_the_file_watch_reads_the_header_only_when_the_file_changed(store: Store) -> None:
    watch = store.watch()
    assert watch.check() is None
    before = store.path.stat()
    with open(store.path, "r+b") as file:  # in place: the same inode
        file.write(b"not SQLite at all")
    os.utime(store.path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert watch.check() is None  # same size and time: not read (a stat per pass, no more)
    os.utime(store.path, ns=(time.time_ns(), time.time_ns() + 10**9))
    problem = watch.check()
    assert problem is not None and problem.gone and "was overwritten (it has no SQLite header" in problem.text


def test_a_file_cut_mid_page_is_truncated(store: Store) -> None:
    watch = store.watch()
    os.truncate(store.path, 5000)
    problem = watch.check()
    assert problem is not None and problem.gone
    assert "was truncated or overwritten (5000 bytes, not a whole number of 4096-byte pages)" in problem.text


def test_a_cut_log_keeps_its_last_whole_lines_after_the_note() -> None:
    from bgproc.daemon.runlog import RunLog

    log = RunLog(1000)
    for i in range(100):
        log.add("00:00:00.000", f"line {i:03}")
    before = log.dropped
    lost = log.cut(70, "NOTE")
    head, tail, dropped, _ = log.pending()
    assert head == "" and tail == "NOTE\n00:00:00.000 line 097\n00:00:00.000 line 098\n00:00:00.000 line 099\n"
    assert lost > 0 and dropped == before + lost
    log.cut(0, "NOTE AGAIN")
    assert log.pending()[1] == "NOTE AGAIN\n"
