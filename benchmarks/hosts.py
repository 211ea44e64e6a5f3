"""Several hosts on one machine: network namespaces with their own addresses and host
names, to prove bgproc's daemons on several hosts (issue 10) on a single box.

    python benchmarks/hosts.py check                        # can this machine make hosts?
    python benchmarks/hosts.py show [--hosts 3] [--postgres]  # make them, show them, remove them
    python benchmarks/hosts.py cleanup                      # remove what a crashed run left

Each host is a network namespace (``ip netns add``) joined by a veth pair to a
bridge in the root namespace, with its own address and its loopback up. Every
process started in a host runs in a UTS namespace of its own that carries the
host's name (``unshare --uts`` inside ``ip netns exec``), so bgproc's daemons
in two hosts take each other for daemons on other machines: they judge each
other by heartbeats, never by pid. The file system is shared.

A host can be cut off (its link down: nothing in or out, silently) and brought
back, and everything running in it killed at once (the machine lost).

For PostgreSQL, ``Hosts.postgres_url()`` starts a throwaway server as the
``postgres`` user, its data directory in this run's state directory, listening
on the bridge's address only (the machine's own server listens on 127.0.0.1,
which no host reaches) with trust for the hosts' subnet; ``close()`` stops it.

Everything made (namespaces, links, the state directory and its server) carries
the prefix ``bgh<owner pid><letter>``: a run that died leaves names whose owner
is gone, and the next ``Hosts`` (or ``cleanup``) removes them. Needs root and
iproute2; ``unavailable()`` says why not, for callers to skip.
"""

from __future__ import annotations

import argparse
import fcntl
import glob
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATE_ROOT = Path("/tmp/bgproc-hosts")
OWNED = re.compile(r"^bgh(\d+)[a-z]")
NETWORK = "10.213"  # hosts of one run get 10.213.N.0/24, N free on this machine
POSTGRES_USER = "postgres"
_instances = itertools.count()


class HostsError(RuntimeError):
    """Hosts could not be made, changed or removed."""


@dataclass(frozen=True)
class Host:
    """One host: its name (its processes' host name), namespace, address and link."""

    index: int
    name: str
    netns: str
    address: str
    link: str  # the root namespace's end of its veth pair, on the bridge

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run in this host: its network namespace, a UTS namespace of its own
        with the host's name. ``ip netns exec``, ``unshare`` and ``sh`` each exec the
        next, so the process started is ``argv``'s own (signals reach it)."""
        return [
            "ip", "netns", "exec", self.netns, "unshare", "--uts", "--",
            "sh", "-c", 'hostname "$0" && exec "$@"', self.name, *argv,
        ]


# ----------------------------------------------------------------------
# What this machine can do


def unavailable() -> str | None:
    """Why hosts cannot be made here (for a skip), or None when they can."""
    if not sys.platform.startswith("linux"):
        return "needs Linux network namespaces"
    if os.geteuid() != 0:
        return "needs root (ip netns add, unshare --uts)"
    for tool in ("ip", "unshare", "hostname"):
        if shutil.which(tool) is None:
            return f"needs the {tool} command (iproute2, util-linux)"
    probe = f"bgh{os.getpid()}z-probe"
    made = _run(["ip", "netns", "add", probe])
    if made.returncode != 0:
        return f"ip netns add does not work here: {_first_line(made.stderr)}"
    try:
        uts = _run(["ip", "netns", "exec", probe, "unshare", "--uts", "--", "hostname", "bgh-probe"])
        if uts.returncode != 0:
            return f"unshare --uts does not work inside ip netns exec: {_first_line(uts.stderr)}"
    finally:
        _run(["ip", "netns", "del", probe])
    return None


