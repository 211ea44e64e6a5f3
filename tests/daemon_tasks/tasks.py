"""Tasks that misbehave on purpose, for the daemon's end-to-end tests.

Registered with ``bgproc register tests/daemon_tasks/tasks.py`` (module
``daemon_tasks.tasks``); each test schedules the one it needs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from bgproc import BackgroundTask, Cancelled, ConnectionRequired, NoParams


class Noop(BackgroundTask[NoParams]):
    """Does nothing, quickly."""

    def run(self, params: NoParams) -> None:
        print("noop done")


class AppRow(BackgroundTask[NoParams], ConnectionRequired):
    """Writes a row to the application database (``connection.db``)."""

    def run(self, params: NoParams) -> None:
        self.connection.db["rows"].insert({"run_id": self.connection.run_id})


@dataclass
class SleepParams:
    seconds: float = 0.2
    stamp_file: str = ""


class Sleep(BackgroundTask[SleepParams]):
    """Sleeps; optionally records when it started (the dispatch benchmark)."""

    def run(self, params: SleepParams) -> None:
        if params.stamp_file:
            with open(params.stamp_file, "a") as out:
                out.write(f"{time.time():.6f}\n")
        print(f"sleeping {params.seconds}s")
        time.sleep(params.seconds)
        print("slept")


@dataclass
class RaiseParams:
    message: str = "boom"


class Raise(BackgroundTask[RaiseParams]):
    """Raises an exception."""

    def run(self, params: RaiseParams) -> None:
        print("about to fail")
        raise RuntimeError(params.message)


class RaiseCancelled(BackgroundTask[NoParams]):
    """Raises bgproc.Cancelled itself, with nothing asking it to stop."""

    def run(self, params: NoParams) -> None:
        print("giving up by myself")
        raise Cancelled


@dataclass
class ExitParams:
    code: int = 3


class Exit(BackgroundTask[ExitParams]):
    """Leaves the process at once with an exit code."""

    def run(self, params: ExitParams) -> None:
        print(f"exiting with {params.code}", flush=True)
        os._exit(params.code)


class Segfault(BackgroundTask[NoParams]):
    """Crashes the interpreter with SIGSEGV."""

    def run(self, params: NoParams) -> None:
        print("crashing", flush=True)
        os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(10)


@dataclass
class HangParams:
    child_pid_file: str = ""


def _spawn_child(pid_file: str) -> None:
    """A grandchild that outlives nothing: it must die with the run's process group."""
    if pid_file:
        child = subprocess.Popen(["sleep", "60"])
        with open(pid_file + ".tmp", "w") as out:
            out.write(str(child.pid))
        os.replace(pid_file + ".tmp", pid_file)


class Hang(BackgroundTask[HangParams]):
    """Never ends on its own (the timeout must stop it)."""

    def run(self, params: HangParams) -> None:
        _spawn_child(params.child_pid_file)
        print("hanging", flush=True)
        while True:
            time.sleep(0.05)


class IgnoreTerm(BackgroundTask[HangParams]):
    """Ignores SIGTERM and never ends: only SIGKILL stops it."""

    def run(self, params: HangParams) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _spawn_child(params.child_pid_file)
        print("ignoring SIGTERM", flush=True)
        while True:
            try:
                time.sleep(0.05)
            except BaseException:  # noqa: BLE001 - refuse to stop, on purpose
                pass


@dataclass
class FloodParams:
    megabytes: int = 50


class Flood(BackgroundTask[FloodParams]):
    """Prints a lot: FIRST LINE, megabytes of numbered lines, LAST LINE."""

    def run(self, params: FloodParams) -> None:
        out = sys.stdout.buffer
        out.write(b"FIRST LINE\n")
        line = b"x" * 90
        block = b"".join(b"%08d " % i + line + b"\n" for i in range(10_000))  # 1 MB
        for _ in range(params.megabytes):
            out.write(block)
        out.write(b"LAST LINE\n")
        out.flush()


@dataclass
class ProgressParams:
    steps: int = 3
    hold_s: float = 30.0


class ProgressThenWait(BackgroundTask[ProgressParams], ConnectionRequired):
    """Reports progress and logs, then waits (to be watched, or cancelled)."""

    def run(self, params: ProgressParams) -> None:
        conn = self.connection
        for step in range(1, params.steps + 1):
            conn.progress(step, params.steps + 1, f"step {step}")
        conn.log.info("progress reported; holding")
        print("holding", flush=True)
        print("waiting for a newline", end="", flush=True)
        deadline = time.monotonic() + params.hold_s
        while time.monotonic() < deadline:
            time.sleep(0.05)
        conn.progress(params.steps + 1, params.steps + 1, "done")


@dataclass
class EchoParams:
    text: str = ""


class Echo(BackgroundTask[EchoParams]):
    """Prints the size and digest of its (possibly large) parameter."""

    def run(self, params: EchoParams) -> None:
        import hashlib

        print(f"got {len(params.text)} chars, sha256 {hashlib.sha256(params.text.encode()).hexdigest()}")


class Garbage(BackgroundTask[NoParams], ConnectionRequired):
    """Writes garbage down the events pipe and a NUL to stdout, then logs a huge record."""

    def run(self, params: NoParams) -> None:
        events_fd = int(os.environ["BGPROC_WORKER_FDS"].split(",")[1])
        print("before\x00after", flush=True)
        self.connection.log.info("x" * (5 * 1024 * 1024))
        os.write(events_fd, b"\xc1\xc1\xc1 not msgpack")
        self.connection.progress(1, 2, "after the garbage")
        print("still here", flush=True)


