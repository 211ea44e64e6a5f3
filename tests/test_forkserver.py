"""The fork server: runs forked from a process that imported their task modules once,
each the daemon's own child in its own session, process group and working directory;
``isolation = "spawn"`` keeps a fresh interpreter; the server started again when a
task module changes or it dies, its runs going on and reaped as ever."""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
from pathlib import Path

import pytest
from conftest import query, run_bgproc, wait_until
from daemon_tasks.helpers import children, cli, daemon, pid_alive, register, run_of, schedule, wait_finished


def forkserver_of(daemon_pid: int) -> int | None:
    for pid in children(daemon_pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if b"bgproc.forkserver" in cmdline.read():
                    return pid
        except OSError:
            continue
    return None


def ready_count(output: str) -> int:
    return output.count("fork server ready")


def test_isolation_is_checked_at_register(db: Path, tmp_path: Path) -> None:
    module = tmp_path / "threaded.py"
    module.write_text(textwrap.dedent("""
        from bgproc import BackgroundTask, NoParams

        class Threaded(BackgroundTask[NoParams]):
            isolation = "thread"

            def run(self, params: NoParams) -> None:
                pass
    """))
    code, _, err = cli(db, "register", str(module))
    assert code != 0
    assert "isolation 'thread'" in err and "'fork', 'spawn'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not db.exists() or query(db, "SELECT name FROM tasks WHERE name = 'Threaded'") == []


@pytest.mark.daemon
def test_runs_are_forked_unless_the_task_asks_for_a_fresh_interpreter(db: Path, tmp_path: Path) -> None:
    register(db)
    with daemon(db) as proc:
        wait_until(lambda: ready_count(proc.output()) == 1, 30)
        asked = time.time()
        forked = schedule(db, "WhoAmI", "-p", f"out={tmp_path / 'forked.json'}")
        spawned = schedule(db, "WhoAmISpawn", "-p", f"out={tmp_path / 'spawned.json'}")
        assert wait_finished(db, forked, 30)["status"] == "success"
        assert wait_finished(db, spawned, 30)["status"] == "success"
        server = forkserver_of(proc.pid)
        proc.assert_healthy()
    one = json.loads((tmp_path / "forked.json").read_text())
    other = json.loads((tmp_path / "spawned.json").read_text())
    # Forked from the server, which imported the module before the run was asked for;
    # re-parented to the daemon, which reaps it; a session and group of its own.
    assert "bgproc.forkserver" in one["argv"] and one["imported_at"] < asked
    assert one["ppid"] == proc.pid and one["pid"] == one["pgid"] == one["sid"]
    assert Path(one["cwd"]).name.startswith("bgproc-run-") and not Path(one["cwd"]).exists()
    assert run_of(db, forked)["pid"] == one["pid"] and server is not None and server != one["pid"]
    # A fresh interpreter for the task that asks for one: its module imported anew.
    assert "bgproc.child" in other["argv"] and other["imported_at"] > asked
    assert other["ppid"] == proc.pid and other["pid"] == other["pgid"] == other["sid"]


@pytest.mark.daemon
def test_the_fork_server_starts_again_when_a_task_module_changes(db: Path, tmp_path: Path) -> None:
    package = tmp_path / "mods"
    package.mkdir()
    module = package / "versioned.py"
    source = textwrap.dedent("""
        from dataclasses import dataclass
        from bgproc import BackgroundTask

        @dataclass
        class Out:
            out: str

        class Versioned(BackgroundTask[Out]):
            def run(self, params: Out) -> None:
                with open(params.out, "w") as f:
                    f.write(VERSION)

        VERSION = "one"
    """)
    module.write_text(source)
    code, _, err = cli(db, "register", str(module))
    assert code == 0, err
    with daemon(db) as proc:
        wait_until(lambda: ready_count(proc.output()) == 1, 30)
        first = schedule(db, "Versioned", "-p", f"out={tmp_path / 'a'}")
        assert wait_finished(db, first, 30)["status"] == "success"
        assert (tmp_path / "a").read_text() == "one"
        module.write_text(source.replace('"one"', '"two"'))
        later = time.time() + 5
        os.utime(module, (later, later))  # a new mtime, however coarse the file system's clock
        # The next run finds the module changed: a fresh interpreter meanwhile, then forks again.
        second = schedule(db, "Versioned", "-p", f"out={tmp_path / 'b'}")
        assert wait_finished(db, second, 30)["status"] == "success"
        assert (tmp_path / "b").read_text() == "two"
        assert "changed since the fork server imported it" in proc.output()
        wait_until(lambda: ready_count(proc.output()) == 2, 30)
        third = schedule(db, "Versioned", "-p", f"out={tmp_path / 'c'}")
        assert wait_finished(db, third, 30)["status"] == "success"
        assert (tmp_path / "c").read_text() == "two"
        proc.assert_healthy()


@pytest.mark.daemon
def test_a_fork_server_that_dies_is_started_again_and_its_runs_go_on(db: Path, tmp_path: Path) -> None:
    register(db)
    child_file = tmp_path / "child.pid"
    with daemon(db) as proc:
        wait_until(lambda: ready_count(proc.output()) == 1, 30)
        hang = schedule(db, "Hang", "-p", f"child_pid_file={child_file}")
        run = wait_until(lambda: (r := run_of(db, hang)) and r["pid"] and child_file.exists() and r, 30)
        server = forkserver_of(proc.pid)
        assert server is not None and server != run["pid"]
        os.kill(server, signal.SIGKILL)
        wait_until(lambda: not pid_alive(server), 30)
        assert pid_alive(run["pid"])  # the run is the daemon's child, not the server's
        # Stopped and reaped as ever, its process group with it.
        assert run_bgproc(db, "cancel", str(run["id"])).code == 0
        ended = wait_finished(db, hang, 30)
        assert ended["status"] == "cancelled" and "SIGTERM" in (ended["detail"] or "")
        grandchild = int(child_file.read_text())
        wait_until(lambda: not pid_alive(grandchild), 30)
        # The next run starts it again.
        after = schedule(db, "Noop")
        assert wait_finished(db, after, 30)["status"] == "success"
        wait_until(lambda: "the fork server" in proc.output() and ready_count(proc.output()) == 2, 30)
        proc.assert_healthy()


@pytest.mark.daemon
def test_a_task_module_that_starts_a_thread_turns_the_fork_server_off(db: Path, tmp_path: Path) -> None:
    module = tmp_path / "starts_a_thread.py"
    module.write_text(textwrap.dedent("""
        import os, sys, threading, time
        from dataclasses import dataclass
        from bgproc import BackgroundTask

        if sys.argv[0].endswith("forkserver.py"):  # only in the fork server
            threading.Thread(target=time.sleep, args=(60,), daemon=True).start()

        @dataclass
        class Out:
            out: str

        class Argv(BackgroundTask[Out]):
            def run(self, params: Out) -> None:
                with open(f"/proc/{os.getpid()}/cmdline", "rb") as cmdline, open(params.out, "wb") as out:
                    out.write(cmdline.read())
    """))
    code, _, err = cli(db, "register", str(module))
    assert code == 0, err
    with daemon(db) as proc:
        wait_until(lambda: "starts a thread on import" in proc.output(), 30)
        request = schedule(db, "Argv", "-p", f"out={tmp_path / 'argv'}")
        assert wait_finished(db, request, 30)["status"] == "success"
        assert b"bgproc.child" in (tmp_path / "argv").read_bytes()  # a fresh interpreter
        assert forkserver_of(proc.pid) is None
        proc.assert_healthy()
