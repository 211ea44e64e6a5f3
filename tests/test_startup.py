"""A run's timeout counts from its task's start (the worker's ``started`` event, sent
just before ``run()``); what comes before it (the interpreter, imports, loading the
task) has the daemon's start-up limit. The workers are real; their task module's
import waits for a gate file the test opens, so nothing races start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
import test_daemon_tick as tick
from conftest import query, wait_until
from daemon_tasks.helpers import DaemonProcess, daemon, schedule, wait_finished
from daemon_tasks.helpers import cli as in_process_cli
from daemon_tasks.slow_start import GATE_ENV
from test_daemon_tick import T0, Made, forkserver_ready, make, new_request, runs, wait_reaped

from bgproc.clock import FakeClock
from bgproc.daemon import Daemon
from bgproc.daemon.active import ActiveRun
from bgproc.daemon.forking import Forked
from bgproc.store.sqlite import SQLiteStore as Store

# Every guarantee in both ways a run starts: forked by the fork server, and a fresh interpreter.
pytestmark = pytest.mark.usefixtures("isolation")

SLOW_FILE = str(Path(__file__).resolve().parent / "daemon_tasks" / "slow_start.py")

# The fake-clock daemon tests' fixtures: a database with the test tasks, daemons shut down after.
template, store, made = tick.template, tick.store, tick.made


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def gate(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The gate of ``daemon_tasks.slow_start``'s import in this test's workers (closed)."""
    code, _, err = in_process_cli(store.path, "register", SLOW_FILE)
    assert code == 0, err
    gate = tmp_path / "gate"
    monkeypatch.setenv(GATE_ENV, str(gate))
    return gate


def importing(gate: Path) -> bool:
    """Proof that a worker's import of the slow module has begun."""
    return Path(f"{gate}.importing").exists()


def slow_run(made: Made, store: Store, clock: FakeClock, gate: Path, **config: float) -> tuple[Daemon, int, ActiveRun]:
    request = new_request(store, T0, "SlowImport", now=True)
    with store.immediate():
        store.conn.execute("UPDATE requests SET timeout_s = 1 WHERE id = ?", (request,))
    daemon = make(made, store, clock, **config)
    forkserver_ready(daemon)
    assert len(daemon.tick(clock.now())) == 1
    (run,) = daemon.active.values()
    assert isinstance(run.proc, Forked) == (daemon.workers.forkserver is not None)  # the mode under test
    wait_until(lambda: importing(gate), 60)
    return daemon, request, run


@pytest.mark.daemon
def test_a_slow_import_does_not_eat_the_runs_timeout(made: Made, store: Store, clock: FakeClock, gate: Path) -> None:
    daemon, request, run = slow_run(made, store, clock, gate)
    clock.advance(30)  # half a minute into its import: past its timeout of 1 s
    daemon.supervisor.enforce_deadlines(clock.monotonic())
    assert run.stop_reason is None
    gate.touch()
    wait_until(lambda: daemon._wait(0.05) or run.started_mono is not None, 60)
    # The timeout counts from the task's start, on the daemon's clock.
    assert run.started_mono == clock.monotonic() and run.deadline == run.started_mono + 1.0
    wait_reaped(daemon)
    (done,) = runs(store, request)
    assert done["status"] == "success", done["detail"]
    assert done["started_at"] == done["planned_at"]  # still the time it was claimed


@pytest.mark.daemon
def test_a_run_that_does_not_start_within_the_startup_limit_is_stopped_as_timed_out(
    made: Made, store: Store, clock: FakeClock, gate: Path
) -> None:
    daemon, request, run = slow_run(made, store, clock, gate, startup_timeout_s=20.0)
    clock.advance(19.5)
    daemon.supervisor.enforce_deadlines(clock.monotonic())
    assert run.stop_reason is None
    clock.advance(1)
    daemon.supervisor.enforce_deadlines(clock.monotonic())
    assert run.stop_reason == "timeout"
    wait_reaped(daemon)
    (done,) = runs(store, request)
    assert done["status"] == "timeout"
    assert done["detail"] == "did not start within the start-up limit of 20s; stopped (ended on SIGTERM)"
    log = query(store.path, "SELECT head FROM run_logs WHERE run_id = ?", done["id"])[0]["head"]
    assert "[bgproc] did not start within the start-up limit of 20s: SIGTERM sent" in log
    assert "running after the import" not in log


@pytest.mark.daemon
def test_daemon_startup_timeout_option(tmp_path: Path) -> None:
    db = tmp_path / "data" / "bgproc.db"
    code, _, err = in_process_cli(db, "register", SLOW_FILE)
    assert code == 0, err
    gate = tmp_path / "gate"  # never opened: the import waits
    request = schedule(db, "SlowImport")
    try:
        with daemon(db, "--startup-timeout", "1", "--kill-after", "1", env={GATE_ENV: str(gate)}) as proc:
            run = wait_finished(db, request, timeout=60)
            proc.assert_healthy()
    finally:
        DaemonProcess.kill_leftovers()
    assert importing(gate)
    assert run["status"] == "timeout"
    assert run["detail"].startswith("did not start within the start-up limit of 1s; stopped")


def test_startup_timeout_below_a_second_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "data" / "bgproc.db"
    for value in ("0.5", "500ms", "0", "-1m"):
        code, out, err = in_process_cli(db, "daemon", "--startup-timeout", value)
        assert code != 0 and out == ""
        assert err.startswith("bgproc: error: --startup-timeout ") and err.count("\n") == 1, err
    assert not db.exists()
