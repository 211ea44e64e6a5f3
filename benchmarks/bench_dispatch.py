"""Dispatch latency and idle CPU of `bgproc daemon`; throughput and time to run(),
with the fork server and with a fresh interpreter per run.

    python benchmarks/bench_dispatch.py [--runs 20] [--idle 10]
    python benchmarks/bench_dispatch.py --fork [--throughput 300] [--planned 60] [--rounds 2]

``--fork`` measures, for runs forked by the fork server and for runs in a
fresh interpreter (``BGPROC_FORK_SERVER=0``), interleaved over ``--rounds``
rounds on fresh databases:

- throughput: ``--throughput`` no-op ``--now`` requests made before
  ``bgproc daemon --once --workers 2`` starts, drained; runs/s from the
  first run's recorded start to the last one's recorded end (every run in its
  own process, start and outcome recorded);
- time to ``run()``: ``--planned`` runs planned 250 ms apart for a running
  ``daemon --workers 2``, from each run's planned instant to its ``run()``
  entered (median, p99; never early: the earliest is shown);

and prints the ratios fork / spawn.

Measured in one run, against a baseline taken in the same run:

- baseline: a bare ``python -c`` started with subprocess until its first
  statement: what any dispatcher that starts a fresh interpreter per run
  (cron, a fork-exec scheduler, bgproc without its spare worker) pays at
  least;
- for a daemon with its spare worker and one started with ``--no-spare``,
  each idle between runs: request row written -> claimed (the wake-up FIFO
  and the claim transaction; ``created_at`` is taken before validation, so
  this is an upper bound) and claimed -> the task's ``run()`` entered (the
  worker's start-up and imports), with ratios to the baseline;
- idle CPU of the daemon and its spare worker from /proc/<pid>/stat over
  ``--idle`` seconds, and how often each woke up.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TASKS = ROOT / "tests" / "daemon_tasks" / "tasks.py"


def bgproc(db: Path, *args: str) -> str:
    env = dict(os.environ, BGPROC_DB=str(db))
    done = subprocess.run(
        [sys.executable, "-m", "bgproc", *args], env=env, cwd=ROOT, capture_output=True, text=True,
        check=True,
    )
    return done.stdout


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def wakeups(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    return 0


def utc_seconds(text: str) -> float:
    """Seconds since the epoch of the store's fixed-width UTC text."""
    whole = time.mktime(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    return whole + float("0." + text[20:26])


def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.001)
    raise TimeoutError("benchmark step did not complete")


def baseline_ms(runs: int, tmp: str) -> list[float]:
    """Bare interpreter start-up: subprocess start to its first statement."""
    values = []
    for i in range(runs):
        stamp = Path(tmp) / f"bare-{i}"
        started = time.time()
        subprocess.run([sys.executable, "-c", f"import time; open({str(stamp)!r}, 'w').write(repr(time.time()))"],
                       check=True)
        values.append((float(stamp.read_text()) - started) * 1000)
    return values


