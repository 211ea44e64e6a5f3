"""How the store's hot queries hold up at millions of rows.

    python benchmarks/bench_store.py [--runs 1000000] [--requests 200000]

Fills a fresh database, then times each query the daemon and the monitor
run often, as a ratio against a baseline measured in the same run: a
trivial ``SELECT 1`` on the same connection. Ratios near a small constant
mean the query stays an index lookup however large the tables grow.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bgproc.store.sqlite import SQLiteStore as Store
from bgproc.store.sqlite import ts

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def fill(store: Store, n_requests: int, n_runs: int) -> None:
    rng = random.Random(7)
    conn = store.conn
    conn.execute("BEGIN")
    conn.execute(
        "INSERT INTO tasks (name, import_path, module, params_type, fields, timeout_s, registered_at, updated_at) "
        "VALUES ('T', 'm:T', 'm', 'm:P', '[]', 60, ?, ?)",
        (ts(NOW), ts(NOW)),
    )
    timing = json.dumps({"kind": "every", "every": "1m", "interval_s": 60})
    conn.executemany(
        "INSERT INTO requests (task, params, timing, timezone, start_at, status, next_run_at, user, "
        "created_at, updated_at) "
        "VALUES ('T', x'80', ?, 'UTC', ?, ?, ?, 'u', ?, ?)",
        (
            (
                timing,
                ts(NOW),
                status,
                ts(NOW + timedelta(seconds=rng.randint(-3600, 86400 * 30))) if status == "scheduled" else None,
                ts(NOW),
                ts(NOW),
            )
            for status in (rng.choice(("scheduled", "complete", "complete", "unscheduled")) for _ in range(n_requests))
        ),
    )
    statuses = ["success"] * 90 + ["error"] * 6 + ["timeout", "skipped", "missed", "interrupted"]
    conn.executemany(
        "INSERT INTO runs (request_id, task, status, reason, planned_at, started_at, ended_at, created_at) "
        "VALUES (?, 'T', ?, 'schedule', ?, ?, ?, ?)",
        (
            (rng.randint(1, n_requests), rng.choice(statuses), ts(t), ts(t), ts(t), ts(t))
            for t in (NOW - timedelta(seconds=i) for i in range(n_runs))
        ),
    )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")


def timed(fn, repeat: int = 200) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp) / "bench.db") as store:
        started = time.perf_counter()
        fill(store, args.requests, args.runs)
        print(f"filled {args.requests:,} requests and {args.runs:,} runs in {time.perf_counter() - started:.1f}s")
        baseline = timed(lambda: store.conn.execute("SELECT 1").fetchone())
        cases = {
            "next due (daemon sleep)": lambda: store.next_due_at(),
            "due requests, 100 (claim)": lambda: store.due_requests(NOW, 100),
            "latest 50 runs (monitor)": lambda: store.list_runs(limit=50),
            "latest 50 errors": lambda: store.list_runs(status="error", limit=50),
            "runs of one request": lambda: store.list_runs(request_id=4242, limit=50),
            "running runs of a daemon": lambda: store.running_runs("d1"),
        }
        print(f"baseline SELECT 1: {baseline * 1e6:.1f} us")
        for name, fn in cases.items():
            t = timed(fn, 50)
            print(f"{name:28s} {t * 1e3:8.3f} ms  = {t / baseline:8.0f} x baseline")


if __name__ == "__main__":
    main()