class Straggler(BackgroundTask[HangParams]):
    """Starts a child and returns without waiting for it."""

    def run(self, params: HangParams) -> None:
        _spawn_child(params.child_pid_file)
        print("left a child behind", flush=True)


@dataclass
class MemoryParams:
    megabytes: int = 0


class Memory(BackgroundTask[MemoryParams]):
    """Touches some memory, then prints its own peak (VmHWM) as the kernel sees it."""

    def run(self, params: MemoryParams) -> None:
        block = bytearray(params.megabytes * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        with open("/proc/self/status") as status:
            peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
        print(f"peak {peak} kB")


class GarbageAndPeak(BackgroundTask[NoParams]):
    """Writes garbage down the events pipe (so its ended event, with its peak memory,
    is lost), then prints its own peak (VmHWM) and ends at once."""

    def run(self, params: NoParams) -> None:
        events_fd = int(os.environ["BGPROC_WORKER_FDS"].split(",")[1])
        os.write(events_fd, b"\xc1 not msgpack")
        with open("/proc/self/status") as status:
            peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
        print(f"peak {peak} kB", flush=True)


class BigProgress(BackgroundTask[NoParams], ConnectionRequired):
    """Reports progress with a 9 MiB message (more than the daemon reads of one event)."""

    def run(self, params: NoParams) -> None:
        self.connection.progress(1, 2, "x" * (9 * 1024 * 1024))
        print("reported", flush=True)


class GarbageThenMore(BackgroundTask[NoParams], ConnectionRequired):
    """Writes garbage down the events pipe, then far more events than the pipe holds."""

    def run(self, params: NoParams) -> None:
        events_fd = int(os.environ["BGPROC_WORKER_FDS"].split(",")[1])
        os.write(events_fd, b"\xc1 not msgpack")
        for i in range(2000):
            self.connection.log.info("%d %s", i, "y" * 1024)
            self.connection.progress(i, 2000, "z" * 1024)
        print("all sent", flush=True)


@dataclass
class SysExitParams:
    code: int = 256


class SysExit(BackgroundTask[SysExitParams]):
    """Leaves through sys.exit(code), as a task may."""

    def run(self, params: SysExitParams) -> None:
        sys.exit(params.code)


class Interleave(BackgroundTask[NoParams], ConnectionRequired):
    """Prints and logs in turn, to stdout and stderr, as fast as it can."""

    def run(self, params: NoParams) -> None:
        for i in range(200):
            print(f"print {i}")
            self.connection.log.info("record %d", i)
            print(f"error {i}", file=sys.stderr)
        # Quieting stderr (as for a chatty C library) does not quiet the records.
        sys.stderr.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        self.connection.log.warning("while stderr is quiet")
        print("unseen", file=sys.stderr)


@dataclass
class BodyParams:
    path: str = ""
    seconds: float = 600.0
    child_pid_file: str = ""


class Body(BackgroundTask[BodyParams]):
    """Notes in a file shared by its runs when its body starts and ends, and how
    (``start``, ``end`` or ``cancelled``, with the pid and this host's monotonic and
    wall time), so that a test can tell whether two bodies ever ran at once."""

    def run(self, params: BodyParams) -> None:
        def note(what: str) -> None:
            with open(params.path, "a") as out:
                out.write(f"{what} {os.getpid()} {time.monotonic():.6f} {time.time():.6f}\n")

        _spawn_child(params.child_pid_file)
        note("start")
        try:
            time.sleep(params.seconds)
        except Cancelled:
            note("cancelled")
            raise
        note("end")


@dataclass
class FlakyParams:
    counter_file: str = ""
    failures: int = 2
    hang: bool = False  # fail by hanging (to be interrupted) rather than by raising


class Flaky(BackgroundTask[FlakyParams]):
    """Counts its attempts in a file; fails (or hangs) the first ``failures`` times."""

    def run(self, params: FlakyParams) -> None:
        with open(params.counter_file, "a") as out:
            out.write("x")
        with open(params.counter_file) as counted:
            attempt = len(counted.read())
        print(f"attempt {attempt}", flush=True)
        if attempt <= params.failures:
            if params.hang:
                while True:
                    time.sleep(0.05)
            raise RuntimeError(f"failing attempt {attempt}")
        print("succeeded")


@dataclass
class WhoAmIParams:
    out: str


class WhoAmI(BackgroundTask[WhoAmIParams]):
    """Writes how its process was started: its command line, parent, process group,
    working directory, and how many times its module was imported in this process."""

    def run(self, params: WhoAmIParams) -> None:
        import json

        with open(f"/proc/{os.getpid()}/cmdline", "rb") as cmdline:
            argv = cmdline.read().decode().split("\0")
        facts = {
            "argv": argv, "pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgrp(), "sid": os.getsid(0),
            "cwd": os.getcwd(), "imported_at": IMPORTED_AT,
        }
        with open(params.out, "w") as out:
            json.dump(facts, out)


class WhoAmISpawn(WhoAmI):
    """``WhoAmI`` in a fresh interpreter."""

    isolation = "spawn"


IMPORTED_AT = time.time()
