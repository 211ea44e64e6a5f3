"""A worker's lease: a worker whose daemon has gone quiet (stopped, suspended) stops
its task itself, before another daemon can declare that one dead and run the
request again. The worker side with a worker process and hand-made pipes; the
daemon side in-process and end to end, with real daemons SIGSTOPped, and a daemon
cut off from its PostgreSQL server (which renews no lease past its last heartbeat
taken)."""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import msgpack
import pytest
from conftest import ROOT, query, wait_until
from daemon_tasks.helpers import DaemonProcess, daemon, pid_alive, register, run_of, schedule
from daemon_tasks.tasks import BodyParams, FloodParams, HangParams

from bgproc import params as params_codec
from bgproc.clock import utcnow
from bgproc.daemon import Daemon, DaemonConfig, overrides_for_tests
from bgproc.daemon.membership import settle
from bgproc.daemon.protocol import EXIT_CANCELLED, FDS_ENV, Job
from bgproc.daemon.reporter import Reporter
from bgproc.errors import StoreIOError
from bgproc.store import open_store
from bgproc.store.base import Store

# Every guarantee in both ways a run starts: forked by the fork server, and a fresh interpreter.
pytestmark = pytest.mark.usefixtures("isolation")

LEASE_LINE = "no word from the daemon for"


@pytest.fixture(autouse=True, scope="module")
def _no_daemon_left_behind() -> Iterator[None]:
    yield
    DaemonProcess.kill_leftovers()


# ----------------------------------------------------------------------
# The lease's length


def test_lease_and_grace_end_before_another_daemon_can_declare_the_daemon_dead() -> None:
    lease = DaemonConfig().worker_lease()
    assert lease == (45.0, 5.0)
    for config in (
        DaemonConfig(),
        DaemonConfig(heartbeat_s=0.25, heartbeat_expiry_s=4, kill_after_s=1),
        DaemonConfig(kill_after_s=300),  # a long --kill-after does not stretch the lease's grace
    ):
        lease_s, grace_s = config.worker_lease()  # type: ignore[misc]
        # The last heartbeat came at most one interval before the last renewal; one
        # more interval is the margin.
        assert lease_s + grace_s + 2 * config.heartbeat_s <= config.heartbeat_expiry_s
        assert lease_s >= 2 * config.heartbeat_s and grace_s > 0
    # No room for a lease: none (fake-clock tests beat once an hour).
    assert DaemonConfig(heartbeat_s=3600).worker_lease() is None


def test_test_overrides_are_checked() -> None:
    assert overrides_for_tests("") == ({}, None)
    assert overrides_for_tests("heartbeat_s=0.25, heartbeat_expiry_s=4,host=elsewhere") == (
        {"heartbeat_s": 0.25, "heartbeat_expiry_s": 4.0}, "elsewhere",
    )
    assert overrides_for_tests("clock_skew_s=-3600") == ({"clock_skew_s": -3600.0}, None)
    for bad in ("heartbeat_s=0", "heartbeat_s=x", "workers=3", "host=", "heartbeat_s=1e9", "clock_skew_s=nan",
                "clock_skew_s=1e9"):
        with pytest.raises(ValueError, match="BGPROC_TEST_DAEMON"):
            overrides_for_tests(bad)


# ----------------------------------------------------------------------
# The worker side: a worker process, its pipes made by hand


class Worker:
    """``python -m bgproc.child`` given one job, as the daemon gives it."""

    def __init__(self, tmp: Path, task: str, params: Any, lease: tuple[float, float] | None) -> None:
        job_r, self.job_w = os.pipe()
        self.events_r, events_w = os.pipe()
        env = dict(os.environ)
        env[FDS_ENV] = f"{job_r},{events_w}"
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bgproc.child"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, pass_fds=(job_r, events_w), env=env, cwd=tmp, start_new_session=True,
        )
        os.close(job_r)
        os.close(events_w)
        lease_s, grace_s = lease or (None, None)
        job = Job(
            run_id=7, request_id=3, task=task, import_path=f"daemon_tasks.tasks:{task}",
            search_path=str(ROOT / "tests"), params=params_codec.encode(params), user="tester",
            app_db=str(tmp / "app.db"), lease_s=lease_s, lease_grace_s=grace_s,
        )
        os.write(self.job_w, job.pack())

    def renew(self) -> None:
        os.write(self.job_w, b"\0")

    def finish(self, timeout: float = 20.0) -> tuple[int, str, list[dict[str, Any]]]:
        """Exit code, output, events; the job pipe stays open (the daemon is alive)."""
        out, _ = self.proc.communicate(timeout=timeout)
        with os.fdopen(self.events_r, "rb") as pipe:
            events = list(msgpack.Unpacker(pipe, raw=False))
        os.close(self.job_w)
        return self.proc.returncode, out.decode(), events

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    made: list[Worker] = []
    yield made
    for worker in made:
        worker.kill()


