"""Several hosts on one machine (benchmarks/hosts.py), and the proof on three hosts in
its short form (benchmarks/hosts_soak.py): a daemon in each host on one database, a
host lost mid-run and brought back, nothing lost or doubled. Needs root and
iproute2 (``ip netns``); skipped with the reason where either is missing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import hosts as hostlib  # noqa: E402 - from benchmarks/
import hosts_soak  # noqa: E402
from soak_common import parse_figures  # noqa: E402

# A TCP server that answers each connection with its host's name.
SERVER = """
import socket, sys
server = socket.create_server(("0.0.0.0", 8765))
print("listening", flush=True)
while True:
    conn, _ = server.accept()
    conn.sendall(socket.gethostname().encode())
    conn.close()
"""
CLIENT = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], 8765), timeout=1.5) as conn:
        print(conn.recv(100).decode())
except OSError as exc:
    print(f"unreachable: {exc}")
"""


@pytest.fixture(scope="module")
def machine() -> None:
    reason = hostlib.unavailable()
    if reason:
        pytest.skip(f"hosts cannot be made here: {reason}")


@pytest.fixture
def hosts(machine: None) -> Iterator[hostlib.Hosts]:
    with hostlib.Hosts(3) as made:
        yield made


def owned_names(prefix: str) -> list[str]:
    return [name for name in hostlib._owned_names() if name.startswith(prefix)]


def ask(hosts: hostlib.Hosts, host: int, address: str) -> str:
    done = hosts.run(host, [sys.executable, "-c", CLIENT, address], capture_output=True, text=True, timeout=30)
    return done.stdout.strip()


