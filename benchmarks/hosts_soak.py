"""Proof on three hosts: daemons on several hosts share one database, a host is lost
mid-run and comes back, and no run is lost or doubled.

    python benchmarks/hosts_soak.py [--seconds 300] [--hosts 3] [--one-time 1000]
        [--recurring 36] [--throughput 200] [--db PATH_OR_URL | --postgres]
        [--cut kill|link] [--expiry S] [--seed N] [--keep DIR]

Makes ``--hosts`` hosts on this machine (benchmarks/hosts.py: network
namespaces on a bridge, each with its own address and host name, so the
daemons judge each other as hosts elsewhere, by heartbeats, never by pid), and
runs one ``bgproc daemon`` (2 workers) in each, on one database: a SQLite file
(the default, or ``--db PATH``; the hosts share the file system), or a
PostgreSQL URL every host reaches (``--db postgresql://...``, or ``--postgres``
for a throwaway server on the hosts' bridge; refused in one line while bgproc
has no PostgreSQL store).

1. Throughput: ``--throughput`` one-time requests (a 300 ms body each) run by
   one daemon, then as many again by one daemon in each host; runs per second
   from the runs' own start and end, and the ratio, in the same run.
2. The soak: ``--recurring`` every-second requests, ``--one-time`` ``--now``
   requests fed over the first half; at 30% of ``--seconds`` the last host is
   lost while it has runs going. ``--cut kill`` (the default on SQLite, where the
   hosts share a file and a link means nothing): every process in the host is
   SIGKILLed, the daemon and its workers, and the host stays silent.
   ``--cut link`` (the default on PostgreSQL): its link goes down, its daemon
   and workers still running. Once the other daemons have recorded the lost
   host's runs ``interrupted``, the host comes back (a new daemon; or its link up).
3. At the end the recurring requests are unscheduled, the daemons stopped, one
   ``daemon --once`` runs what is left, and everything is counted
   (soak_common.py, shared with soak.py).

It prints, and exits 1 unless they hold: occurrences planned, runs recorded,
duplicates (0), the lost host's runs all ``interrupted`` by another daemon for
missing heartbeats within the heartbeat expiry (plus two heartbeats and a
margin for a loaded machine) and not before half of it, runs left ``running``
(0), one-time requests never run (0), slots unaccounted (0), and the throughput
of all the daemons against one. ``--expiry S`` shortens the daemons' heartbeat
expiry (and heartbeat, S/16) through bgproc's test hook ``BGPROC_TEST_DAEMON``;
without it they use the real ones (5 s, 60 s). CI runs a short form
(tests/test_hosts.py). Needs root and iproute2.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import hosts as hostlib
from soak_common import HERE, bgproc, count, env, executing, feed, print_figures, read_outcome, utc

WORKERS = 2
THROUGHPUT_SLEEP_MS = 300
# How another daemon words a run it interrupted because its daemon's heartbeat expired.
HEARTBEAT_DETAIL = "stopped heartbeating"
MUST_BE_ZERO = ("duplicates", "runs left running", "one-time requests never run", "slots unaccounted",
                "daemons that stopped badly")


class Refused(Exception):
    """A bad argument or an unfit machine: one line, exit 2."""


# ----------------------------------------------------------------------
# The database target


def is_postgres(target: str) -> bool:
    return target.split(":", 1)[0].lower() in ("postgresql", "postgres")


def postgres_refusal() -> str | None:
    """Why bgproc cannot open a PostgreSQL URL here (its ``postgres`` extra is not
    installed), or None."""
    if importlib.util.find_spec("psycopg") is None:
        return "bgproc's PostgreSQL store needs its extra: pip install 'bgproc[postgres]'"
    return None


def check_target(args: argparse.Namespace) -> None:
    """Refuse what cannot work, before any host is made."""
    postgres = args.postgres or (args.db is not None and is_postgres(args.db))
    if postgres and args.db is not None and urlsplit(args.db).hostname in (None, "localhost", "127.0.0.1", "::1"):
        raise Refused(
            f"{args.db}: the hosts cannot reach this machine's loopback; give a server address every host "
            "reaches, or --postgres for a throwaway server on the hosts' bridge"
        )
    if args.db is not None and not postgres and Path(args.db).exists():
        raise Refused(f"{args.db} exists; give a new file (the soak counts everything in its database)")
    if args.cut == "link" and not postgres:
        raise Refused("--cut link means nothing on a SQLite file the hosts share; use --cut kill")
    reason = hostlib.postgres_unavailable() if args.postgres else hostlib.unavailable()
    if reason:
        raise Refused(f"cannot make hosts here: {reason}")
    if postgres:
        refusal = postgres_refusal()
        if refusal:
            raise Refused(refusal)


# ----------------------------------------------------------------------
# Daemons in hosts


class HostDaemons:
    """One ``bgproc daemon`` per host, its output in a log file."""

    def __init__(self, hosts: hostlib.Hosts, target: str, logs: Path, extra_env: dict[str, str]) -> None:
        self.hosts, self.target, self.logs, self.extra_env = hosts, target, logs, extra_env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.started = 0
        self.lost: list[int] = []  # exit statuses of daemons killed with their host

    def start(self, host: hostlib.Host) -> None:
        self.started += 1
        with open(self.logs / f"daemon-{self.started}-{host.name}.log", "wb") as log:
            self.procs[host.name] = self.hosts.popen(
                host, [sys.executable, "-m", "bgproc", "daemon", "--workers", str(WORKERS), "--grace", "10"],
                env=env(self.target, **self.extra_env), cwd=HERE, stdout=log, stderr=subprocess.STDOUT,
            )

    def kill_host(self, host: hostlib.Host) -> None:
        """The machine is lost: its daemon and its workers SIGKILLed, nothing left."""
        self.hosts.kill(host)
        proc = self.procs.pop(host.name)
        self.lost.append(proc.wait(timeout=60))

    def stop(self) -> list[int]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=120) for proc in self.procs.values()]
        self.procs.clear()
        return codes


def daemon_env(expiry: float | None) -> tuple[dict[str, str], float, float]:
    """The daemons' extra environment, heartbeat and heartbeat expiry."""
    if expiry is None:
        from bgproc.daemon import DaemonConfig

        real = DaemonConfig()
        return {}, real.heartbeat_s, real.heartbeat_expiry_s
    heartbeat = expiry / 16
    return {"BGPROC_TEST_DAEMON": f"heartbeat_s={heartbeat:g},heartbeat_expiry_s={expiry:g}"}, heartbeat, expiry


