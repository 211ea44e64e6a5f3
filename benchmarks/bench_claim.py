"""What one claim pass costs as the backlog of due requests grows.

    python benchmarks/bench_claim.py [--due 10000] [--large 150] [--large-kb 900] [--workers 4]

A claim pass is ``Daemon.claim``: the cheap "anything due?" read, then one
``BEGIN IMMEDIATE`` transaction that picks the due requests, records their
runs and advances them (``bgproc schedule`` and other daemons wait for it).
Each case is a fresh database whose one-time requests are all due; every
pass claims as many as the daemon has free workers, and is then undone
outside the timing, so that each pass sees the same backlog.

The baselines, measured in the same run, are the same pass with as many
due requests as free workers (every one claimed), with small parameters and
with large ones (a pass must read the parameters of the runs it starts, and
no others). Ratios near 1 mean a claim costs the same whatever the backlog.

    python benchmarks/bench_claim.py --rate [--due 2000] [--workers 4] [--claimers 1,3]
        [--postgres postgresql://USER@HOST:PORT/DBNAME]

The claim rate of the two stores, in the same run: ``--due`` one-time requests,
all due, are claimed by ``--claimers`` daemons at once (each a process of its
own, as daemons on several hosts are), each pass ``Daemon.claim`` with
``--workers`` free workers, until nothing is due; runs claimed per second, from
the moment all start to the last one's end. Each case is a fresh database: a
SQLite file, and a database made for it on the PostgreSQL server that
``--postgres`` names (an admin URL: the database is created and dropped there;
default the development machines' server). The table gives the ratio
PostgreSQL / SQLite for each number of claimers.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import claim_rate

from bgproc.clock import FakeClock
from bgproc.daemon import Daemon, DaemonConfig
from bgproc.daemon.reporter import Reporter
from bgproc.store.sqlite import SQLiteStore as Store
from bgproc.store.sqlite import ts

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def fill(store: Store, due: int, params_bytes: int) -> None:
    """``due`` one-time requests, all due before NOW, each with ``params_bytes`` of
    parameters (a MessagePack map holding one string)."""
    conn = store.conn
    conn.execute("BEGIN")
    conn.execute(
        "INSERT INTO tasks (name, import_path, module, params_type, fields, timeout_s, registered_at, updated_at) "
        "VALUES ('T', 'm:T', 'm', 'm:P', '[]', 60, ?, ?)",
        (ts(NOW), ts(NOW)),
    )
    text = b"x" * params_bytes
    # fixmap of one entry, "text": str32 of params_bytes
    params = b"\x81\xa4text\xdb" + len(text).to_bytes(4, "big") + text
    conn.executemany(
        "INSERT INTO requests (task, params, timing, timezone, start_at, status, next_run_at, user, "
        "created_at, updated_at) VALUES ('T', ?, '{\"kind\": \"now\"}', 'UTC', ?, 'scheduled', ?, 'u', ?, ?)",
        (
            (params, ts(at), ts(at), ts(at), ts(at))
            for at in (NOW - timedelta(seconds=due - i) for i in range(due))
        ),
    )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")


def undo(store: Store) -> None:
    """Put the claimed requests back as they were (outside the timing)."""
    conn = store.conn
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "UPDATE requests SET status = 'scheduled', next_run_at = start_at "
        "WHERE id IN (SELECT request_id FROM runs)"
    )
    conn.execute("DELETE FROM run_logs")
    conn.execute("DELETE FROM runs")
    conn.execute("COMMIT")


def timed(store: Store, fn: Callable[[], object], repeat: int) -> float:
    """Median seconds of ``fn``, each repetition from the same state."""
    fn()
    undo(store)
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
        undo(store)
    return statistics.median(samples)


def measure(tmp: Path, name: str, due: int, params_bytes: int, workers: int, repeat: int) -> dict[str, float]:
    with Store.open(tmp / f"{name}.db") as store:
        fill(store, due, params_bytes)
        clock = FakeClock(NOW)
        daemon = Daemon(
            store, DaemonConfig(workers=workers, spare=False), clock=clock,
            reporter=Reporter(io.StringIO(), live=False, clock=clock),
        )
        claimed = daemon.claim(NOW)
        assert len(claimed) == min(workers, due), claimed
        undo(store)
        return {
            "claim": timed(store, lambda: daemon.claim(NOW), repeat),
            "next due": timed(store, lambda: store.next_due_at(), repeat),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--due", type=int, default=None,
                        help="due requests with small parameters (default 10,000; with --rate 2,000)")
    parser.add_argument("--large", type=int, default=150, help="due requests with large parameters")
    parser.add_argument("--large-kb", type=int, default=900, help="size of each large request's parameters")
    parser.add_argument("--workers", type=int, default=4, help="free worker slots: runs claimed per pass")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--rate", action="store_true", help="the claim rate of SQLite and PostgreSQL (see above)")
    parser.add_argument("--claimers", default="1,3", help="with --rate: how many daemons claim at once, each case")
    parser.add_argument("--postgres", default=claim_rate.DEFAULT_ADMIN_URL, help="with --rate: an admin URL")
    args = parser.parse_args()
    if args.rate:
        claim_rate.compare(args.due or 2_000, args.workers,
                           [int(n) for n in args.claimers.split(",")], args.postgres)
        return
    args.due = args.due or 10_000
    large = args.large_kb * 1024
    # (due requests, parameter bytes, the baseline it is compared with)
    cases = {
        "baseline": (args.workers, 16, "baseline"),
        f"{args.due:,} due": (args.due, 16, "baseline"),
        f"baseline, {args.large_kb} KB params": (args.workers, large, f"baseline, {args.large_kb} KB params"),
        f"{args.large:,} due, {args.large_kb} KB params": (args.large, large, f"baseline, {args.large_kb} KB params"),
    }
    with tempfile.TemporaryDirectory() as tmp:
        results = {
            name: measure(Path(tmp), f"case{i}", due, size, args.workers, args.repeat)
            for i, (name, (due, size, _)) in enumerate(cases.items())
        }
    print(
        f"one claim pass with {args.workers} free workers, median of {args.repeat}; each baseline has "
        f"{args.workers} due requests (all claimed), the same parameters, and is measured in this run"
    )
    for name, (_, _, against) in cases.items():
        figures, base = results[name], results[against]
        print(
            f"{name:32s} claim {figures['claim'] * 1e3:8.2f} ms = {figures['claim'] / base['claim']:5.2f} x   "
            f"next due {figures['next due'] * 1e3:7.3f} ms = {figures['next due'] / base['next due']:5.2f} x"
        )


if __name__ == "__main__":
    main()
