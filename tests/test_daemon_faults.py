"""A task that raises, exits, segfaults, hangs, ignores SIGTERM or floods its
output cannot harm the daemon: each outcome is recorded, and the same daemon
keeps working. Real daemon, real workers, real database file."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import STORES, run_bgproc, target_on, wait_until
from daemon_tasks.helpers import (
    DaemonProcess,
    daemon,
    monitor_run,
    pid_alive,
    register,
    run_of,
    schedule,
    wait_finished,
)

# Every fault in both ways a run starts: forked by the fork server, and a fresh interpreter.
pytestmark = [pytest.mark.daemon, pytest.mark.usefixtures("isolation")]


@pytest.fixture(autouse=True, scope="module")
def _no_daemon_left_behind() -> Iterator[None]:
    yield
    DaemonProcess.kill_leftovers()

LOG_LIMIT = 1024 * 1024  # the daemon's default


class Faults:
    def __init__(self, db: Path | str, proc: DaemonProcess, requests: dict[str, int], tmp: Path) -> None:
        self.db, self.proc, self.requests, self.tmp = db, proc, requests, tmp

    def finished(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        run = wait_finished(self.db, self.requests[name], timeout)
        return monitor_run(self.db, run["id"])


@pytest.fixture(scope="module", params=STORES)
def faults(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """One daemon, every fault side by side: on each store (what is recorded differs)."""
    tmp = tmp_path_factory.mktemp("faults")
    with target_on(request.param, tmp) as db:
        yield from _faults(db, tmp)


def _faults(db: Path | str, tmp: Path) -> Iterator[Faults]:
    register(db)
    plans = {
        "raise": ["Raise", "-p", "message=kaboom-42"],
        "raise_cancelled": ["RaiseCancelled"],
        "exit": ["Exit", "-p", "code=3"],
        "exit0": ["Exit", "-p", "code=0"],
        "interleave": ["Interleave"],
        "segfault": ["Segfault"],
        "hang": ["Hang", "--timeout", "1s", "-p", f"child_pid_file={tmp / 'hang.child'}"],
        "ignore": ["IgnoreTerm", "--timeout", "1s", "-p", f"child_pid_file={tmp / 'ignore.child'}"],
        "flood": ["Flood", "-p", "megabytes=50"],
        "long": ["Sleep", "-p", "seconds=600"],  # running while the monitor looks; stopped at the end
        "garbage": ["Garbage"],
        "small": ["Memory"],
        "big": ["Memory", "-p", "megabytes=80"],
        "straggler": ["Straggler", "-p", f"child_pid_file={tmp / 'straggler.child'}"],
        # Before their fix these hung until their timeout.
        "big_progress": ["BigProgress", "--timeout", "30s"],
        "garbage_more": ["GarbageThenMore", "--timeout", "30s"],
        "garbage_peak": ["GarbageAndPeak"],
        "exit256": ["SysExit", "-p", "code=256"],
        "exit255": ["SysExit", "-p", "code=255"],
    }
    with daemon(db, "--workers", "8", "--kill-after", "0.5", "--grace", "1") as proc:
        # All at once: the faults happen side by side in one daemon.
        ids = {name: schedule(db, *args) for name, args in plans.items()}
        yield Faults(db, proc, ids, tmp)
        proc.assert_healthy()


def test_monitor_answers_while_runs_go(faults: Faults) -> None:
    wait_until(lambda: (r := run_of(faults.db, faults.requests["long"])) and r["pid"], 30)
    result = run_bgproc(faults.db, "monitor", "--json", "--status", "running", timeout=30)
    assert result.code == 0, result.err
    running = {r["request_id"]: r for r in result.json()}
    assert running[faults.requests["long"]]["status"] == "running"
    assert "sleeping 600" in running[faults.requests["long"]]["log"]


def test_exception_is_error_with_traceback(faults: Faults) -> None:
    run = faults.finished("raise")
    assert run["status"] == "error"
    assert run["exit_code"] == 1 and run["signal"] is None
    assert "about to fail" in run["log"]
    assert "Traceback (most recent call last)" in run["log"]
    assert "RuntimeError: kaboom-42" in run["log"]
    assert run["pid"] and run["started_at"] and run["ended_at"]
    assert run["cpu_s"] > 0
    assert run["max_rss_kb"] > 0


def test_a_task_raising_cancelled_unasked_is_an_error_that_says_so(faults: Faults) -> None:
    # Nothing stopped it: not "the daemon stopped run N ()", not a SIGTERM's exit code.
    run = faults.finished("raise_cancelled")
    assert run["status"] == "error"
    assert run["exit_code"] == 1 and run["signal"] is None
    assert "giving up by myself" in run["log"]
    assert "the task raised bgproc.Cancelled itself, but nothing asked it to stop" in run["log"]
    assert "daemon stopped" not in run["log"] and "()" not in run["log"]
    assert "raise Cancelled" in run["log"]  # the traceback shows where


def test_peak_memory_is_the_runs_own(faults: Faults) -> None:
    # Not ru_maxrss: Linux carries the daemon's size over fork and exec into it.
    for name, extra in (("small", 0), ("big", 80 * 1024)):
        run = faults.finished(name)
        assert run["status"] == "success"
        reported = int(run["log"].split("peak ")[1].split()[0])
        assert reported - 2048 <= run["max_rss_kb"] <= reported + 2048
        assert run["max_rss_kb"] >= extra


def test_exit_code_is_recorded(faults: Faults) -> None:
    run = faults.finished("exit")
    assert run["status"] == "error"
    assert run["exit_code"] == 3 and run["signal"] is None
    assert "exit code 3" in run["detail"]
    assert "exiting with 3" in run["log"]


def test_exit_zero_from_inside_run_is_not_a_success(faults: Faults) -> None:
    # os._exit(0) mid-task: the process says 0, but run() never came back.
    run = faults.finished("exit0")
    assert run["status"] == "error" and run["exit_code"] == 0
    assert "exited with code 0 before run() returned" in run["detail"]


def test_prints_and_log_records_keep_their_order(faults: Faults) -> None:
    run = faults.finished("interleave")
    assert run["status"] == "success"
    texts = [line.split(" ", 1)[1] for line in run["log"].splitlines() if line[:1].isdigit()]
    expected = [t for i in range(200) for t in (f"print {i}", f"[INFO] record {i}", f"error {i}")]
    assert texts == [*expected, "[WARNING] while stderr is quiet"]


def test_exit_codes_the_system_would_truncate_are_errors(faults: Faults) -> None:
    # The system keeps the low 8 bits: sys.exit(256) must not read as success.
    run = faults.finished("exit256")
    assert run["status"] == "error" and run["exit_code"] == 1
    assert "exit codes are 0 to 255" in run["log"]
    run = faults.finished("exit255")
    assert run["status"] == "error" and run["exit_code"] == 255


def test_a_forked_child_of_the_task_sends_no_events() -> None:
    # Its writes could split the worker's own "ended" event on the pipe.
    import os

    import msgpack

    from bgproc.child import EventSink

    read_fd, write_fd = os.pipe()
    sink = EventSink(write_fd)
    child = os.fork()
    if child == 0:
        sink.send({"t": "progress", "done": 1})
        os._exit(0)
    os.waitpid(child, 0)
    sink.send({"t": "ended"})
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        assert list(msgpack.Unpacker(pipe, raw=False)) == [{"t": "ended"}]


def test_exit_code_mapping() -> None:
    from bgproc.child import exit_code
    from bgproc.daemon.protocol import EXIT_ERROR

    assert [exit_code(v) for v in (None, 0, 3, 255, True)] == [0, 0, 3, 255, 1]
    assert [exit_code(v) for v in (256, -1, 512, "message", 2.0)] == [EXIT_ERROR] * 5


def test_segfault_is_error_with_signal(faults: Faults) -> None:
    run = faults.finished("segfault")
    assert run["status"] == "error"
    assert run["signal"] == signal.SIGSEGV and run["exit_code"] is None
    assert "SIGSEGV" in run["detail"]
    assert "crashing" in run["log"]


def _duration(run: dict[str, Any]) -> float:
    return (datetime.fromisoformat(run["ended_at"]) - datetime.fromisoformat(run["started_at"])).total_seconds()


def test_hang_past_timeout_is_stopped(faults: Faults) -> None:
    # Proof that the task started (its run() writes the file), from when its timeout counts.
    wait_until((faults.tmp / "hang.child").exists, 60)
    run = faults.finished("hang")
    assert run["status"] == "timeout"
    assert "passed its timeout of 1s" in run["detail"]
    assert "hanging" in run["log"]
    assert 0.9 <= _duration(run) < 20  # stopped at its timeout, not left to hang
    assert not pid_alive(run["pid"])
    # The whole process group goes: the task's own child too.
    child = int((faults.tmp / "hang.child").read_text())
    wait_until(lambda: not pid_alive(child), 30)


def test_sigterm_ignored_is_killed_after_grace(faults: Faults) -> None:
    wait_until((faults.tmp / "ignore.child").exists, 60)  # proof that the task started
    run = faults.finished("ignore")
    assert run["status"] == "timeout"
    assert run["signal"] == signal.SIGKILL
    assert "SIGKILL" in run["detail"]
    assert _duration(run) >= 1.0 + 0.5 - 0.1  # the timeout, then the grace after SIGTERM
    assert "ignoring SIGTERM" in run["log"]
    child = int((faults.tmp / "ignore.child").read_text())
    wait_until(lambda: not pid_alive(child), 30)


def test_flood_is_bounded(faults: Faults) -> None:
    run = faults.finished("flood", timeout=40)
    assert run["status"] == "success", run["detail"]
    log = run["log"]
    assert len(log.encode()) <= LOG_LIMIT + 200
    assert log.splitlines()[0].endswith(" FIRST LINE")
    assert log.splitlines()[-1].endswith(" LAST LINE")
    dropped = run["log_dropped_bytes"]
    assert dropped > 49 * 1024 * 1024
    assert f"[... {dropped} bytes of log dropped ...]" in log
    # Whole lines on both sides of the marker.
    head, _, tail = log.partition("[...")
    assert head.endswith("\n")
    assert all(line[:12].count(":") == 2 for line in tail.splitlines()[1:])


def test_what_a_run_leaves_behind_is_stopped(faults: Faults) -> None:
    run = faults.finished("straggler")
    assert run["status"] == "success"
    child = int((faults.tmp / "straggler.child").read_text())
    wait_until(lambda: not pid_alive(child), 30)


def test_garbage_on_the_events_pipe_harms_only_that_pipe(faults: Faults) -> None:
    run = faults.finished("garbage")
    assert run["status"] == "success"
    log = run["log"]
    assert "before\\x00after" in log and "\x00" not in log
    assert "still here" in log
    assert "characters cut" in log  # the 5 MB record, cut by the worker
    assert "events from the run ignored" in log
    assert len(log.encode()) <= LOG_LIMIT + 200
    listed = run_bgproc(faults.db, "monitor", "--json", "--request", str(faults.requests["garbage"]))
    assert listed.json()[0]["log"]  # the list's excerpt is not cut short by the NUL


def test_a_run_whose_events_were_garbled_reports_only_its_own_peak_memory(faults: Faults) -> None:
    # Its ended event (with its peak) is lost: the peak is what was sampled of the
    # worker itself, or none; never ru_maxrss, which holds the daemon's own peak.
    run = faults.finished("garbage_peak")
    assert run["status"] == "success", run["detail"]
    own = int(run["log"].split("peak ")[1].split()[0])
    assert run["max_rss_kb"] is None or 0 < run["max_rss_kb"] <= own + 2048, (run["max_rss_kb"], own)


def test_huge_progress_message_is_cut_not_a_hang(faults: Faults) -> None:
    run = faults.finished("big_progress", timeout=40)
    assert run["status"] == "success", run["detail"]
    message = run["progress"]["message"]
    assert message.startswith("xxx") and message.endswith("characters cut)")
    assert len(message) < 300 * 1024


def test_events_after_garbage_do_not_block_the_run(faults: Faults) -> None:
    # Once the daemon gives up on the events pipe it closes it: the worker's writes
    # fail (and are ignored) instead of blocking on a full pipe.
    run = faults.finished("garbage_more", timeout=40)
    assert run["status"] == "success", run["detail"]
    assert "events from the run ignored" in run["log"] and "all sent" in run["log"]


def test_daemon_keeps_working_after_the_faults(faults: Faults) -> None:
    for name, request in faults.requests.items():
        if name != "long":
            wait_finished(faults.db, request, 40)
    faults.proc.assert_healthy()
    request = schedule(faults.db, "Noop")
    run = monitor_run(faults.db, wait_finished(faults.db, request)["id"])
    assert run["status"] == "success"
    assert "noop done" in run["log"]
    faults.proc.assert_healthy()