def test_hosts_have_their_own_names_and_addresses_reach_each_other_and_can_be_cut_off(
    hosts: hostlib.Hosts,
) -> None:
    names = [hosts.run(h, ["hostname"], capture_output=True, text=True).stdout.strip() for h in hosts]
    assert names == ["host-a", "host-b", "host-c"]
    assert len({h.address for h in hosts}) == 3
    assert os.uname().nodename not in names  # the root namespace keeps its own
    server = hosts.popen(0, [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "listening"
        assert server.pid in hosts.pids(0)
        assert ask(hosts, 1, hosts[0].address) == "host-a"
        assert ask(hosts, 2, hosts[0].address) == "host-a"
        hosts.cut(hosts[0])
        assert ask(hosts, 1, hosts[0].address).startswith("unreachable")
        hosts.restore(hosts[0])
        assert ask(hosts, 1, hosts[0].address) == "host-a"
        assert hosts.kill(0) >= 1  # the machine lost: its processes gone
        assert server.wait(timeout=10) == -9 and hosts.pids(0) == []
    finally:
        server.kill()
        server.wait()
    prefix = hosts.prefix
    assert owned_names(prefix)
    hosts.close()
    assert owned_names(prefix) == []


def test_hosts_left_by_a_run_that_died_are_removed_by_the_next(machine: None, tmp_path: Path) -> None:
    crash = (
        "import os, subprocess, sys; sys.path.insert(0, sys.argv[1]); import hosts; h = hosts.Hosts(2); h.open(); "
        "h.popen(1, ['sleep', '300'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
        "print(h.prefix, flush=True); os._exit(0)"
    )
    done = subprocess.run([sys.executable, "-c", crash, str(BENCHMARKS)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    prefix = done.stdout.strip()
    assert len(owned_names(prefix)) >= 4  # two namespaces, a bridge, two veths
    with hostlib.Hosts(1) as mine:
        assert owned_names(prefix) == []  # the dead run's hosts, and what ran in them, are gone
        assert owned_names(mine.prefix)  # a live run's own are not leftovers
        hostlib.cleanup_leftovers()
        assert owned_names(mine.prefix)


@pytest.mark.daemon  # starts a PostgreSQL server
def test_postgres_server_on_the_bridge_is_reached_from_every_host_and_stopped_at_the_end(machine: None) -> None:
    reason = hostlib.postgres_unavailable()
    if reason:
        pytest.skip(f"no throwaway PostgreSQL server here: {reason}")
    with hostlib.Hosts(3) as hosts:
        url = hosts.postgres_url()
        assert url == f"postgresql://postgres@{hosts.gateway}:5432/bgproc"
        for host in hosts:
            seen = hosts.run(host, ["psql", url, "-Atc", "SELECT inet_client_addr()"], capture_output=True,
                             text=True, timeout=60)
            assert seen.stdout.strip() == host.address, seen.stderr
        data = hosts.state / "pg" / "data"
        assert (data / "postmaster.pid").exists()
    assert not data.exists()
    gone = subprocess.run(["pg_isready", "-h", hosts.gateway, "-p", "5432", "-t", "2"], capture_output=True)
    assert gone.returncode != 0


def test_postgres_target_on_loopback_is_refused_in_one_line(machine: None) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "hosts_soak.py"), "--db", "postgresql://postgres@127.0.0.1:5432/test"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "hosts cannot reach this machine's loopback" in done.stderr


@pytest.mark.daemon
@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_three_hosts_short_form(machine: None, store: str, tmp_path: Path) -> None:
    """A daemon in each of three hosts on one database; the last host lost mid-run (on
    SQLite its daemon and workers SIGKILLed; on PostgreSQL its link down) and brought
    back: no duplicate, no run left running, every one-time request ran, the lost
    host's runs interrupted by the others within the heartbeat expiry, and three
    daemons do more than one on the same work."""
    where = ["--keep", str(tmp_path / "soak")]
    if store == "postgres":
        reason = hostlib.postgres_unavailable() or hosts_soak.postgres_refusal()
        if reason:
            pytest.skip(reason)
        where.append("--postgres")
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "hosts_soak.py"), "--seconds", "20", "--one-time", "150",
         "--recurring", "12", "--throughput", "30", "--expiry", "4", *where],
        capture_output=True, text=True, timeout=300,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    figures = parse_figures(done.stdout)
    for name in ("duplicates", "runs left running", "one-time requests never run", "slots unaccounted",
                 "daemons that stopped badly"):
        assert figures[name] == "0", report
    cut = "kill" if store == "sqlite" else "link"
    going = int(figures[f"runs going on the lost host (host-c, {cut})"])
    assert going >= 1, report
    assert figures["of them interrupted"] == figures["of them for missing heartbeats"] == str(going), report
    assert int(figures["occurrences planned"]) > 150 + 2 * 30, report  # and the every-second slots
    assert float(figures["throughput ratio, 3 daemons / 1"]) > 1, report


# In a host: holds a row locked in a transaction, is cut off, then tries the store again.
CUT_CLIENT = """
import sys, time
from bgproc.errors import StoreIOError
from bgproc.store.postgres.store import PostgresStore
store = PostgresStore.open(sys.argv[1])
try:
    with store.transaction():
        store.execute("UPDATE probe SET n = n + 1")
        print("locked", flush=True)
        sys.stdin.readline()  # the link is cut meanwhile
        began = time.monotonic()
        try:
            store.live_daemons()
        except StoreIOError as exc:
            print(f"lost after {time.monotonic() - began:.1f}s: {exc}", flush=True)
            raise SystemExit(0)
        print("answered", flush=True)
except StoreIOError:
    pass
"""


@pytest.mark.daemon  # starts a PostgreSQL server
def test_a_store_cut_off_from_its_server_fails_in_bounded_time_and_the_server_frees_its_locks(
    machine: None,
) -> None:
    """A link down drops packets silently: the store's call ends with StoreIOError
    within its user timeout (not TCP's quarter of an hour), and the server ends the
    lost client's transaction, so the row it held is another's within seconds."""
    reason = hostlib.postgres_unavailable()
    if reason:
        pytest.skip(f"no throwaway PostgreSQL server here: {reason}")
    import psycopg

    from bgproc.store.postgres import network

    with hostlib.Hosts(1) as hosts:
        url = hosts.postgres_url()
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("CREATE TABLE probe (n int); INSERT INTO probe VALUES (0)")
            client = hosts.popen(0, [sys.executable, "-c", CUT_CLIENT, url], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
            try:
                assert client.stdout is not None and client.stdin is not None
                assert client.stdout.readline().strip() == "locked"
                hosts.cut(0)
                client.stdin.write("go\n")
                client.stdin.flush()
                cut = time.monotonic()
                admin.execute("SET lock_timeout = '40s'")
                admin.execute("UPDATE probe SET n = n + 10")  # waits for the lost client's lock
                freed = time.monotonic() - cut
                said, _ = client.communicate(timeout=60)
            finally:
                client.kill()
                client.wait()
            assert said.startswith("lost after "), said
            lost = float(said.split()[2].rstrip("s:"))
            assert lost <= network.USER_TIMEOUT_S + network.KEEPALIVE_IDLE_S + 5, said
            assert freed <= network.IDLE_IN_TRANSACTION_S + 5
            assert admin.execute("SELECT n FROM probe").fetchone() == (10,)  # the lost transaction undone
