"""Soak: several daemons on one database, killed at random, and nothing lost or doubled.

    python benchmarks/soak.py [--seconds 300] [--daemons 4] [--one-time 1000]
                              [--recurring 24] [--kill-every 3] [--seed N] [--keep DIR]

Starts ``--daemons`` real ``bgproc daemon`` processes (2 workers each) on one
SQLite file, schedules ``--recurring`` every-second requests, feeds
``--one-time`` ``--now`` requests over the first half of the soak, and every
few seconds SIGKILLs a random daemon and starts another in its place. At the
end it unschedules the recurring requests, stops the daemons, lets one
``daemon --once`` finish what is left, and counts (soak_common.py, shared with
hosts_soak.py) from the database and from the marker files the task leaves
(one per body executed, see soak_tasks.py):

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
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from soak_common import HERE, bgproc, count, env, feed, print_figures, read_outcome

WORKERS = 2


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

    figures: dict[str, int] = count(read_outcome(db), markers, one_time, recurring)
    figures["daemons killed"] = daemons.killed
    figures["daemons that stopped badly"] = sum(1 for c in codes if c != 0)
    print_figures(figures)
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
