"""The daemon's side of the fork server (``bgproc/forkserver.py``).

``ForkServer`` starts the server with the registered tasks, asks it for one
forked child per run, and starts it again when a task module changed on
disk or a task was registered again (or newly) since it started, or when it
died. Its runs are the daemon's own children: the daemon is a child
subreaper (``become_subreaper``), so the run's process, orphaned by the
fork server's first fork, is re-parented to the daemon, which reaps it as it
reaps a fresh interpreter. A fork server that dies leaves its runs going,
and the daemon reaps them as ever.

``BGPROC_FORK_SERVER=0`` in the daemon's environment turns the server off:
every run then gets a fresh interpreter, as a task with ``isolation =
"spawn"`` does.
"""

from __future__ import annotations

import ctypes
import os
import selectors
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ..errors import StoreError
from ..store.records import TaskRecord
from . import protocol

ENABLE_ENV = "BGPROC_FORK_SERVER"
KIND = "forkserver"  # its socket's kind on the daemon's selector
SOCKET_ENV = "BGPROC_FORKSERVER_FD"  # as forkserver.py reads them (it is not imported here)
TASKS_ENV = "BGPROC_FORKSERVER_TASKS"
PR_SET_CHILD_SUBREAPER = 36
# How long the server may take to answer one fork request, in seconds.
REPLY_S = 10.0
MAX_PACKET = 64 * 1024


def enabled() -> bool:
    """Whether the daemon's environment allows the fork server (Linux only)."""
    return sys.platform.startswith("linux") and os.environ.get(ENABLE_ENV, "1") not in ("0", "no", "off")