def dispatch_ms(tmp: str, runs: int, spare: bool) -> tuple[list[float], list[float], subprocess.Popen]:
    """(request written -> claimed, claimed -> run() entered) per run, and the daemon."""
    db = Path(tmp) / f"bench-{'spare' if spare else 'nospare'}.db"
    bgproc(db, "register", str(TASKS))
    env = dict(os.environ, BGPROC_DB=str(db))
    daemon = subprocess.Popen(
        [sys.executable, "-m", "bgproc", "daemon", "--workers", "2", *([] if spare else ["--no-spare"])],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    conn = sqlite3.connect(db)
    wakes, boots = [], []
    try:
        time.sleep(1.5)  # let it start and go idle
        for i in range(runs):
            stamp = Path(tmp) / f"stamp-{spare}-{i}"
            request = int(bgproc(db, "schedule", "Sleep", "--now", "-p", "seconds=0", "-p", f"stamp_file={stamp}"))
            wait_for(lambda stamp=stamp: stamp.exists() and stamp.read_text().strip())
            started = float(stamp.read_text())

            def finished(request: int = request):
                row = conn.execute(
                    "SELECT runs.status, runs.started_at, requests.created_at FROM runs "
                    "JOIN requests ON requests.id = runs.request_id WHERE request_id = ?",
                    (request,),
                ).fetchone()
                return row if row and row[0] != "running" else None

            _, claimed_at, created_at = wait_for(finished)
            claimed = utc_seconds(claimed_at)
            wakes.append((claimed - utc_seconds(created_at)) * 1000)
            boots.append((started - claimed) * 1000)
            time.sleep(0.2)  # idle again before the next
    finally:
        conn.close()
    return wakes, boots, daemon


def make_requests(db: Path, task: str, count: int, params: list[object] | None = None,
                  at: list[float] | None = None) -> None:
    """``count`` requests through one open store (``bgproc schedule``'s code, without a
    process per request): ``--now``, or each planned at ``at[i]`` (epoch seconds)."""
    from datetime import UTC, datetime

    from bgproc import requests
    from bgproc.clock import utcnow
    from bgproc.store import open_store
    from bgproc.timing import TimingOptions

    with open_store(db, create=False) as store:
        for i in range(count):
            timing = TimingOptions(now=True) if at is None else TimingOptions(at=datetime.fromtimestamp(at[i], UTC))
            now = utcnow()
            planned = requests.plan(
                store, task, now=now, default_zone="UTC", timing=timing,
                params=None if params is None else params[i],
            )
            requests.create(store, planned, now)


def throughput(tmp: str, count: int, isolation: str, round_no: int) -> float:
    """Runs/s of ``daemon --once --workers 2`` draining ``count`` no-op requests."""
    db = Path(tmp) / f"through-{isolation}-{round_no}.db"
    bgproc(db, "register", str(TASKS))
    make_requests(db, "Noop", count)
    env = dict(os.environ, BGPROC_DB=str(db), BGPROC_FORK_SERVER="1" if isolation == "fork" else "0")
    subprocess.run(
        [sys.executable, "-m", "bgproc", "daemon", "--once", "--workers", "2"], env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=600,
    )
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT status, started_at, ended_at FROM runs").fetchall()
    assert len(rows) == count and all(r[0] == "success" for r in rows), f"{isolation}: not all runs succeeded"
    first = min(utc_seconds(r[1]) for r in rows)
    last = max(utc_seconds(r[2]) for r in rows)
    return count / (last - first)


def time_to_run(tmp: str, count: int, isolation: str, round_no: int) -> list[float]:
    """Milliseconds from each run's planned instant to its run() entered."""
    db = Path(tmp) / f"planned-{isolation}-{round_no}.db"
    bgproc(db, "register", str(TASKS))
    env = dict(os.environ, BGPROC_DB=str(db), BGPROC_FORK_SERVER="1" if isolation == "fork" else "0")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "bgproc", "daemon", "--workers", "2"], env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    stamps = [Path(tmp) / f"planned-{isolation}-{round_no}-{i}" for i in range(count)]
    try:
        time.sleep(2.0)  # started, its fork server ready, idle
        first = time.time() + 1.0
        at = [round(first + 0.25 * i, 3) for i in range(count)]
        sys.path.append(str(TASKS.parent.parent))
        from daemon_tasks.tasks import SleepParams

        make_requests(db, "Sleep", count, [SleepParams(seconds=0, stamp_file=str(s)) for s in stamps], at)
        wait_for(lambda: all(s.exists() and s.read_text().strip() for s in stamps), at[-1] - time.time() + 30)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
    with sqlite3.connect(db) as conn:
        planned = [utc_seconds(r[0]) for r in conn.execute("SELECT planned_at FROM runs ORDER BY request_id")]
    return [(float(s.read_text()) - p) * 1000 for s, p in zip(stamps, planned, strict=True)]


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def fork_vs_spawn(args: argparse.Namespace) -> None:
    med = statistics.median
    rates: dict[str, list[float]] = {"fork": [], "spawn": []}
    delays: dict[str, list[float]] = {"fork": [], "spawn": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_no in range(args.rounds):
            for isolation in ("fork", "spawn") if round_no % 2 == 0 else ("spawn", "fork"):
                rates[isolation].append(throughput(tmp, args.throughput, isolation, round_no))
                delays[isolation] += time_to_run(tmp, args.planned, isolation, round_no)
                print(
                    f"round {round_no + 1} {isolation:5}: {rates[isolation][-1]:6.1f} runs/s; planned -> run() "
                    f"median {med(delays[isolation][-args.planned:]):6.1f} ms", flush=True,
                )
    print(f"{args.throughput} no-op --now runs, daemon --once --workers 2, {args.rounds} rounds interleaved:")
    for isolation in ("fork", "spawn"):
        values = delays[isolation]
        print(
            f"  {isolation:5}: {med(rates[isolation]):6.1f} runs/s "
            f"(rounds {', '.join(f'{r:.1f}' for r in rates[isolation])}); "
            f"planned -> run() median {med(values):.1f} ms, p99 {p99(values):.1f} ms, min {min(values):.1f} ms "
            f"({len(values)} runs)"
        )
    print(
        f"  fork / spawn: throughput {med(rates['fork']) / med(rates['spawn']):.2f}x; time to run() median "
        f"{med(delays['spawn']) / med(delays['fork']):.2f}x faster, "
        f"p99 {p99(delays['spawn']) / p99(delays['fork']):.2f}x"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--fork", action="store_true", help="fork server against a fresh interpreter per run")
    parser.add_argument("--throughput", type=int, default=300)
    parser.add_argument("--planned", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if args.fork:
        fork_vs_spawn(args)
        return 0
    med = statistics.median

    with tempfile.TemporaryDirectory() as tmp:
        base = med(baseline_ms(args.runs, tmp))
        print(f"baseline: bare python start-up to its first statement, median {base:.1f} ms")
        for spare in (True, False):
            wakes, boots, daemon = dispatch_ms(tmp, args.runs, spare)
            label = "with the spare worker" if spare else "with --no-spare     "
            print(
                f"{label}: written -> claimed median {med(wakes):6.1f} ms (max {max(wakes):.1f}); "
                f"claimed -> run() median {med(boots):6.1f} ms (max {max(boots):.1f}) "
                f"= {med(boots) / base:.2f} x baseline"
            )
            try:
                if spare:
                    idle(daemon, args.idle)
            finally:
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(30)
    return 0


def idle(daemon: subprocess.Popen, seconds: float) -> None:
    time.sleep(1.0)
    hz = os.sysconf("SC_CLK_TCK")
    watched = {"daemon": daemon.pid, **{f"spare worker {p}": p for p in children(daemon.pid)}}
    before = {name: (cpu_ticks(pid), wakeups(pid)) for name, pid in watched.items()}
    m0 = time.monotonic()
    time.sleep(seconds)
    m1 = time.monotonic()
    for name, pid in watched.items():
        ticks, woke = cpu_ticks(pid) - before[name][0], wakeups(pid) - before[name][1]
        used = ticks / hz
        print(
            f"  idle {name} over {m1 - m0:.1f}s: {ticks} clock ticks = {used * 1000:.0f} ms CPU "
            f"({100 * used / (m1 - m0):.2f}%), {woke} wake-ups"
        )


if __name__ == "__main__":
    sys.exit(main())