def postgres_bindir() -> Path | None:
    """The newest PostgreSQL server's binaries (initdb, pg_ctl), or None."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    if not found:
        config = shutil.which("pg_config")
        if config:
            done = _run([config, "--bindir"])
            bindir = Path(done.stdout.strip())
            if done.returncode == 0 and (bindir / "initdb").exists():
                return bindir
        return None
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


def postgres_unavailable() -> str | None:
    """Why a throwaway PostgreSQL server cannot be started for the hosts, or None."""
    reason = unavailable()
    if reason:
        return reason
    if postgres_bindir() is None:
        return "needs a PostgreSQL server's binaries (initdb, pg_ctl: /usr/lib/postgresql/*/bin)"
    try:
        import pwd

        pwd.getpwnam(POSTGRES_USER)
    except KeyError:
        return f"needs the {POSTGRES_USER} user to run a throwaway server"
    return None


# ----------------------------------------------------------------------
# The hosts


class Hosts:
    """``count`` hosts on a bridge of their own; a context manager that removes them.

    ``popen``/``run`` start a command in a host; ``kill`` ends everything in a host
    (the machine lost); ``cut`` takes its link down and ``restore`` brings it back;
    ``postgres_url`` starts a server every host reaches."""

    def __init__(self, count: int = 3, *, names: Sequence[str] | None = None) -> None:
        if names is None:
            names = [f"host-{chr(ord('a') + i)}" for i in range(count)]
        if not 1 <= len(names) <= 99:
            raise ValueError("between 1 and 99 hosts")
        self.names = list(names)
        self.prefix = f"bgh{os.getpid()}{chr(ord('a') + next(_instances) % 26)}"
        self.bridge = f"{self.prefix}br"
        self.state = STATE_ROOT / self.prefix
        self.hosts: list[Host] = []
        self.gateway = ""  # the bridge's address: the root namespace as the hosts see it
        self.subnet = ""
        self._postgres: PostgresServer | None = None

    def __enter__(self) -> Hosts:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getitem__(self, index: int) -> Host:
        return self.hosts[index]

    def __iter__(self) -> Iterator[Host]:
        return iter(self.hosts)

    def __len__(self) -> int:
        return len(self.hosts)

    def open(self) -> None:
        cleanup_leftovers()
        try:
            with _machine_lock():  # two runs at once do not pick the same subnet
                self._make_bridge(_free_subnet())
            self.state.mkdir(mode=0o755, parents=True)
            for index, name in enumerate(self.names):
                self.hosts.append(self._make_host(index, name))
        except BaseException:
            self.close()
            raise

    def _make_bridge(self, third: int) -> None:
        self.subnet = f"{NETWORK}.{third}.0/24"
        self.gateway = f"{NETWORK}.{third}.1"
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def _make_host(self, index: int, name: str) -> Host:
        base = self.gateway.rsplit(".", 1)[0]
        host = Host(index, name, f"{self.prefix}-{name}", f"{base}.{11 + index}", f"{self.prefix}v{index}")
        _ip("netns", "add", host.netns)
        _ip("link", "add", host.link, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
        _ip("link", "set", host.link, "master", self.bridge, "up")
        _ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", host.netns, "link", "set", "eth0", "up")
        _ip("-n", host.netns, "link", "set", "lo", "up")
        _ip("-n", host.netns, "route", "add", "default", "via", self.gateway)
        return host

    # -- commands in a host

    def popen(self, host: Host | int, argv: Sequence[str], **options: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` in ``host`` (options as for ``subprocess.Popen``)."""
        return subprocess.Popen(self._host(host).command(argv), **options)

    def run(self, host: Host | int, argv: Sequence[str], **options: Any) -> subprocess.CompletedProcess[Any]:
        """Run ``argv`` in ``host`` to its end (options as for ``subprocess.run``)."""
        return subprocess.run(self._host(host).command(argv), **options)

    def pids(self, host: Host | int) -> list[int]:
        """The processes running in ``host`` (its network namespace)."""
        return [int(p) for p in _ip("netns", "pids", self._host(host).netns).split()]

    def kill(self, host: Host | int) -> int:
        """SIGKILL everything running in ``host``, as a machine that is lost; returns
        how many processes there were."""
        return _kill_netns(self._host(host).netns)

    def cut(self, host: Host | int) -> None:
        """Take ``host``'s link down: what it sends and what is sent to it is dropped,
        without a word to either side, until ``restore``."""
        _ip("link", "set", self._host(host).link, "down")

    def restore(self, host: Host | int) -> None:
        """Bring ``host``'s link back up."""
        _ip("link", "set", self._host(host).link, "up")

    def _host(self, host: Host | int) -> Host:
        return self.hosts[host] if isinstance(host, int) else host

    # -- a database every host reaches

    def postgres_url(self, database: str = "bgproc") -> str:
        """A PostgreSQL URL every host (and the root namespace) reaches: a throwaway
        server on the bridge's address, started on first call, stopped by ``close``."""
        if self._postgres is None:
            server = PostgresServer(self.state / "pg", self.gateway, self.subnet)
            self._postgres = server
            server.start()
        return self._postgres.url(database)

    # -- teardown

    def close(self) -> None:
        """Remove everything this run made: processes in the hosts first, the server,
        the namespaces, links and the bridge, and the state directory. Safe to call
        twice, and after a half-made start."""
        for host in self.hosts:
            _kill_netns(host.netns)
        if self._postgres is not None:
            self._postgres.stop()
            self._postgres = None
        _remove_owned(self.prefix)
        self.hosts = []


