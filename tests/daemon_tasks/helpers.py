"""Helpers shared by the daemon's end-to-end tests (real subprocesses, real files)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

from conftest import ROOT, bgproc_env, query, run_bgproc, wait_until

TASKS_FILE = str(Path(__file__).with_name("tasks.py"))


def cli(db: Path | str, *args: str) -> tuple[int, str, str]:
    """The command line in this process: the same code as ``bgproc``, without the
    half second of interpreter start-up (for setting up; the daemon is always a
    real subprocess)."""
    from bgproc.cli import run

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run(["--db", str(db), *args])
    return code, out.getvalue(), err.getvalue()


def register(db: Path | str) -> None:
    code, _, err = cli(db, "register", TASKS_FILE)
    assert code == 0, err


def schedule(db: Path | str, *args: str) -> int:
    """``bgproc schedule ...``; returns the request id."""
    code, out, err = cli(db, "schedule", *args)
    assert code == 0, err
    return int(out.strip())


def runs(db: Path | str, request_id: int | None = None, status: str | None = None) -> list[dict[str, Any]]:
    sql, values = "SELECT * FROM runs WHERE 1=1", []
    if request_id is not None:
        sql += " AND request_id = ?"
        values.append(request_id)
    if status is not None:
        sql += " AND status = ?"
        values.append(status)
    return query(db, sql + " ORDER BY id", *values)


def run_of(db: Path | str, request_id: int, *, status: str | None = None) -> dict[str, Any] | None:
    """The request's (first) executed run, optionally once it has ``status``."""
    rows = [r for r in runs(db, request_id) if r["status"] not in ("skipped", "missed")]
    if not rows:
        return None
    if status is not None and rows[0]["status"] != status:
        return None
    return rows[0]


def wait_finished(db: Path | str, request_id: int, timeout: float = 15.0) -> dict[str, Any]:
    return wait_until(
        lambda: (r := run_of(db, request_id)) is not None and r["status"] != "running" and r,
        timeout,
    )


def monitor_run(db: Path | str, run_id: int) -> dict[str, Any]:
    result = run_bgproc(db, "monitor", str(run_id), "--json")
    assert result.code == 0, result.err
    return result.json()


def pid_alive(pid: int) -> bool:
    """A process exists and is not a zombie (orphans may wait unreaped under PID 1)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def children(pid: int) -> list[int]:
    """Live child processes of ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.append(int(entry))
    return found


class DaemonProcess:
    """``bgproc daemon`` as a subprocess, its stderr in a file (a pipe could fill up)."""

    started: list[DaemonProcess] = []

    @classmethod
    def kill_leftovers(cls) -> None:
        """After a test, even a failed one: no daemon outlives it (its workers follow
        through their lifelines)."""
        while cls.started:
            proc = cls.started.pop()
            if proc.proc.poll() is None:
                proc.proc.kill()
                proc.proc.wait()
            proc._log.close()

    def __init__(self, db: Path | str, *args: str, env: dict[str, str] | None = None) -> None:
        # Beside a database file; for a server's database, in a directory of its own.
        logs = db.parent if isinstance(db, Path) else Path(tempfile.mkdtemp(prefix="bgproc-test-daemon-"))
        self.log_path = logs / f"daemon-{os.urandom(3).hex()}.log"
        logs.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bgproc", "daemon", *args], stdout=self._log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=bgproc_env(db, **(env or {})), cwd=str(ROOT),
        )
        self.db = db
        DaemonProcess.started.append(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_started(self, timeout: float = 10.0) -> None:
        wait_until(lambda: "started on" in self.output() or self.proc.poll() is not None, timeout)
        assert self.proc.poll() is None, self.output()

    def output(self) -> str:
        return self.log_path.read_text()

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def wait(self, timeout: float = 15.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._log.close()

    def assert_healthy(self) -> None:
        assert self.proc.poll() is None, f"daemon exited:\n{self.output()}"
        assert "Traceback" not in self.output(), self.output()


@contextmanager
def daemon(db: Path | str, *args: str, env: dict[str, str] | None = None) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(db, *args, env=env)
    try:
        proc.wait_started()
        yield proc
    finally:
        if proc.proc.poll() is None:
            # Twice: stop running runs now. (Signals sent back to back may
            # arrive as one, so wait for the first to be seen.)
            proc.proc.send_signal(signal.SIGINT)
            try:
                wait_until(lambda: "no new runs" in proc.output() or proc.proc.poll() is not None, 5)
            except AssertionError:
                pass
            if proc.proc.poll() is None:
                proc.proc.send_signal(signal.SIGINT)
            try:
                proc.proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.proc.kill()
                proc.proc.wait()
        proc._log.close()