def become_subreaper(on: bool = True) -> bool:
    """Make this process the reaper of its orphaned descendants (Linux), or no longer
    (``on`` False: a test process done with an in-process daemon); whether it worked."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


@dataclass
class Forked:
    """A run's process forked by the fork server, a child of the daemon: what the pool
    keeps of a ``subprocess.Popen``."""

    pid: int
    returncode: int | None = None
    stdout: None = None


@dataclass
class _Loaded:
    """What the running server loaded: each task's isolation, its module's file and mtime."""

    isolation: dict[str, str]
    files: dict[str, tuple[str, int]]


class ForkServer:
    """The daemon's fork server. ``tasks`` lists the registered tasks (read when the
    server starts); ``say`` reports events; ``env`` is the environment of a child;
    its socket goes on ``selector``, the daemon's (``Pool.ready`` hands it back).

    The daemon never waits for it to load the task modules: until it says it is
    ready (``isolation`` looks without waiting), runs start as fresh interpreters,
    as they would without it; a task module whose import hangs only keeps it so."""

    def __init__(
        self,
        tasks: Callable[[], list[TaskRecord]],
        say: Callable[[str], None],
        env: Callable[[], dict[str, str]],
        selector: selectors.BaseSelector | None = None,
    ) -> None:
        self._tasks = tasks
        self._selector = selector
        self._env = env
        self._say = say
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._registered: dict[str, tuple[str, str | None, datetime | None]] = {}
        self._loaded: _Loaded | None = None
        self.broken: str | None = None  # why the daemon spawns every run instead

    def isolation(self, task: TaskRecord) -> str:
        """How ``task``'s next run is started: "fork" or "spawn". Starts (or starts again)
        the server as needed; "spawn" while it is not ready, when it cannot serve, or
        when it could not load the task (a fresh interpreter then says why, as ever)."""
        if self.broken is not None:
            return "spawn"
        if self._proc is None:
            self.start()
        if self._loaded is None:
            self._look_ready()
        if self._loaded is not None and self._stale(task):
            self.stop()
            self.start()
        if self._loaded is None:
            return "spawn"
        return self._loaded.isolation.get(task.import_path, "spawn")

    def _stale(self, task: TaskRecord) -> bool:
        loaded = self._loaded
        assert loaded is not None and self._proc is not None
        if self._proc.poll() is not None:
            code = self._proc.returncode
            self._say(f"the fork server (pid {self._proc.pid}) exited (code {code}); starting it again")
            return True
        if self._registered.get(task.name) != (task.import_path, task.search_path, task.updated_at):
            self._say(f"task {task.name} was registered since the fork server started; starting it again")
            return True
        known = loaded.files.get(task.import_path)
        if known is None:
            return False
        try:
            changed = os.stat(known[0]).st_mtime_ns != known[1]
        except OSError:
            changed = True
        if changed:
            self._say(f"{known[0]} changed since the fork server imported it; starting it again")
        return changed

    def start(self) -> None:
        """Start the server if it is not running (it loads the task modules on its own);
        not now if the tasks cannot be read (a run then starts a fresh interpreter)."""
        if self._proc is not None or self.broken is not None:
            return
        try:
            tasks = self._tasks()
        except StoreError:
            return  # the database says why elsewhere; tried again at the next run
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = self._env()
        env[SOCKET_ENV] = str(child.fileno())
        env[TASKS_ENV] = protocol.pack([[t.import_path, t.search_path] for t in tasks]).hex()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-P", "-m", "bgproc.forkserver"], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, pass_fds=(child.fileno(),), env=env, start_new_session=True,
            )
        except OSError as exc:
            parent.close()
            self.broken = f"the fork server could not start: {exc}"
            self._say(f"{self.broken}; every run starts a fresh interpreter")
            return
        finally:
            child.close()
        parent.setblocking(False)
        self._sock = parent
        if self._selector is not None:
            # Its socket wakes the daemon's loop: when it is ready, and when it dies.
            self._selector.register(parent, selectors.EVENT_READ, (KIND, None))
        self._registered = {t.name: (t.import_path, t.search_path, t.updated_at) for t in tasks}

    def readable(self) -> None:
        """Its socket is readable (the daemon's selector says): ready, or gone."""
        if self._loaded is None:
            self._look_ready()
        elif self._proc is not None and self._sock is not None:
            self._say(f"the fork server (pid {self._proc.pid}) exited; starting it again at the next run")
            self.stop()

    def _look_ready(self) -> None:
        """Whether the server said it is ready, without waiting."""
        if self._sock is None:
            return
        try:
            data = self._sock.recv(MAX_PACKET)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        ready = protocol.unpack(data) if data else None
        if not isinstance(ready, dict) or ready.get("threads") != 1:
            threads = ready.get("threads") if isinstance(ready, dict) else None
            code = self._proc.poll() if self._proc is not None else None
            self.stop()
            if threads:
                self.broken = (
                    f"the fork server has {threads} threads once the task modules are imported (one of "
                    "them starts a thread on import): a fork would copy one"
                )
            else:
                self.broken = f"the fork server exited before it was ready (code {code})"
            self._say(f"{self.broken}; every run starts a fresh interpreter")
            return
        self._loaded = _Loaded(
            isolation=dict(ready["isolation"]),
            files={k: (str(v[0]), int(v[1])) for k, v in ready["files"].items()},
        )
        self._say(f"fork server ready (pid {self.pid}, {len(self._loaded.isolation)} task(s) loaded)")

    def fork(self, workdir: str, fds: tuple[int, int, int]) -> Forked:
        """A run's process, forked with the job, events and output pipes ``fds``, working
        in ``workdir``. Raises OSError if the server cannot fork it (stopped then: the
        next run starts it again)."""
        if self._sock is None:
            raise OSError("the fork server is not running")
        try:
            self._sock.settimeout(REPLY_S)
            socket.send_fds(self._sock, [protocol.pack({"workdir": workdir})], list(fds))
            data = self._sock.recv(MAX_PACKET)
            reply = protocol.unpack(data) if data else None
        except (OSError, ValueError):
            reply = None
        if not isinstance(reply, dict) or not isinstance(reply.get("pid"), int):
            self.stop()
            why = reply.get("error") if isinstance(reply, dict) else "it did not answer"
            raise OSError(f"the fork server could not fork the run: {why}")
        return Forked(pid=reply["pid"])

    def stop(self) -> None:
        """Stop the server (killed: it holds nothing of value); its runs go on."""
        self._loaded = None
        if self._sock is not None:
            if self._selector is not None:
                self._selector.unregister(self._sock)
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    @property
    def ready(self) -> bool:
        """Whether it is running and said it is ready."""
        return self._loaded is not None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid


def reap_strays(known: set[int]) -> int:
    """Reap this daemon's exited children that it did not start (a subreaper adopts
    what its runs' processes leave behind); returns how many."""
    count = 0
    for pid in _zombie_children():
        if pid in known:
            continue
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                count += 1
        except ChildProcessError:
            pass
    return count


def _zombie_children() -> list[int]:
    me = os.getpid()
    pids: list[int] = []
    try:
        threads = os.listdir(f"/proc/{me}/task")
    except OSError:
        return pids
    for tid in threads:
        try:
            with open(f"/proc/{me}/task/{tid}/children") as children:
                pids += [int(p) for p in children.read().split()]
        except OSError:
            continue
    zombies = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                if stat.read().rpartition(b")")[2].split()[0] == b"Z":
                    zombies.append(pid)
        except (OSError, IndexError):
            continue
    return zombies
