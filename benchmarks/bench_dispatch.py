"""Dispatch latency and idle CPU of `bgproc daemon`.

    python benchmarks/bench_dispatch.py [--runs 20] [--idle 10]

1. Starts a real daemon on a fresh database and lets it go idle.
2. ``--runs`` times: runs ``bgproc schedule Sleep -p seconds=0 -p stamp_file=F``
   as a subprocess and notes the moment it returns; the task's first
   statement appends ``time.time()`` to F. Reported per run:
   - claim: the run row's ``started_at`` (the daemon's claim) minus that
     moment; negative when the daemon, woken by the FIFO as the request
     commits, claims before ``bgproc schedule`` has even exited;
   - task start: the task's stamp minus that moment (the worker process
     started, imported the task and entered ``run``);
   and, to split it up: request row written -> claimed (the wake-up FIFO and
   the claim transaction; ``created_at`` is taken before validation, so this
   is an upper bound), and claimed -> task start (the worker's interpreter
   start-up and imports).
   Each run ends before the next is scheduled, so the daemon is idle each time.
3. Idle CPU: utime+stime of the daemon from /proc/<pid>/stat over ``--idle``
   seconds, and its voluntary context switches (how often it woke up); the
   same for the spare worker it keeps started ahead (its child process).
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--idle", type=float, default=10.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        bgproc(db, "register", str(TASKS))
        env = dict(os.environ, BGPROC_DB=str(db))
        daemon = subprocess.Popen(
            [sys.executable, "-m", "bgproc", "daemon", "--workers", "2"], env=env, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        conn = sqlite3.connect(db)
        try:
            time.sleep(1.5)  # let it start and go idle
            claims, starts, wakes, boots = [], [], [], []
            for i in range(args.runs):
                stamp = Path(tmp) / f"stamp-{i}"
                out = bgproc(db, "schedule", "Sleep", "--now", "-p", "seconds=0", "-p", f"stamp_file={stamp}")
                returned = time.time()
                request = int(out)
                wait_for(lambda stamp=stamp: stamp.exists() and stamp.read_text().strip())
                started = float(stamp.read_text())

                def finished(request: int = request):
                    row = conn.execute(
                        "SELECT runs.status, runs.started_at, requests.created_at FROM runs "
                        "JOIN requests ON requests.id = runs.request_id WHERE request_id = ?",
                        (request,),
                    ).fetchone()
                    return row if row and row[0] != "running" else None

                status, claimed_at, created_at = wait_for(finished)
                claimed = utc_seconds(claimed_at)
                claims.append((claimed - returned) * 1000)
                starts.append((started - returned) * 1000)
                wakes.append((claimed - utc_seconds(created_at)) * 1000)
                boots.append((started - claimed) * 1000)
                time.sleep(0.2)  # idle again before the next
            print(f"dispatch over {args.runs} runs (ms after `bgproc schedule` returned):")
            for name, values in (("claim", claims), ("task start", starts)):
                print(
                    f"  {name:10} median {statistics.median(values):7.1f}  min {min(values):7.1f}"
                    f"  max {max(values):7.1f}"
                )
            print("split up (ms):")
            print(f"  request written -> claimed     median {statistics.median(wakes):7.1f}  max {max(wakes):7.1f}")
            print(f"  claimed -> task run() entered  median {statistics.median(boots):7.1f}  max {max(boots):7.1f}")

            time.sleep(1.0)
            hz = os.sysconf("SC_CLK_TCK")
            watched = {"daemon": daemon.pid, **{f"spare worker {p}": p for p in children(daemon.pid)}}
            before = {name: (cpu_ticks(pid), wakeups(pid)) for name, pid in watched.items()}
            m0 = time.monotonic()
            time.sleep(args.idle)
            m1 = time.monotonic()
            for name, pid in watched.items():
                ticks, woke = cpu_ticks(pid) - before[name][0], wakeups(pid) - before[name][1]
                seconds = ticks / hz
                print(
                    f"idle {name} over {m1 - m0:.1f}s: {ticks} clock ticks = {seconds * 1000:.0f} ms CPU "
                    f"({100 * seconds / (m1 - m0):.2f}%), {woke} wake-ups"
                )
        finally:
            conn.close()
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
