"""The claim rate of the SQLite and PostgreSQL stores, in the same run
(``python benchmarks/bench_claim.py --rate``; see its help).

Each case is a fresh database with ``due`` one-time requests, all due; ``claimers``
processes, each with a ``Daemon`` on its own store, make claim passes
(``Daemon.claim``, ``workers`` free workers each pass) until nothing is due,
recording each run claimed ended at once (``finish_run``, as a daemon does when
a run ends: no process is started), so that the runs going stay as few as a
daemon's workers; the rate is the runs claimed over the time from the start
signal to the last claimer's end. Nothing is claimed twice (checked).
"""

from __future__ import annotations

import io
import multiprocessing as mp
import multiprocessing.synchronize
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
# The requests are made due an hour before the passes' "now".
NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass
class Case:
    store: str
    claimers: int
    claimed: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.claimed / self.seconds


def fill(target: str, due: int) -> float:
    """Register the soak's task and make ``due`` one-time requests, due by ``NOW``."""
    sys.path.insert(0, str(HERE))
    from soak_common import bgproc
    from soak_tasks import SoakParams, SoakTask

    from bgproc.requests import create, plan
    from bgproc.store import open_store
    from bgproc.timing import TimingOptions

    began = time.monotonic()
    bgproc(target, "register", str(HERE / "soak_tasks.py"))
    made = NOW - timedelta(hours=1)
    with open_store(target) as store:
        planned = plan(store, SoakTask, now=made, default_zone="UTC", params=SoakParams(markers="/nonexistent"),
                       timing=TimingOptions(now=True))
        for _ in range(due):
            create(store, planned, made)
    return time.monotonic() - began


def claimer(target: str, workers: int, index: int, go: multiprocessing.synchronize.Event,
            out: mp.Queue[tuple[int, float]]) -> None:
    """Claim until nothing is due; put (runs claimed, when it ended by the monotonic clock)."""
    from bgproc.clock import FakeClock
    from bgproc.daemon import Daemon, DaemonConfig
    from bgproc.daemon.reporter import Reporter
    from bgproc.store import open_store

    with open_store(target) as store:
        clock = FakeClock(NOW)
        daemon = Daemon(store, DaemonConfig(workers=workers, spare=False), clock=clock,
                        reporter=Reporter(io.StringIO(), live=False, clock=clock))
        daemon_id = f"claimer-{index}"
        claimed = 0
        go.wait()
        while True:
            got = daemon.dispatcher.claim(daemon_id, NOW, None, busy=0, registered=False, host="bench").runs
            claimed += len(got)
            for run in got:  # a run that took no time: its outcome recorded, its slot free again
                store.finish_run(run.run_id, status="success", ended_at=NOW, exit_code=0)
            if not got:
                due = store.next_due_at()
                if due is None or due > NOW:
                    break
                time.sleep(0.002)  # what is left is another's pass (a daemon would wait for a wake-up)
        out.put((claimed, time.monotonic()))


def measure(target: str, store_name: str, due: int, workers: int, claimers: int) -> Case:
    filled = fill(target, due)
    print(f"{store_name}, {claimers} claimer(s): {due} requests made in {filled:.1f}s", file=sys.stderr, flush=True)
    context = mp.get_context("spawn")
    go = context.Event()
    out: mp.Queue[tuple[int, float]] = context.Queue()
    procs = [context.Process(target=claimer, args=(target, workers, i, go, out)) for i in range(claimers)]
    for proc in procs:
        proc.start()
    time.sleep(3.0)  # every claimer has its store open and waits for the signal
    began = time.monotonic()
    go.set()
    ends = [out.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    claimed = sum(n for n, _ in ends)
    distinct = check(target)
    if claimed != due or distinct != due:
        raise SystemExit(f"{store_name}, {claimers} claimer(s): {claimed} runs claimed of {due} ({distinct} requests)")
    return Case(store_name, claimers, claimed, max(end for _, end in ends) - began)


def check(target: str) -> int:
    """How many requests have a run: each one-time request exactly one, or it fails."""
    from bgproc.store import open_store

    with open_store(target) as store:
        runs = store.list_runs(limit=10 * 10**6)
    per_request: dict[int, int] = {}
    for run in runs:
        per_request[run.request_id] = per_request.get(run.request_id, 0) + 1
    twice = [r for r, n in per_request.items() if n > 1]
    if twice:
        raise SystemExit(f"requests claimed twice on {target}: {twice[:10]}")
    return len(per_request)


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A new database on the server of ``admin_url``, dropped afterwards: its URL."""
    import psycopg

    name = f"bgproc_rate_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def compare(due: int, workers: int, claimer_counts: list[int], admin_url: str) -> list[Case]:
    cases: list[Case] = []
    with tempfile.TemporaryDirectory() as tmp:
        for claimers in claimer_counts:
            cases.append(measure(str(Path(tmp) / f"rate-{claimers}.db"), "SQLite", due, workers, claimers))
            with postgres_database(admin_url) as url:
                cases.append(measure(url, "PostgreSQL", due, workers, claimers))
    print(f"claim rate: {due:,} due one-time requests, {workers} claimed per pass (Daemon.claim), each "
          f"case a fresh database; PostgreSQL on {urlsplit(admin_url).hostname}, in this run")
    print(f"{'claimers':>8}  {'SQLite runs/s':>13}  {'PostgreSQL runs/s':>17}  {'PG / SQLite':>11}")
    for claimers in claimer_counts:
        lite = next(c for c in cases if c.store == "SQLite" and c.claimers == claimers)
        pg = next(c for c in cases if c.store == "PostgreSQL" and c.claimers == claimers)
        print(f"{claimers:>8}  {lite.rate:>13.0f}  {pg.rate:>17.0f}  {pg.rate / lite.rate:>11.2f}")
    return cases