def notes(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.daemon
def test_worker_without_renewal_stops_its_task_within_its_lease(tmp_path: Path, workers: list[Worker]) -> None:
    body, child_file = tmp_path / "body", tmp_path / "child"
    params = BodyParams(path=str(body), seconds=30, child_pid_file=str(child_file))
    worker = Worker(tmp_path, "Body", params, lease=(0.6, 0.5))
    workers.append(worker)
    wait_until(lambda: notes(body))
    child = int(child_file.read_text())
    code, out, events = worker.finish()
    (start, cancelled) = notes(body)
    assert start[0] == "start" and cancelled[0] == "cancelled"  # Cancelled was raised in run()
    assert 0.5 <= float(cancelled[2]) - float(start[2]) < 5
    assert code == EXIT_CANCELLED
    # One line says why; not the daemon's stop message.
    assert out.count(LEASE_LINE) == 1 and "stopping run 7" in out and "the daemon stopped run" not in out
    assert [e["t"] for e in events] == ["started", "lease", "ended"]
    wait_until(lambda: not pid_alive(child), 5)  # what the task started went with it (SIGKILL takes a moment)


@pytest.mark.daemon
def test_worker_renewed_in_time_runs_to_the_end(tmp_path: Path, workers: list[Worker]) -> None:
    body = tmp_path / "body"
    worker = Worker(tmp_path, "Body", BodyParams(path=str(body), seconds=1.5), lease=(0.6, 0.5))
    workers.append(worker)
    wait_until(lambda: notes(body))
    while worker.proc.poll() is None:  # renewed every 0.1 s, for more than twice the lease
        worker.renew()
        time.sleep(0.1)
    code, out, events = worker.finish()
    assert [n[0] for n in notes(body)] == ["start", "end"]
    assert code == 0 and LEASE_LINE not in out
    assert [e["t"] for e in events] == ["started", "ended"]


@pytest.mark.daemon
def test_worker_without_a_lease_waits_for_its_daemon(tmp_path: Path, workers: list[Worker]) -> None:
    body = tmp_path / "body"
    worker = Worker(tmp_path, "Body", BodyParams(path=str(body), seconds=1.0), lease=None)
    workers.append(worker)
    code, out, _ = worker.finish()
    assert code == 0 and [n[0] for n in notes(body)] == ["start", "end"]


@pytest.mark.daemon
def test_task_that_ignores_the_stop_is_killed_after_the_grace(tmp_path: Path, workers: list[Worker]) -> None:
    child_file = tmp_path / "child"
    worker = Worker(tmp_path, "IgnoreTerm", HangParams(child_pid_file=str(child_file)), lease=(0.5, 0.5))
    workers.append(worker)
    wait_until(child_file.exists)
    child = int(child_file.read_text())
    started = time.monotonic()
    code, out, events = worker.finish()
    assert code == -signal.SIGKILL and time.monotonic() - started < 10
    assert out.count(LEASE_LINE) == 1 and [e["t"] for e in events] == ["started", "lease"]
    wait_until(lambda: not pid_alive(child), 5)  # SIGKILLed with its group; on a loaded machine it takes a moment


@pytest.mark.daemon
def test_worker_whose_output_nobody_reads_still_stops(tmp_path: Path, workers: list[Worker]) -> None:
    # A stopped daemon reads nothing: the task blocks writing its output, and so would
    # a lease line written before the stop.
    worker = Worker(tmp_path, "Flood", FloodParams(megabytes=50), lease=(0.5, 0.5))
    workers.append(worker)
    worker.proc.wait(timeout=15)  # its output unread meanwhile
    code, out, events = worker.finish()
    assert code in (EXIT_CANCELLED, -signal.SIGKILL) and "LAST LINE" not in out
    assert "lease" in [e["t"] for e in events]


# ----------------------------------------------------------------------
# The daemon side


@pytest.mark.daemon
def test_run_whose_worker_stopped_it_is_recorded_interrupted(tmp_path: Path) -> None:
    from test_daemon_tick import forkserver_ready

    from bgproc.clock import Clock
    from bgproc.daemon import Daemon
    from bgproc.daemon.forking import Forked
    from bgproc.daemon.reporter import Reporter
    from bgproc.store.sqlite import SQLiteStore as Store

    db = tmp_path / "data" / "bgproc.db"
    register(db)
    body = tmp_path / "body"
    request = schedule(db, "Body", "-p", f"path={body}")
    config = DaemonConfig(heartbeat_s=0.1, heartbeat_expiry_s=1.5, kill_after_s=0.3, spare=False)
    assert config.worker_lease() == (1.0, 0.3)
    with Store.open(db) as store:
        daemon = Daemon(store, config, clock=Clock(), reporter=Reporter(open(os.devnull, "w"), live=False))
        try:
            forkserver_ready(daemon)  # with the fork server on, the run is forked
            # Claimed and started by hand: nothing renews the lease, as in a daemon stopped.
            assert len(daemon.tick(daemon.clock.now())) == 1
            (active,) = daemon.active.values()
            assert isinstance(active.proc, Forked) == (daemon.workers.forkserver is not None)
            deadline = time.monotonic() + 20
            while daemon.active:
                assert time.monotonic() < deadline
                daemon._wait(0.05)
                daemon.supervisor.reap()
        finally:
            daemon._shutdown()
    run = run_of(db, request)
    assert run is not None and run["status"] == "interrupted" and run["exit_code"] == EXIT_CANCELLED
    assert "no word from this daemon within its lease of 1s" in run["detail"] and "ended on SIGTERM" in run["detail"]
    log = query(db, "SELECT head FROM run_logs WHERE run_id = ?", run["id"])[0]["head"]
    assert log.count(LEASE_LINE) == 1
    assert [n[0] for n in notes(body)] == ["start", "cancelled"]


# Short intervals for daemons under test: lease 2.625 s, grace 0.875 s (with --kill-after 1);
# another daemon declares a silent one dead no sooner than 4 s after its last heartbeat.
INTERVALS = "heartbeat_s=0.25,heartbeat_expiry_s=4"


def _wall(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.mark.daemon
def test_suspended_daemons_runs_stop_before_another_host_declares_it_dead(tmp_path: Path) -> None:
    db = tmp_path / "data" / "bgproc.db"
    register(db)
    body, child_file = tmp_path / "body", tmp_path / "child"
    request = schedule(db, "Body", "--every", "1s", "-p", f"path={body}", "-p", f"child_pid_file={child_file}")
    env_a = {"BGPROC_TEST_DAEMON": f"{INTERVALS},host=host-a"}
    env_b = {"BGPROC_TEST_DAEMON": f"{INTERVALS},host=host-b"}
    with daemon(db, "--kill-after", "1", "--no-spare", env=env_a) as first:
        wait_until(lambda: notes(body), 30)
        run = run_of(db, request)
        assert run is not None and run["status"] == "running" and run["daemon_id"].startswith("host-a:")
        worker, child = run["pid"], int(child_file.read_text())
        with daemon(db, "--kill-after", "1", "--no-spare", env=env_b) as second:
            first.proc.send_signal(signal.SIGSTOP)
            try:
                # The body stops, and everything of its run with it, while its daemon is
                # still stopped and before the other daemon has declared that one dead.
                wait_until(lambda: len(notes(body)) >= 2, 20)
                wait_until(lambda: not pid_alive(worker) and not pid_alive(child), 10)
                assert run_of(db, request)["status"] == "running"  # type: ignore[index]
                interrupted = wait_until(lambda: run_of(db, request, status="interrupted"), 30)
                assert "stopped heartbeating" in interrupted["detail"]
                # The other daemon runs the request again, and only now does a body start.
                wait_until(lambda: len(notes(body)) >= 3, 30)
            finally:
                first.proc.send_signal(signal.SIGCONT)
            wait_until(lambda: "continues as" in first.output(), 30)
            log = wait_until(
                lambda: (rows := query(db, "SELECT head FROM run_logs WHERE run_id = ?", run["id"]))
                and LEASE_LINE in (rows[0]["head"] or "") and rows[0]["head"],
                30,
            )
            assert "after it had been recorded as ended" in log
            second.assert_healthy()
        first.assert_healthy()
    lines = notes(body)
    assert [line[0] for line in lines[:3]] == ["start", "cancelled", "start"]
    assert lines[0][1] == lines[1][1] != lines[2][1]  # the first body, then another one
    # Never two bodies at once: the first ended (Cancelled) before the second began, and
    # before the other daemon recorded its run interrupted.
    assert float(lines[1][2]) < float(lines[2][2])
    assert float(lines[1][3]) < _wall(interrupted["ended_at"])


@pytest.mark.daemon
def test_daemon_whose_database_is_locked_keeps_renewing_its_workers(tmp_path: Path) -> None:
    db = tmp_path / "data" / "bgproc.db"
    register(db)
    body = tmp_path / "body"
    request = schedule(db, "Body", "-p", f"path={body}", "-p", "seconds=5")
    with daemon(db, "--kill-after", "1", "--no-spare", env={"BGPROC_TEST_DAEMON": INTERVALS}) as proc:
        wait_until(lambda: notes(body), 30)
        # Another program holds the write lock for longer than the worker's lease: the
        # daemon cannot write its heartbeat, but its loop still runs and renews.
        lock = sqlite3.connect(db, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        try:
            wait_until(lambda: "database busy" in proc.output(), 10)
            time.sleep(3.5)  # past the lease of 2.625 s: it must not have run out
            assert [n[0] for n in notes(body)] == ["start"]
        finally:
            lock.rollback()
            lock.close()
        run = wait_until(lambda: run_of(db, request, status="success"), 30)
        proc.assert_healthy()
    assert [n[0] for n in notes(body)] == ["start", "end"]
    log = query(db, "SELECT head FROM run_logs WHERE run_id = ?", run["id"])[0]["head"]
    assert LEASE_LINE not in log


class CutOff:
    """A store cut off from its server while ``cut`` is set: every operation of the
    store interface fails with an I/O error, as psycopg's calls do once the link is
    down (after the connection's user timeout; here at once)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.cut = False

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        if name.startswith("_") or not callable(getattr(Store, name, None)):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.cut:
                raise StoreIOError("the test cut this daemon off from its server")
            return value(*args, **kwargs)

        return call


@pytest.mark.daemon
def test_daemon_cut_off_from_postgres_stops_its_runs_before_it_can_be_declared_dead(
    pg_db: str, tmp_path: Path
) -> None:
    register(pg_db)
    body, child_file = tmp_path / "body", tmp_path / "child"
    request = schedule(pg_db, "Body", "--now", "-p", f"path={body}", "-p", f"child_pid_file={child_file}")
    expiry = 4.0
    config = DaemonConfig(heartbeat_s=0.25, heartbeat_expiry_s=expiry, kill_after_s=1, spare=False)
    assert config.worker_lease() == (2.625, 0.875)
    store = CutOff(open_store(pg_db))
    log = io.StringIO()
    # Another host's daemon, as far as the judge below can tell (its pid is not checked).
    daemon = Daemon(store, config, reporter=Reporter(stream=log, live=False), hostname="host-a")  # type: ignore[arg-type]
    failure: list[BaseException] = []

    def run() -> None:
        try:
            daemon.run()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    judge = open_store(pg_db)
    try:
        wait_until(lambda: notes(body) or failure, 30)
        started = run_of(pg_db, request)
        assert started is not None and started["status"] == "running"
        worker, child = started["pid"], int(child_file.read_text())
        store.cut = True
        # The body is stopped, and everything of its run with it, while the daemon's
        # row has been silent for less than the expiry by the database's clock: no
        # daemon could have declared it dead yet, and none has.
        wait_until(lambda: len(notes(body)) >= 2, 20)
        wait_until(lambda: not pid_alive(worker) and not pid_alive(child), 10)
        (row,) = query(
            pg_db,
            "SELECT EXTRACT(EPOCH FROM clock_timestamp() - heartbeat_at)::float AS silent, "
            "EXTRACT(EPOCH FROM heartbeat_at)::float AS beaten FROM daemons WHERE id = ?",
            started["daemon_id"],
        )
        assert row["silent"] < expiry, f"the run outlived its daemon's last heartbeat by {row['silent']:.2f}s"
        assert run_of(pg_db, request, status="running") is not None
        assert notes(body)[1][0] == "cancelled" and float(notes(body)[1][3]) < row["beaten"] + expiry
        assert log.getvalue().count("its workers' leases are no longer renewed") == 1
        # Another host declares it dead once its row is silent for the expiry.
        assert wait_until(lambda: settle(judge, utcnow(), expiry), 20) == [started["id"]]
        interrupted = run_of(pg_db, request, status="interrupted")
        assert interrupted is not None and "stopped heartbeating" in interrupted["detail"]
        # The server is reachable again: the daemon finds itself declared dead, says
        # that the run it stopped ended after that record, and carries on anew.
        store.cut = False
        wait_until(lambda: "continues as" in log.getvalue() or failure, 30)
        head = wait_until(
            lambda: (rows := query(pg_db, "SELECT head FROM run_logs WHERE run_id = ?", started["id"]))
            and "after it had been recorded as ended" in (rows[0]["head"] or "") and rows[0]["head"],
            30,
        )
        assert LEASE_LINE in head
    finally:
        store.cut = False
        daemon.request_stop("the test is done")
        thread.join(timeout=60)
        judge.close()
        store.close()
    assert not failure, f"the daemon stopped: {failure[0]!r}"
    assert [n[0] for n in notes(body)] == ["start", "cancelled"]
    assert log.getvalue().count("its workers' leases are no longer renewed") == 1
