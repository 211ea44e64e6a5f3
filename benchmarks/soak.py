"""Soak: several daemons on one database, killed at random, and nothing lost or doubled.

    python benchmarks/soak.py [--seconds 300] [--daemons 4] [--one-time 1000]
                              [--recurring 24] [--kill-every 3] [--seed N] [--keep DIR]

Starts ``--daemons`` real ``bgproc daemon`` processes (2 workers each) on one
SQLite file, schedules ``--recurring`` every-second requests, feeds
``--one-time`` ``--now`` requests over the first half of the soak, and every
few seconds SIGKILLs a random daemon and starts another in its place. At the
end it unschedules the recurring requests, stops the daemons, lets one
``daemon --once`` finish what is left, and counts from the database and from
the marker files the task leaves (one per body executed, see soak_tasks.py):

- occurrences planned (one-time requests, and every recurring slot up to the
  last one a daemon handled), runs recorded, and slots unaccounted for;
- duplicates: an occurrence recorded by two runs, a run whose body ran twice,
  a one-time request whose body ran twice;
- runs left ``running``; one-time requests never run; daemons killed.

Exits 1 if any of duplicates, runs left running, one-time requests never run
or slots unaccounted is not zero. CI runs a 30-second form (tests/test_soak.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
WORKERS = 2


def bgproc(db: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "bgproc", *args], env=env(db), cwd=HERE, capture_output=True, text=True, timeout=300,
    )
    if done.returncode != 0:
        raise SystemExit(f"bgproc {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def env(db: Path) -> dict[str, str]:
    values = dict(os.environ, BGPROC_DB=str(db))
    values["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), str(HERE), values.get("PYTHONPATH", "")) if p)
    return values


class Daemons:
    """The soak's daemon processes: started, killed at random, stopped at the end."""

    def __init__(self, db: Path, logs: Path) -> None:
        self.db, self.logs = db, logs
        self.procs: list[subprocess.Popen[bytes]] = []
        self.started = 0
        self.killed = 0

    def start(self) -> subprocess.Popen[bytes]:
        self.started += 1
        log = open(self.logs / f"daemon-{self.started}.log", "wb")  # noqa: SIM115 - the process keeps it
        proc = subprocess.Popen(
            [sys.executable, "-m", "bgproc", "daemon", "--workers", str(WORKERS), "--grace", "10"],
            env=env(self.db), cwd=HERE, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def kill_one(self, rng: random.Random) -> None:
        live = [p for p in self.procs if p.poll() is None]
        if not live:
            return
        victim = rng.choice(live)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.killed += 1
        self.procs.remove(victim)
        self.start()

    def stop(self) -> list[int]:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        return [proc.wait(timeout=120) for proc in self.procs]


def feed(db: Path, markers: Path, count: int, seconds: float, stop: threading.Event, made: list[int]) -> None:
    """Create ``count`` one-time requests spread over ``seconds``, from the Python API."""
    from soak_tasks import SoakParams, SoakTask

    import bgproc

    rng = random.Random(7)
    began = time.monotonic()
    for index in range(count):
        if stop.is_set():
            return
        wait = began + seconds * index / max(count, 1) - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        params = SoakParams(markers=str(markers), sleep_ms=rng.randint(0, 300))
        for _ in range(50):  # the database may be busy for a moment under this load
            try:
                made.append(bgproc.start_new(SoakTask, params, db=db))
                break
            except Exception as exc:  # noqa: BLE001 - retried, then reported
                error = exc
                time.sleep(0.2)
        else:
            raise SystemExit(f"could not create a one-time request: {error}")


def utc(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def count(db: Path, markers: Path, one_time: list[int], recurring: list[int]) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    runs = [dict(r) for r in conn.execute("SELECT * FROM runs")]
    requests = {r["id"]: dict(r) for r in conn.execute("SELECT id, timing, start_at FROM requests")}
    conn.close()
    executing = [r for r in runs if r["status"] not in ("skipped", "missed")]
    keys = Counter(
        (r["request_id"], r["planned_at"]) for r in executing if r["reason"] not in ("manual", "retry", "recovery")
    )
    bodies = [name.split("-") for name in os.listdir(markers)]
    per_run = Counter(int(run) for _, run, _ in bodies)
    per_request = Counter(int(request) for request, _, _ in bodies)
    ran = {r["request_id"] for r in executing}

    planned = len(one_time)
    unaccounted = 0
    for request_id in recurring:
        mine = [r for r in runs if r["request_id"] == request_id and r["reason"] != "manual"]
        last = max((utc(r["missed_until"] or r["planned_at"]) for r in mine), default=None)
        start = utc(requests[request_id]["start_at"])
        assert start is not None
        every = json.loads(requests[request_id]["timing"])["interval_s"]
        slots = 0 if last is None else int((last - start).total_seconds() // every) + 1
        accounted = sum(
            (1 if r["status"] != "missed" else 0) + (r["missed_count"] or 0) for r in mine
        )
        planned += slots
        unaccounted += abs(slots - accounted)
    return {
        "occurrences planned": planned,
        "runs recorded": len(runs),
        "runs executed": len(executing),
        "bodies executed": len(bodies),
        "duplicates": sum(n - 1 for n in keys.values() if n > 1)
        + sum(n - 1 for n in per_run.values() if n > 1)
        + sum(per_request[r] - 1 for r in one_time if per_request[r] > 1),
        "runs left running": sum(1 for r in runs if r["status"] == "running"),
        "one-time requests never run": sum(1 for r in one_time if r not in ran),
        "slots unaccounted": unaccounted,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--daemons", type=int, default=4)
    parser.add_argument("--one-time", type=int, default=1000)
    parser.add_argument("--recurring", type=int, default=24)
    parser.add_argument("--kill-every", type=float, default=3.0, help="mean seconds between kills")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="keep the database and logs in DIR")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)

    work = args.keep or Path(tempfile.mkdtemp(prefix="bgproc-soak-"))
    work.mkdir(mode=0o700, parents=True, exist_ok=True)
    db, markers, logs = work / "soak.db", work / "markers", work / "logs"
    markers.mkdir(mode=0o700, exist_ok=True)
    logs.mkdir(mode=0o700, exist_ok=True)
    bgproc(db, "register", str(HERE / "soak_tasks.py"))

    sys.path.insert(0, str(HERE))
    from soak_tasks import SoakParams, SoakTask

    import bgproc as api

    recurring = [
        api.schedule(SoakTask, SoakParams(markers=str(markers), sleep_ms=rng.randint(0, 300)), db=db, every="1s")
        for _ in range(args.recurring)
    ]
    daemons = Daemons(db, logs)
    for _ in range(args.daemons):
        daemons.start()
    one_time: list[int] = []
    stop = threading.Event()
    feeder = threading.Thread(
        target=feed, args=(db, markers, args.one_time, args.seconds / 2, stop, one_time), daemon=True
    )
    feeder.start()

    print(f"soak: {args.seconds:g}s, {args.daemons} daemons, seed {seed}, in {work}", flush=True)
    began = time.monotonic()
    while time.monotonic() - began < args.seconds:
        time.sleep(min(rng.expovariate(1 / args.kill_every), max(0.0, args.seconds - (time.monotonic() - began))))
        if time.monotonic() - began < args.seconds:
            daemons.kill_one(rng)
    stop.set()
    feeder.join()
    bgproc(db, "unschedule", *map(str, recurring))
    codes = daemons.stop()
    # What the killed daemons left due (one-time requests, waiting manual runs) runs now.
    bgproc(db, "daemon", "--once", "--workers", str(WORKERS))
    bgproc(db, "monitor", "--limit", "1")  # settles runs of dead daemons, as any observer does

    figures = count(db, markers, one_time, recurring)
    figures["daemons killed"] = daemons.killed
    figures["daemons that stopped badly"] = sum(1 for c in codes if c != 0)
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")
    bad = [
        name for name in ("duplicates", "runs left running", "one-time requests never run", "slots unaccounted",
                          "daemons that stopped badly")
        if figures[name]
    ]
    if bad:
        print(f"soak FAILED: {', '.join(bad)} (kept in {work})")
        return 1
    print("soak passed: no duplicates, no run left running, every one-time request ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