# ----------------------------------------------------------------------
# Watching runs from outside


def runs_json(target: str, *args: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = json.loads(bgproc(target, "monitor", "--json", "--limit", "100000", *args))
    return runs


def wait_for(what: str, predicate: Any, timeout: float, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"hosts soak: gave up waiting {timeout:g}s for {what}")
        time.sleep(interval)


def new_requests(target: str, markers: Path, count: int, sleep_ms: int) -> list[int]:
    from soak_tasks import SoakParams, SoakTask

    import bgproc as api

    return [api.start_new(SoakTask, SoakParams(markers=str(markers), sleep_ms=sleep_ms), db=target)
            for _ in range(count)]


# ----------------------------------------------------------------------
# 1. Throughput: one daemon, then one in each host, on the same work


def throughput(hosts: hostlib.Hosts, daemons: HostDaemons, target: str, markers: Path, count: int,
               on: list[hostlib.Host]) -> tuple[float, list[int]]:
    """Runs per second of ``count`` one-time requests run by a daemon in each of ``on``,
    from the first run's start to the last one's end; and the requests."""
    made = new_requests(target, markers, count, THROUGHPUT_SLEEP_MS)
    ids = set(made)
    for host in on:
        daemons.start(host)

    def ended() -> list[dict[str, Any]] | None:
        runs = [r for r in executing(runs_json(target)) if r["request_id"] in ids]
        return runs if len(runs) == count and all(r["ended_at"] for r in runs) else None

    runs = wait_for(f"{count} runs on {len(on)} daemon(s)", ended, timeout=60 + count * 2.0, interval=1.0)
    if any(code != 0 for code in daemons.stop()):
        raise SystemExit(f"hosts soak: a daemon stopped badly in the throughput run (logs in {daemons.logs})")
    first = min(utc(r["started_at"]) for r in runs)
    last = max(utc(r["ended_at"]) for r in runs)
    return count / max((last - first).total_seconds(), 1e-6), made


# ----------------------------------------------------------------------
# 2. The soak, with a host lost and brought back


@dataclass
class Loss:
    """A host lost: its daemon's id then, and when (wall clock, this machine's: the
    other daemons' records of when they interrupted its runs are compared with it)."""

    host: hostlib.Host
    how: str
    daemon_id: str
    at: float = 0.0


def lose_host(hosts: hostlib.Hosts, daemons: HostDaemons, target: str, host: hostlib.Host, how: str) -> Loss:
    """Cut ``host`` off once its daemon has runs going. A run seen going may end before
    the cut (forked runs end within their sleep): with none recorded running once
    cut, the host is brought back and cut again at its next run."""
    while True:
        mine = f"{host.name}:{daemons.procs[host.name].pid}:"

        def going(mine: str = mine) -> str | None:
            running = runs_json(target, "--status", "running")
            ids = {r["daemon_id"] for r in running if (r["daemon_id"] or "").startswith(mine)}
            return ids.pop() if len(ids) == 1 else None

        loss = Loss(host, how, wait_for(f"a run going on {host.name}", going, timeout=60, interval=0.2))
        if how == "kill":
            daemons.kill_host(host)
        else:
            hosts.cut(host)
        loss.at = time.time()
        if runs_of(target, loss, "--status", "running"):
            return loss
        bring_back(hosts, daemons, loss)


def runs_of(target: str, loss: Loss, *args: str) -> list[dict[str, Any]]:
    return [r for r in runs_json(target, *args) if r["daemon_id"] == loss.daemon_id]


def bring_back(hosts: hostlib.Hosts, daemons: HostDaemons, loss: Loss) -> None:
    if loss.how == "kill":
        daemons.start(loss.host)  # the machine rebooted: a new daemon
    else:
        hosts.restore(loss.host)


def wait_interrupted(target: str, loss: Loss, expiry: float) -> None:
    wait_for(f"the runs of {loss.host.name} to end", lambda: not runs_of(target, loss, "--status", "running"),
             timeout=expiry * 3 + 60)


def loss_figures(target: str, loss: Loss, heartbeat: float, expiry: float) -> tuple[dict[str, Any], list[str]]:
    """What became of the lost host's runs, and which of its promises failed. Its runs
    are those its daemon had going at the cut: all of its runs but those it recorded
    as ended before it was cut off."""
    lost = [r for r in runs_of(target, loss)
            if r["status"] in ("running", "interrupted") or utc(r["ended_at"]).timestamp() >= loss.at]
    interrupted = [r for r in lost if r["status"] == "interrupted"]
    by_heartbeat = [r for r in interrupted if HEARTBEAT_DETAIL in (r["detail"] or "")]
    delays = [utc(r["ended_at"]).timestamp() - loss.at for r in interrupted]
    bound = expiry + 2 * heartbeat + max(2.0, expiry / 10)
    figures: dict[str, Any] = {
        f"runs going on the lost host ({loss.host.name}, {loss.how})": len(lost),
        "of them interrupted": len(interrupted),
        "of them for missing heartbeats": len(by_heartbeat),
        "interrupted after the cut, s (min-max)": f"{min(delays, default=0):.1f}-{max(delays, default=0):.1f}",
        "heartbeat expiry, s (bound)": f"{expiry:g} ({expiry / 2:g}-{bound:g})",
    }
    bad = []
    if not lost:
        bad.append("no run was going on the lost host")
    if len(by_heartbeat) != len(lost):
        bad.append("a lost run not interrupted for missing heartbeats")
    if delays and (min(delays) < expiry / 2 or max(delays) > bound):
        bad.append("a lost run interrupted outside the heartbeat expiry")
    return figures, bad


@dataclass
class Soak:
    hosts: hostlib.Hosts
    daemons: HostDaemons
    target: str
    markers: Path
    args: argparse.Namespace
    expiry: float
    one_time: list[int] = field(default_factory=list)
    recurring: list[int] = field(default_factory=list)

    def run(self, rng: random.Random) -> tuple[Loss, list[int]]:
        from soak_tasks import SoakParams, SoakTask

        import bgproc as api

        args = self.args
        self.recurring = [
            api.schedule(SoakTask, SoakParams(markers=str(self.markers), sleep_ms=rng.randint(0, 300)),
                         db=self.target, every="1s")
            for _ in range(args.recurring)
        ]
        for host in self.hosts:
            self.daemons.start(host)
        stop = threading.Event()
        feeder = threading.Thread(
            target=feed, args=(self.target, self.markers, args.one_time, args.seconds / 2, stop, self.one_time),
            daemon=True,
        )
        began = time.monotonic()
        feeder.start()
        time.sleep(args.seconds * 0.3)
        loss = lose_host(self.hosts, self.daemons, self.target, self.hosts[-1], args.cut)
        print(f"lost {loss.host.name} ({loss.how}), its daemon {loss.daemon_id}", flush=True)
        wait_interrupted(self.target, loss, self.expiry)
        bring_back(self.hosts, self.daemons, loss)
        print(f"{loss.host.name} back after {time.time() - loss.at:.1f}s", flush=True)
        time.sleep(max(0.0, args.seconds - (time.monotonic() - began)))
        feeder.join()
        bgproc(self.target, "unschedule", *map(str, self.recurring))
        codes = self.daemons.stop()
        # What is left due (one-time requests fed last) runs now, in the first host.
        done = self.hosts.run(
            0, [sys.executable, "-m", "bgproc", "daemon", "--once", "--workers", str(WORKERS)],
            env=env(self.target, **self.daemons.extra_env), cwd=HERE, capture_output=True, text=True, timeout=300,
        )
        codes.append(done.returncode)
        return loss, codes


# ----------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--one-time", type=int, default=1000)
    parser.add_argument("--recurring", type=int, default=36)
    parser.add_argument("--throughput", type=int, default=200, help="one-time requests per throughput run")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--db", default=None, help="a new SQLite file, or a PostgreSQL URL every host reaches")
    where.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL server on the hosts' bridge")
    parser.add_argument("--cut", choices=("kill", "link"), default=None,
                        help="how the host is lost (default: kill on SQLite, link on PostgreSQL)")
    parser.add_argument("--expiry", type=float, default=None, help="the daemons' heartbeat expiry, s (test hook)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="keep the database and logs in DIR")
    args = parser.parse_args(argv)
    if args.cut is None:
        args.cut = "link" if args.postgres or (args.db and is_postgres(args.db)) else "kill"
    if args.hosts < 2:
        parser.error("--hosts: at least 2 (one is lost)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        check_target(args)
    except Refused as refused:
        print(f"hosts_soak: error: {refused}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    work = args.keep or Path(tempfile.mkdtemp(prefix="bgproc-hosts-soak-"))
    work.mkdir(mode=0o700, parents=True, exist_ok=True)
    markers, logs = work / "markers", work / "logs"
    markers.mkdir(mode=0o700, exist_ok=True)
    logs.mkdir(mode=0o700, exist_ok=True)
    sys.path.insert(0, str(HERE))
    with hostlib.Hosts(args.hosts) as hosts:
        target = hosts.postgres_url() if args.postgres else (args.db or str(work / "soak.db"))
        return soak(args, hosts, target, work, random.Random(seed), seed)


def soak(args: argparse.Namespace, hosts: hostlib.Hosts, target: str, work: Path, rng: random.Random,
         seed: int) -> int:
    markers, logs = work / "markers", work / "logs"
    extra_env, heartbeat, expiry = daemon_env(args.expiry)
    names = ", ".join(f"{h.name} {h.address}" for h in hosts)
    print(f"hosts soak: {args.seconds:g}s, {len(hosts)} hosts ({names}), seed {seed}, on {target}, in {work}",
          flush=True)
    bgproc(target, "register", str(HERE / "soak_tasks.py"))
    daemons = HostDaemons(hosts, target, logs, extra_env)
    one, first_ids = throughput(hosts, daemons, target, markers, args.throughput, [hosts[0]])
    every, second_ids = throughput(hosts, daemons, target, markers, args.throughput, list(hosts))
    run = Soak(hosts, daemons, target, markers, args, expiry)
    loss, codes = run.run(rng)
    bgproc(target, "monitor", "--limit", "1")  # settles what an observer can settle

    one_time = first_ids + second_ids + run.one_time
    figures: dict[str, Any] = dict(count(read_outcome(target), markers, one_time, run.recurring))
    figures["daemons started"] = daemons.started
    figures["daemons that stopped badly"] = sum(1 for c in codes if c != 0)
    lost, bad = loss_figures(target, loss, heartbeat, expiry)
    figures.update(lost)
    figures["throughput, 1 daemon, runs/s"] = f"{one:.1f}"
    figures[f"throughput, {len(hosts)} daemons, runs/s"] = f"{every:.1f}"
    figures[f"throughput ratio, {len(hosts)} daemons / 1"] = f"{every / one:.2f}"
    print_figures(figures)
    bad = [name for name in MUST_BE_ZERO if figures[name]] + bad
    if every <= one:
        bad.append(f"{len(hosts)} daemons no faster than 1")
    if bad:
        print(f"hosts soak FAILED: {', '.join(bad)} (kept in {work})")
        return 1
    print("hosts soak passed: no duplicates, no run left running, every one-time request ran, "
          "the lost host's runs interrupted for missing heartbeats")
    return 0


if __name__ == "__main__":
    sys.exit(main())