# ----------------------------------------------------------------------
# A throwaway PostgreSQL server on the bridge


class PostgresServer:
    """A PostgreSQL server of its own for one run: ``initdb`` in ``directory`` as the
    postgres user, listening on ``address`` only (port 5432: the machine's server
    listens on 127.0.0.1 alone), its socket in ``directory``, trust for ``subnet``."""

    def __init__(self, directory: Path, address: str, subnet: str, port: int = 5432) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.address = address
        self.subnet = subnet
        self.port = port
        bindir = postgres_bindir()
        if bindir is None:
            raise HostsError(postgres_unavailable() or "no PostgreSQL server binaries")
        self.bindir = bindir

    def url(self, database: str) -> str:
        return f"postgresql://{POSTGRES_USER}@{self.address}:{self.port}/{database}"

    def start(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True)
        shutil.chown(self.directory, POSTGRES_USER, POSTGRES_USER)
        self._as_postgres(
            "initdb", "-D", str(self.data), "-U", POSTGRES_USER, "--auth=trust", "--no-sync",
            "--encoding=UTF8", "--locale=C",
        )
        with open(self.data / "pg_hba.conf", "a") as hba:
            hba.write(f"\n# the hosts' subnet (benchmarks/hosts.py)\nhost all all {self.subnet} trust\n")
        settings = (
            f"-c listen_addresses={self.address} -c port={self.port} "
            f"-c unix_socket_directories={self.directory} -c max_connections=200"
        )
        self._as_postgres(
            "pg_ctl", "-D", str(self.data), "-l", str(self.directory / "server.log"), "-w", "-t", "120",
            "-o", settings, "start",
        )
        self._as_postgres("createdb", "-h", self.address, "-p", str(self.port), "-U", POSTGRES_USER, "bgproc")

    def stop(self) -> None:
        stop_postgres(self.data, self.bindir)

    def _as_postgres(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            [str(self.bindir / tool), *args], cwd=self.directory, user=POSTGRES_USER, group=POSTGRES_USER,
            extra_groups=[], capture_output=True, text=True, timeout=180,
        )
        if done.returncode != 0:
            log = self.directory / "server.log"
            tail = log.read_text().strip().splitlines()[-3:] if log.exists() else []
            raise HostsError(f"{tool} failed: {_first_line(done.stderr or done.stdout)} {' | '.join(tail)}".strip())


