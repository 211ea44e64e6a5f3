"""Is a process, or another daemon, still alive? Process and host identity.

Another daemon's pid means something only where it was taken: the same host
name, boot (or machine) and pid namespace; there, a pid that exited, or was
reused by another process (its start time differs), is a dead daemon.
"""

from __future__ import annotations

import os
import socket


def pid_alive(pid: int) -> bool:
    """Whether a process runs (an exited, unreaped zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rpartition(b")")[2].split()[0]
    except (OSError, IndexError):
        return True  # no /proc: trust kill(0)
    return state not in (b"Z", b"X")


def proc_start(pid: int) -> int | None:
    """When a process started, in clock ticks since boot (Linux), else None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return int(stat.read().rpartition(b")")[2].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def pid_is(pid: int, start: int | None) -> bool:
    """Whether the process that registered as ``pid`` (started at ``start``) still runs,
    rather than nothing or another process given the same pid since."""
    if not pid_alive(pid):
        return False
    now_start = proc_start(pid)
    return start is None or now_start is None or now_start == start


def read_first_line(path: str) -> str | None:
    try:
        with open(path) as source:
            return source.readline().strip() or None
    except OSError:
        return None


def host_name(hostname: str | None = None) -> str:
    """The plain host name runs record and ``monitor --host`` matches (``hostname``, or
    this host's): the first word of a daemons row's ``host``."""
    return (hostname or socket.gethostname()).replace(" ", "_") or "?"


def place(hostname: str | None = None) -> str:
    """Where this process's pids mean something: the host name (``hostname``, or this
    host's), the boot (a reboot reuses pids; the machine id where there is no boot
    id), and the pid namespace (containers sharing a host name and kernel have their
    own pids)."""
    parts = [host_name(hostname)]
    boot = read_first_line("/proc/sys/kernel/random/boot_id")
    if boot:
        parts.append(f"boot={boot}")
    else:
        machine = read_first_line("/etc/machine-id")
        if machine:
            parts.append(f"machine={machine}")
    try:
        parts.append(f"pidns={os.readlink('/proc/self/ns/pid')}")
    except OSError:
        pass
    return " ".join(parts)


def host_text(place: str, pid_start: int | None) -> str:
    """The daemons row's ``host``: the place, then the process's start if known."""
    return place if pid_start is None else f"{place} pidstart={pid_start}"


def parse_host(text: str) -> tuple[str, int | None]:
    """(place, process start) from a daemons row's ``host``."""
    words = text.split(" ")
    start = None
    if words and words[-1].startswith("pidstart="):
        try:
            start = int(words.pop()[len("pidstart="):])
        except ValueError:
            pass
    return " ".join(words), start


def gone_here(host: str, pid: int, here: str) -> bool:
    """Whether a daemon (its row's ``host`` and ``pid``) ran at this place and its
    process is gone: exited, or its pid taken by another process since."""
    theirs, pid_start = parse_host(host)
    return same_place(theirs, here) and pid != os.getpid() and not pid_is(pid, pid_start)


def same_place(theirs: str, ours: str) -> bool:
    """Whether another daemon's pid can be checked from here: the same host name, boot
    (or machine) id and pid namespace. Only where neither side has any of these (no
    /proc, no /etc/machine-id) does the host name alone decide."""
    return theirs == ours
