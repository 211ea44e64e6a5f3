"""The daemon end to end: real `bgproc` subprocesses, real workers, a real
database file per test. Every wait polls with a deadline."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import ROOT, bgproc_env, is_url, query, run_bgproc, wait_until
from daemon_tasks.helpers import (
    DaemonProcess,
    children,
    cli,
    daemon,
    monitor_run,
    pid_alive,
    register,
    run_of,
    runs,
    schedule,
    wait_finished,
)

from bgproc import start_new
from bgproc.store import open_store
from bgproc.timing import Timing

pytestmark = [pytest.mark.daemon, pytest.mark.both_stores]


@pytest.fixture(autouse=True)
def _no_daemon_left_behind() -> Iterator[None]:
    yield
    DaemonProcess.kill_leftovers()  # even when the test failed half-way


def _request(db: Path, request_id: int) -> dict:
    return query(db, "SELECT * FROM requests WHERE id = ?", request_id)[0]


def _head(db: Path, run_id: int) -> str:
    return query(db, "SELECT head FROM run_logs WHERE run_id = ?", run_id)[0]["head"]


def _t(text: str | datetime) -> datetime:
    """An instant, as JSON or a SQLite row gives it (text), or a PostgreSQL row."""
    return text if isinstance(text, datetime) else datetime.fromisoformat(text.replace("Z", "+00:00"))


def _timing(db: Path, request_id: int) -> Timing:
    with open_store(db) as store:
        return store.get_request(request_id).timing


def test_sample_scenario(db: Path, tmp_path: Path) -> None:
    # The user's path, every step a real `bgproc` process. (On a server the application
    # database is a file of its own, as BGPROC_APP_DB says.)
    app, env = (tmp_path / "app.db", {"BGPROC_APP_DB": str(tmp_path / "app.db")}) if is_url(db) else (db, {})
    assert run_bgproc(db, "register", "sample_tasks.activities").code == 0
    scheduled = run_bgproc(
        db, "schedule", "BackgroundActivityCreator", "-p", "title=Activity created by background task",
        "-p", "delay_s=0.2",
    )
    assert scheduled.code == 0, scheduled.err
    request = int(scheduled.out)
    done = run_bgproc(db, "daemon", "--once", timeout=30, **env)
    assert done.code == 0, done.err
    listed = run_bgproc(db, "monitor", "--json")
    assert listed.code == 0, listed.err
    (run,) = listed.json()
    assert run["request_id"] == request and run["task"] == "BackgroundActivityCreator"
    assert run["status"] == "success" and run["reason"] == "now" and run["exit_code"] == 0
    assert run["pid"] and run["pid"] != os.getpid()
    assert _t(run["ended_at"]) > _t(run["started_at"]) >= _t(run["planned_at"])
    assert run["duration_s"] >= 0.2
    assert run["cpu_s"] > 0 and run["max_rss_kb"] > 0
    assert "waiting 0.2 s" in run["log"] and "created activity" in run["log"]
    (row,) = query(app, "SELECT * FROM activities")
    assert row["title"] == "Activity created by background task"
    assert row["category"] == "To do"
    assert _request(db, request)["status"] == "complete"


def test_workers_bound_concurrency_and_once_waits(db: Path) -> None:
    register(db)
    for _ in range(3):
        schedule(db, "Sleep", "-p", "seconds=0.5")
    done = run_bgproc(db, "daemon", "--once", "--workers", "2", timeout=30)
    assert done.code == 0, done.err
    rows = runs(db)
    assert [r["status"] for r in rows] == ["success"] * 3
    spans = [(_t(r["started_at"]), _t(r["ended_at"])) for r in rows]
    most = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
    assert most == 2


def test_recurring_request_runs_then_completes(db: Path) -> None:
    register(db)
    with daemon(db, "--workers", "2") as proc:
        request = schedule(db, "Sleep", "-p", "seconds=0.05", "--every", "1s", "--finish", "+3s")
        wait_until(lambda: _request(db, request)["status"] == "complete", 30)
        wait_until(lambda: all(r["status"] != "running" for r in runs(db, request)), 30)
        proc.assert_healthy()
    # How many slots ran, were skipped or were coalesced depends on the machine's
    # load; what cannot vary: one row per slot, on the request's grid, then complete.
    # (That the daemon wakes exactly at each fire is tested with a fake clock.)
    rows = runs(db, request)
    assert {r["status"] for r in rows} <= {"success", "skipped", "missed"}
    assert any(r["status"] == "success" for r in rows)
    slots = [r for r in rows if r["status"] != "missed"]
    timing = _timing(db, request)
    first = timing.first_fire()
    assert first is not None
    fires = [first, *timing.fires(first, 10)]
    assert len(fires) <= 5  # --finish +3s
    planned = [_t(r["planned_at"]) for r in slots]
    assert planned[0] == fires[0] and planned == sorted(set(planned)) and set(planned) <= set(fires)
    assert {r["reason"] for r in slots} <= {"schedule", "catch-up"}
    for r in rows:
        if r["status"] == "success":
            assert _t(r["started_at"]) >= _t(r["planned_at"])
        if r["status"] == "missed":  # coalesced slots are real slots, after the run's own
            assert _t(r["missed_until"]) in fires and r["missed_count"] >= 1
    assert _request(db, request)["next_run_at"] is None


def test_unschedule_and_reschedule_while_running(db: Path) -> None:
    register(db)
    with daemon(db) as proc:
        request = schedule(db, "Noop", "--every", "1s")
        wait_until(lambda: len([r for r in runs(db, request) if r["status"] == "success"]) >= 1, 30)
        assert run_bgproc(db, "unschedule", str(request)).code == 0
        wait_until(lambda: all(r["status"] != "running" for r in runs(db, request)), 30)
        count = len(runs(db, request))
        # A request due after the next slot would have been: once it has run, the
        # daemon has looked at what was due then, and the unscheduled one was not.
        marker = schedule(db, "Noop", "--at", "+2s")
        assert wait_finished(db, marker)["status"] == "success"
        assert len(runs(db, request)) == count
        assert _request(db, request)["status"] == "unscheduled"
        back = run_bgproc(db, "reschedule", str(request))
        assert back.code == 0, back.err
        wait_until(lambda: len(runs(db, request)) > count, 30)
        wait_until(lambda: runs(db, request)[-1]["status"] == "success", 30)
        assert _request(db, request)["status"] == "scheduled"
        assert cli(db, "unschedule", str(request))[0] == 0
        wait_until(lambda: all(r["status"] != "running" for r in runs(db, request)), 30)
        proc.assert_healthy()
    # On a loaded machine a slot may come while a run is slow to end (skipped), or
    # two fall due before the daemon gets to them (coalesced: missed); none fails.
    assert {r["status"] for r in runs(db, request)} <= {"success", "skipped", "missed"}, runs(db, request)


def test_two_daemons_claim_each_request_once(db: Path) -> None:
    register(db)
    first = DaemonProcess(db, "--workers", "3")
    second = DaemonProcess(db, "--workers", "3")
    try:
        first.wait_started()
        second.wait_started()
        # Each request wakes both daemons, which race to claim it. (The Python API
        # makes the same requests as `bgproc schedule Noop --now`, 100x faster.)
        ids = [start_new("Noop", db=db) for _ in range(100)]
        wait_until(
            lambda: query(db, "SELECT COUNT(*) AS n FROM runs WHERE status != 'running'")[0]["n"] >= 100,
            60,
        )
        first.assert_healthy()
        second.assert_healthy()
    finally:
        first.stop()
        second.stop()
    rows = runs(db)
    assert len(rows) == 100
    assert sorted(r["request_id"] for r in rows) == sorted(ids)
    assert {r["status"] for r in rows} == {"success"}
    assert {r["status"] for r in query(db, "SELECT status FROM requests")} == {"complete"}
    # (Which daemon claims which request is a race; either may win them all.)
    assert {r["daemon_id"] for r in rows} <= {d["id"] for d in query(db, "SELECT id FROM daemons")}


def test_daemon_killed_mid_run_then_restarted(db: Path, tmp_path: Path) -> None:
    register(db)
    child_file = tmp_path / "child.pid"
    first = DaemonProcess(db)
    first.wait_started()
    request = schedule(db, "Hang", "-p", f"child_pid_file={child_file}")
    run = wait_until(lambda: (r := run_of(db, request)) and r["pid"] and child_file.exists() and r, 30)
    worker, child = run["pid"], int(child_file.read_text())
    assert pid_alive(worker) and pid_alive(child)
    spares = wait_until(lambda: [p for p in children(first.pid) if p != worker], 30)
    killed_at = datetime.now(UTC)
    first.kill()  # SIGKILL: no chance to clean up
    # The lifeline: the orphaned worker and its child stop on their own, and so
    # does the spare worker that waited for a job.
    wait_until(lambda: not pid_alive(worker) and not pid_alive(child), 30)
    wait_until(lambda: not any(pid_alive(p) for p in spares), 30)
    assert run_of(db, request)["status"] == "running"  # nobody knows yet
    # With no daemon running, the monitor (like cancel) sees that the daemon is gone.
    shown = run_bgproc(db, "monitor", "--json", "--request", str(request))
    (interrupted,) = shown.json()
    assert interrupted["status"] == "interrupted" and "not re-run" in interrupted["detail"]
    assert _t(interrupted["ended_at"]) >= killed_at and "its last heartbeat" in interrupted["detail"]
    refused = run_bgproc(db, "cancel", str(interrupted["id"]))
    assert refused.code != 0 and "is interrupted, not running" in refused.err
    with daemon(db) as second:
        # The daemon still works, and the interrupted request is not run again.
        after = schedule(db, "Noop")
        assert wait_finished(db, after)["status"] == "success"
        second.assert_healthy()
    assert len(runs(db, request)) == 1
    assert _request(db, request)["status"] == "complete"


def test_live_daemon_marks_a_dead_daemons_runs_interrupted(db: Path) -> None:
    register(db)
    first = DaemonProcess(db, "--workers", "1")
    second = DaemonProcess(db, "--workers", "1")
    try:
        first.wait_started()
        second.wait_started()
        busy = schedule(db, "Sleep", "-p", "seconds=30")
        wait_until(lambda: (r := run_of(db, busy)) and r["pid"], 30)
        request = schedule(db, "Hang")  # one worker each: the other daemon takes it
        run = wait_until(lambda: (r := run_of(db, request)) and r["pid"] and r, 30)
        doomed, survivor = (first, second) if f":{first.pid}:" in run["daemon_id"] else (second, first)
        assert f":{doomed.pid}:" in run["daemon_id"]
        doomed.kill()
        # The survivor notices at its next heartbeat (every 5 s) and does not re-run it.
        interrupted = wait_until(lambda: run_of(db, request, status="interrupted"), 30)
        assert "is no longer running" in interrupted["detail"]
        assert not pid_alive(run["pid"])
        survivor.assert_healthy()
        assert run_of(db, busy)["status"] == "running"
    finally:
        for proc in (first, second):
            if proc.proc.poll() is None:
                proc.proc.kill()
                proc.wait()
    assert len(runs(db, request)) == 1


def test_sigterm_waits_within_grace_then_interrupts(db: Path) -> None:
    register(db)
    grace = 3.0
    proc = DaemonProcess(db, "--grace", str(grace), "--kill-after", "0.5", "--workers", "2")
    proc.wait_started()
    short = schedule(db, "Sleep", "-p", "seconds=0.3")
    long = schedule(db, "Sleep", "-p", "seconds=600")
    wait_until(lambda: all((r := run_of(db, q)) and r["pid"] for q in (short, long)), 30)
    sent = datetime.now().astimezone()
    proc.proc.send_signal(signal.SIGTERM)
    later = schedule(db, "Noop")  # a stopping daemon claims nothing new
    # It stops at the end of the grace, not when the long run would have ended.
    assert proc.wait(timeout=120) == 0, proc.output()
    assert run_of(db, short)["status"] == "success"
    stopped = monitor_run(db, run_of(db, long)["id"])
    assert stopped["status"] == "interrupted"
    assert "daemon is stopping" in stopped["log"]
    assert (_t(stopped["ended_at"]) - sent).total_seconds() >= grace - 0.05  # not before the grace
    assert runs(db, later) == []
    assert _request(db, later)["status"] == "scheduled"
    (row,) = query(db, "SELECT stopped_at FROM daemons")
    assert row["stopped_at"] is not None


def test_overlap_is_skipped_unless_allowed(db: Path) -> None:
    register(db)
    with daemon(db, "--workers", "6") as proc:
        plain = schedule(db, "Sleep", "-p", "seconds=1.6", "--every", "1s")
        overlap = schedule(db, "Sleep", "-p", "seconds=1.6", "--every", "1s", "--allow-overlap")
        wait_until(lambda: len(runs(db, plain, status="skipped")) >= 1, 30)
        wait_until(lambda: len(runs(db, overlap, status="running")) >= 2, 30)
        for request in (plain, overlap):
            assert cli(db, "unschedule", str(request))[0] == 0
        proc.assert_healthy()
    skipped = runs(db, plain, status="skipped")
    assert all("previous run was still going" in r["detail"] for r in skipped)
    assert all(r["started_at"] is None and r["planned_at"] for r in skipped)
    assert len([r for r in runs(db, plain) if r["status"] == "running"]) == 0
    assert runs(db, overlap, status="skipped") == []


def test_missed_fires_coalesce_into_one_catch_up(db: Path) -> None:
    register(db)
    recurring = schedule(db, "Noop", "--every", "1s")
    once = schedule(db, "Noop", "--at", "+1s")
    # No daemon: the recurring request falls due and misses a few slots.
    first_fire = _t(_request(db, recurring)["next_run_at"])
    wait_until(lambda: datetime.now().astimezone() > first_fire + timedelta(seconds=2.5), 30)
    done = run_bgproc(db, "daemon", "--once", timeout=30)
    assert done.code == 0, done.err
    rows = runs(db, recurring)
    assert [r["status"] for r in rows] == ["success", "missed"]
    run, missed = rows
    assert run["reason"] == "catch-up"
    assert missed["missed_count"] >= 2
    assert f"coalesced into run {run['id']}" in missed["detail"]
    shown = monitor_run(db, missed["id"])
    assert shown["status"] == "missed" and shown["missed_count"] == missed["missed_count"]
    request = _request(db, recurring)
    assert request["status"] == "scheduled"
    assert _t(request["next_run_at"]) > _t(run["started_at"])  # continues with its first future fire
    (one,) = runs(db, once)
    assert one["status"] == "success" and one["reason"] == "schedule"
    assert _request(db, once)["status"] == "complete"


def test_progress_and_log_while_running_then_cancel(db: Path) -> None:
    register(db)
    with daemon(db, "--kill-after", "0.5") as proc:
        request = schedule(db, "ProgressThenWait", "-p", "steps=3")
        run = wait_until(
            lambda: (r := run_of(db, request)) and r["progress_done"] == 3 and r, 10
        )
        # Output without its newline yet shows too, after a moment.
        wait_until(lambda: "waiting for a newline" in _head(db, run["id"]), 30)
        shown = monitor_run(db, run["id"])
        assert shown["status"] == "running"
        assert shown["progress"] == {"done": 3, "total": 4, "message": "step 3"}
        assert "[INFO] progress reported; holding" in shown["log"]
        assert shown["log"].splitlines()[-2].endswith(" holding")
        assert shown["log"].splitlines()[-1].endswith(" waiting for a newline")
        assert shown["duration_s"] > 0 and shown["ended_at"] is None
        cancelled = run_bgproc(db, "cancel", str(run["id"]))
        assert cancelled.code == 0, cancelled.err
        wait_until(lambda: run_of(db, request)["status"] == "cancelled", 30)
        shown = monitor_run(db, run["id"])
        assert "cancel" in shown["detail"]
        assert not pid_alive(shown["pid"])
        proc.assert_healthy()


def test_large_parameters_reach_the_worker(db: Path, tmp_path: Path) -> None:
    import hashlib
    import json

    register(db)
    text = "0123456789abcdef" * 60_000  # 960 kB: many times the pipe's buffer
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"text": text}))
    with daemon(db) as proc:
        request = schedule(db, "Echo", "--params-file", str(params))
        quick = schedule(db, "Noop")
        run = wait_finished(db, request)
        assert run["status"] == "success", run["detail"]
        assert wait_finished(db, quick)["status"] == "success"
        proc.assert_healthy()
    log = query(db, "SELECT head FROM run_logs WHERE run_id = ?", run["id"])[0]["head"]
    assert f"got {len(text)} chars, sha256 {hashlib.sha256(text.encode()).hexdigest()}" in log


@pytest.mark.sqlite_only  # the FIFO beside the file
def test_without_the_wake_up_fifo_the_daemon_watches_the_database(db: Path) -> None:
    register(db)
    wake = db.with_name(db.name + ".wake")
    wake.mkdir()
    wake.chmod(0o777)  # others could write: not trusted
    with daemon(db) as proc:
        assert "no wake-up FIFO" in proc.output()
        request = schedule(db, "Noop")
        # Claimed at the next poll of the database (that it polls every second is
        # tested with a fake clock).
        run = wait_finished(db, request, timeout=30)
        assert run["status"] == "success"
        proc.assert_healthy()


@pytest.mark.usefixtures("spawn_mode")  # with the fork server, no spare is kept
def test_spare_worker_waits_idle_and_goes_with_the_daemon(db: Path) -> None:
    register(db)
    proc = DaemonProcess(db)
    proc.wait_started()
    # One worker is started ahead and waits for a job, using no CPU.
    (spare,) = wait_until(lambda: children(proc.pid), 30)
    with open(f"/proc/{spare}/cmdline", "rb") as cmdline:
        assert b"bgproc.child" in cmdline.read()
    # The next run gets it; a new spare takes its place.
    request = schedule(db, "Noop")
    run = wait_finished(db, request)
    assert run["status"] == "success" and run["pid"] == spare
    (second,) = wait_until(lambda: children(proc.pid), 30)
    assert second != spare
    # A spare that dies is noticed; runs start on demand meanwhile.
    os.kill(second, signal.SIGKILL)
    wait_until(lambda: "spare worker exited" in proc.output(), 30)
    assert wait_finished(db, schedule(db, "Noop"))["status"] == "success"
    (third,) = wait_until(lambda: children(proc.pid), 30)
    assert proc.stop() == 0
    assert not pid_alive(third)
    assert "Traceback" not in proc.output()


def test_manual_run_leaves_the_timing_alone(db: Path) -> None:
    register(db)
    with daemon(db) as proc:
        done = schedule(db, "Noop")
        assert wait_finished(db, done)["status"] == "success"
        hourly = schedule(db, "Noop", "--every", "1h", "--start", "+1h")
        next_run = _request(db, hourly)["next_run_at"]
        for request in (done, hourly):
            asked = run_bgproc(db, "run", str(request))
            assert asked.code == 0, asked.err
        wait_until(lambda: len(runs(db, done)) == 2 and runs(db, done)[-1]["status"] == "success", 30)
        manual = wait_finished(db, hourly)
        assert manual["status"] == "success" and manual["reason"] == "manual"
        assert runs(db, done)[-1]["reason"] == "manual"
        proc.assert_healthy()
    assert _request(db, done)["status"] == "complete"
    assert _request(db, hourly)["status"] == "scheduled"
    assert _request(db, hourly)["next_run_at"] == next_run
    assert query(db, "SELECT COUNT(*) AS n FROM requests WHERE manual_at IS NOT NULL")[0]["n"] == 0


def test_a_request_that_cannot_be_loaded_does_not_stop_the_daemon(db: Path) -> None:
    register(db)
    broken = schedule(db, "Noop")
    fine = schedule(db, "Noop")
    query(db, "UPDATE requests SET timezone = 'Mars/Olympus_Mons' WHERE id = ?", broken)
    done = run_bgproc(db, "daemon", "--once", timeout=30)
    assert done.code == 0, done.err
    assert run_of(db, fine)["status"] == "success"
    error = run_of(db, broken)
    assert error["status"] == "error" and "Mars/Olympus_Mons" in error["detail"]
    assert _request(db, broken)["status"] == "unscheduled"


def test_a_task_module_that_no_longer_imports_fails_its_run_in_one_line(db: Path, tmp_path: Path) -> None:
    module = tmp_path / "fragile_tasks.py"
    module.write_text(
        "from bgproc import BackgroundTask, NoParams\n"
        "class Fragile(BackgroundTask[NoParams]):\n    def run(self, params: NoParams) -> None:\n        pass\n"
    )
    assert run_bgproc(db, "register", str(module)).code == 0
    request = schedule(db, "Fragile")
    module.write_text("raise RuntimeError('config missing')\n")
    done = run_bgproc(db, "daemon", "--once", timeout=30)
    assert done.code == 0, done.err
    run = monitor_run(db, run_of(db, request)["id"])
    assert run["status"] == "error" and run["exit_code"] == 1
    assert "cannot start" in run["log"] and "RuntimeError: config missing" in run["log"]
    assert "Traceback" not in run["log"]


def test_a_task_that_fails_twice_is_retried_and_succeeds(db: Path, tmp_path: Path) -> None:
    register(db)
    counter = tmp_path / "attempts"
    request = schedule(
        db, "Flaky", "-p", f"counter_file={counter}", "-p", "failures=2", "--retries", "3", "--retry-delay", "1s",
    )
    with daemon(db) as proc:
        wait_until(lambda: (r := runs(db, request)) and r[-1]["status"] == "success", 60)
        proc.assert_healthy()
    first, second, third = runs(db, request)
    assert [r["status"] for r in (first, second, third)] == ["error", "error", "success"]
    assert [r["attempt"] for r in (first, second, third)] == [1, 2, 3]
    assert [r["reason"] for r in (first, second, third)] == ["now", "retry", "retry"]
    assert (first["retry_of"], second["retry_of"], third["retry_of"]) == (None, first["id"], second["id"])
    # Backoff from the retry delay: 1 s, then 2 s (each plus up to a quarter).
    assert 1.0 <= (_t(second["planned_at"]) - _t(first["ended_at"])).total_seconds() <= 1.25
    assert 2.0 <= (_t(third["planned_at"]) - _t(second["ended_at"])).total_seconds() <= 2.5
    assert counter.read_text() == "xxx"
    shown = monitor_run(db, second["id"])
    assert (shown["attempt"], shown["retry_of"]) == (2, first["id"])
    detail = run_bgproc(db, "monitor", str(second["id"]))
    assert re.search(rf"attempt +2 of 4, retries run {first['id']}\b", detail.out), detail.out
    assert re.search(rf"followed by +run {third['id']} \(retry\)", detail.out), detail.out


def test_an_interrupted_run_that_opted_in_is_recovered_once_by_the_next_daemon(db: Path, tmp_path: Path) -> None:
    register(db)
    counter = tmp_path / "attempts"
    first = DaemonProcess(db)
    first.wait_started()
    request = schedule(
        db, "Flaky", "-p", f"counter_file={counter}", "-p", "failures=1", "-p", "hang=true", "--recover",
    )
    wait_until(lambda: counter.exists() and counter.read_text() == "x", 30)  # the first attempt hangs
    first.kill()  # SIGKILL
    with daemon(db) as second:
        recovered = wait_until(lambda: (r := runs(db, request))[-1]["status"] == "success" and r, 60)
        second.assert_healthy()
    interrupted, recovery = recovered
    assert interrupted["status"] == "interrupted" and "to be recovered" in interrupted["detail"]
    assert (recovery["reason"], recovery["retry_of"], recovery["attempt"]) == ("recovery", interrupted["id"], 1)
    assert counter.read_text() == "xx" and len(runs(db, request)) == 2  # once


def test_following_a_run_shows_its_log_and_progress_then_its_outcome(db: Path, tmp_path: Path) -> None:
    """``monitor RUN --follow`` (a table, until the run ends) and ``monitor --follow
    --json`` (a line per change, until Ctrl-C) watch runs another process records."""
    register(db)
    with daemon(db, "--workers", "1") as proc:
        request = schedule(db, "ProgressThenWait", "-p", "hold_s=2")
        run = wait_until(lambda: (r := run_of(db, request)) and r["status"] == "running" and r, 30)
        followed = run_bgproc(db, "monitor", str(run["id"]), "--follow", timeout=30, COLUMNS="160")
        assert followed.code == 0, followed.err
        assert "holding" in followed.out and f"run {run['id']} success" in followed.out, followed.out
        # Following before the run exists (a slow start-up cannot miss it), then Ctrl-C.
        out = tmp_path / "follow.jsonl"
        with open(out, "w") as sink:
            follower = subprocess.Popen(
                [sys.executable, "-m", "bgproc", "monitor", "--follow", "--json", "--task", "ProgressThenWait"],
                stdout=sink, stderr=subprocess.STDOUT, env=bgproc_env(db), cwd=str(ROOT),
                # A suite started in the background (`cmd &`) inherits SIGINT ignored, and
                # Python then installs no Ctrl-C handler: the follower gets the default back.
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )
            try:
                wait_until(lambda: '"success"' in out.read_text(), 30)  # the first run, as it stands
                again = schedule(db, "ProgressThenWait", "-p", "hold_s=2")
                wait_until(lambda: any(
                    c["request_id"] == again and c["status"] == "success"
                    for c in map(json.loads, out.read_text().splitlines())
                ), 30)
            finally:
                follower.send_signal(signal.SIGINT)
                follower.wait(15)
        changes = [c for c in map(json.loads, out.read_text().splitlines()) if c["request_id"] == again]
        assert [c["status"] for c in changes][-1] == "success" and "running" in {c["status"] for c in changes}
        proc.assert_healthy()