def stop_postgres(data: Path, bindir: Path | None = None) -> None:
    """Stop the server of ``data`` if one runs there: ``pg_ctl stop``, else its
    postmaster's pid killed."""
    pid_file = data / "postmaster.pid"
    if not pid_file.exists():
        return
    bindir = bindir or postgres_bindir()
    if bindir is not None:
        stopped = subprocess.run(
            [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop"],
            user=POSTGRES_USER, group=POSTGRES_USER, extra_groups=[], cwd="/", capture_output=True, timeout=60,
        )
        if stopped.returncode == 0:
            return
    try:
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
    except (OSError, ValueError, IndexError):
        pass


# ----------------------------------------------------------------------
# Leftovers and removal


def cleanup_leftovers() -> list[str]:
    """Remove the hosts of runs whose process is gone (a crash, a SIGKILL): their
    namespaces, links, servers and state. Returns the prefixes removed."""
    prefixes = {name[: m.end()] for name in _owned_names() if (m := OWNED.match(name)) and _gone(int(m.group(1)))}
    for prefix in sorted(prefixes):
        _remove_owned(prefix)
    return sorted(prefixes)


def _owned_names() -> list[str]:
    names = [line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()]
    names += [line.split(":")[1].strip().split("@")[0] for line in _ip("-o", "link", "show").splitlines()]
    if STATE_ROOT.is_dir():
        names += os.listdir(STATE_ROOT)
    return [name for name in names if OWNED.match(name)]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _remove_owned(prefix: str) -> None:
    """Remove everything named with ``prefix``: processes in its namespaces, its
    server, its namespaces, links and state directory."""
    netns = [line.split()[0] for line in _ip("netns", "list").splitlines() if line.startswith(prefix)]
    for name in netns:
        _kill_netns(name)
    state = STATE_ROOT / prefix
    if (state / "pg" / "data").is_dir():
        stop_postgres(state / "pg" / "data")
    for name in netns:
        _ip("netns", "del", name, check=False)
    links = [line.split(":")[1].strip().split("@")[0] for line in _ip("-o", "link", "show").splitlines()]
    for link in links:
        if link.startswith(prefix):  # a veth's end in the root namespace takes its peer with it
            _ip("link", "del", link, check=False)
    shutil.rmtree(state, ignore_errors=True)


def _kill_netns(netns: str) -> int:
    """SIGKILL every process in ``netns`` until none is left (one may fork meanwhile)."""
    killed: set[int] = set()
    for _ in range(100):
        done = _run(["ip", "netns", "pids", netns])
        pids = [int(p) for p in done.stdout.split()] if done.returncode == 0 else []
        if not pids:
            return len(killed)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    raise HostsError(f"processes in {netns} survive SIGKILL: {pids}")


@contextmanager
def _machine_lock() -> Iterator[None]:
    STATE_ROOT.mkdir(mode=0o755, exist_ok=True)
    with open(STATE_ROOT / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _free_subnet() -> int:
    """A third octet N for which 10.213.N.0/24 is on no interface of this machine."""
    used = set(re.findall(rf"inet {re.escape(NETWORK)}\.(\d+)\.", _ip("-o", "-4", "addr", "show")))
    for third in range(256):
        if str(third) not in used:
            return third
    raise HostsError(f"no free subnet in {NETWORK}.0.0/16")


def _ip(*args: str, check: bool = True) -> str:
    done = _run(["ip", *args])
    if check and done.returncode != 0:
        raise HostsError(f"ip {' '.join(args)}: {_first_line(done.stderr)}")
    return done.stdout


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "no message")


# ----------------------------------------------------------------------
# As a script


def _show(count: int, postgres: bool) -> int:
    with Hosts(count) as hosts:
        url = hosts.postgres_url() if postgres else None
        print(f"bridge {hosts.bridge} {hosts.gateway} ({hosts.subnet}), state in {hosts.state}")
        for host in hosts:
            shown = hosts.run(host, ["hostname"], capture_output=True, text=True, check=True).stdout.strip()
            line = f"{host.name}: netns {host.netns}, address {host.address}, link {host.link}, hostname {shown}"
            if url:
                ready = hosts.run(
                    host, ["pg_isready", "-h", hosts.gateway, "-p", "5432"], capture_output=True, text=True,
                )
                line += f", {url}: {ready.stdout.strip()}"
            print(line)
    print("removed")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="say whether hosts can be made here")
    show = sub.add_parser("show", help="make hosts, show them, remove them")
    show.add_argument("--hosts", type=int, default=3)
    show.add_argument("--postgres", action="store_true", help="also start a server every host reaches")
    sub.add_parser("cleanup", help="remove hosts left by runs that died")
    args = parser.parse_args(argv)
    reason = postgres_unavailable() if getattr(args, "postgres", False) else unavailable()
    if reason:
        print(f"hosts: error: cannot make hosts here: {reason}", file=sys.stderr)
        return 2
    if args.command == "check":
        print("hosts can be made here" + ("" if postgres_unavailable() else ", with a throwaway PostgreSQL server"))
        return 0
    if args.command == "cleanup":
        removed = cleanup_leftovers()
        print(f"removed {', '.join(removed)}" if removed else "nothing left over")
        return 0
    return _show(args.hosts, args.postgres)


if __name__ == "__main__":
    sys.exit(main())
