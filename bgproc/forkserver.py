"""The fork server: ``python -P -m bgproc.forkserver``, started by the daemon's pool.

It imports what a child needs (``child.py``: the task API, the parameter
codec, MessagePack) and the registered task modules once, then forks one
child per run on request, so that a run pays neither an interpreter's start
nor its imports. It holds no database connection and runs no thread: a fork
copies only the forking thread, and a lock another thread held would stay
held in the child forever.

The daemon talks to it on a ``SOCK_SEQPACKET`` socket (its number in
``SOCKET_ENV``), one MessagePack message a packet:

- first the server says it is ready: ``{"isolation": {import_path: "fork" |
  "spawn"}, "files": {import_path: [path, mtime_ns]}}``, for the task classes
  it could load (one it could not is left to a fresh interpreter, which says
  why as today), and ``"threads"``: how many threads it has (more than one,
  and it serves nothing: the daemon runs every task in a fresh interpreter);
- then each request, ``{"workdir": path}`` with three file descriptors (the
  child's job pipe, its events pipe and its output pipe), is answered with
  ``{"pid": pid}`` or ``{"error": text}``.

The child is forked twice: the first fork exits at once, so that the run's
process is re-parented to the daemon (a child subreaper, ``forking.py``),
which reaps it and reads its exit status and resource usage as it does a
fresh interpreter's. The run's process is the leader of a session and
process group of its own and works in the directory the daemon made for it,
as in a fresh interpreter (``child.py`` from its ``main``). The server exits
when the daemon closes the socket.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import traceback

from . import child
from .daemon import protocol
from .loader import load_task_class

SOCKET_ENV = "BGPROC_FORKSERVER_FD"
# The tasks to load first, as MessagePack [[import_path, search_path], ...] in hex.
TASKS_ENV = "BGPROC_FORKSERVER_TASKS"
MAX_PACKET = 64 * 1024


def preload(tasks: list[tuple[str, str | None]]) -> tuple[dict[str, str], dict[str, list[object]]]:
    """Import the task modules: each class's isolation, and its module's file and mtime."""
    isolation: dict[str, str] = {}
    files: dict[str, list[object]] = {}
    for import_path, search_path in tasks:
        try:
            cls = load_task_class(import_path, search_path)
        except Exception:  # noqa: BLE001 - a fresh interpreter reports it, run by run
            continue
        module = sys.modules.get(cls.__module__)
        path = getattr(module, "__file__", None)
        if path:
            try:
                files[import_path] = [path, os.stat(path).st_mtime_ns]
            except OSError:
                continue
        isolation[import_path] = str(getattr(cls, "isolation", "fork"))
    return isolation, files


def serve(sock: socket.socket) -> None:
    """Answer fork requests until the daemon closes the socket."""
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, MAX_PACKET, 3)
        except InterruptedError:
            continue
        if not data:
            return
        try:
            request = protocol.unpack(data)
            if len(fds) != 3:
                raise ValueError(f"a fork request comes with 3 file descriptors, not {len(fds)}")
            reply: dict[str, object] = {"pid": fork_run(sock, str(request["workdir"]), fds)}
        except Exception as exc:  # noqa: BLE001 - the daemon says why the run cannot start
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            for fd in fds:
                os.close(fd)
        sock.send(protocol.pack(reply))


def fork_run(sock: socket.socket, workdir: str, fds: list[int]) -> int:
    """Fork a run's process (through a first fork that exits at once); its pid."""
    pid_r, pid_w = os.pipe()
    try:
        first = os.fork()
        if first == 0:
            os.close(pid_r)
            _first_child(sock, workdir, fds, pid_w)
        os.close(pid_w)
        pid_w = -1
        data = b""
        while len(data) < 8:
            chunk = os.read(pid_r, 8 - len(data))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(pid_r)
        if pid_w >= 0:
            os.close(pid_w)
    # Reaped here, the first fork has exited: the run's process is the daemon's child by now.
    os.waitpid(first, 0)
    if len(data) != 8:
        raise OSError("the run's process could not be forked")
    return int.from_bytes(data, "little")


def _first_child(sock: socket.socket, workdir: str, fds: list[int], pid_w: int) -> None:
    code = 1
    try:
        pid = os.fork()
        if pid == 0:
            os.close(pid_w)
            _run_child(sock, workdir, fds)
        os.write(pid_w, pid.to_bytes(8, "little"))
        code = 0
    finally:
        os._exit(code)


def _run_child(sock: socket.socket, workdir: str, fds: list[int]) -> None:
    """In the run's process: become what ``pool.launch`` makes of a fresh interpreter,
    then run ``child.main``."""
    code = protocol.EXIT_ERROR
    try:
        sock.close()
        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        job_fd, events_fd, output_fd = fds
        os.chdir(workdir)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        os.close(output_fd)
        os.environ[protocol.FDS_ENV] = f"{job_fd},{events_fd}"
        code = child.main()
    except SystemExit as exc:
        code = child.exit_code(exc.code)
    except BaseException:  # noqa: BLE001 - as a fresh interpreter would: the traceback, exit 1
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os._exit(code)


def main() -> int:
    sock = socket.socket(fileno=int(os.environ.pop(SOCKET_ENV)))
    raw = bytes.fromhex(os.environ.pop(TASKS_ENV, ""))
    tasks = [(str(path), search) for path, search in protocol.unpack(raw)] if raw else []
    isolation, files = preload(tasks)
    threads = threading.active_count()
    sock.send(protocol.pack({"isolation": isolation, "files": files, "threads": threads}))
    if threads > 1:
        return 1  # a fork would copy one thread of several: the daemon spawns instead
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon's Ctrl-C is the daemon's
    serve(sock)
    return 0


if __name__ == "__main__":
    os._exit(main())
