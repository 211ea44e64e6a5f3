"""Store operations fail at random while a daemon runs a hundred requests.

In the manner of Quartz's flaky-JDBC test: every call the daemon makes of an
operation of the store interface fails, one in five, before it does anything,
as "database is locked" or as a disk I/O error. The daemon must ride it out:
every one-time request runs exactly once, every recurring request accounts for
each of its slots exactly once (a run, or a skipped or missed row that counts
it), no occurrence is recorded twice and no run is left ``running``.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import query, wait_until
from daemon_tasks.helpers import register

from bgproc import requests
from bgproc.clock import utcnow
from bgproc.daemon import Daemon, DaemonConfig
from bgproc.daemon.reporter import Reporter
from bgproc.errors import StoreBusy, StoreFault, StoreIOError
from bgproc.store import Store
from bgproc.store.sqlite import SQLiteStore
from bgproc.timing import TimingOptions

RATE = 0.2
ONE_TIME = 80
RECURRING = 20
SLOTS = 5  # each recurring request: every second, from its start to its finish


def _fault(rng: random.Random) -> StoreFault:
    if rng.random() < 0.5:
        return StoreBusy("database is locked")
    return StoreIOError("disk I/O error")


# Every operation of the store interface: a unit of work that a database refuses as a whole.
OPERATIONS = {
    name for name, value in vars(Store).items()
    if not name.startswith("_") and callable(value) and not isinstance(value, property)
}


class FlakyStore:
    """A store whose operations fail at random, before they touch the database: each
    call of an operation of the store interface fails with ``rate``, as the store
    says "busy" or "I/O error"."""

    def __init__(self, store: Store, rate: float, seed: int) -> None:
        self._store = store
        self._rate = rate
        self._rng = random.Random(seed)
        self.armed = False
        self.injected = 0
        self.calls = 0

    def _maybe_fail(self) -> None:
        if not self.armed:
            return
        self.calls += 1
        if self._rng.random() < self._rate:
            self.injected += 1
            raise _fault(self._rng)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        if name not in OPERATIONS:
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            self._maybe_fail()
            return value(*args, **kwargs)

        return call


def _schedule(store: Store, timing: TimingOptions) -> int:
    now = utcnow()
    planned = requests.plan(store, "Noop", now=now, default_zone="UTC", timing=timing)
    return requests.create(store, planned, now).id


@pytest.mark.daemon
def test_a_daemon_whose_store_fails_one_call_in_five_loses_and_doubles_nothing(tmp_path: Path) -> None:
    db = tmp_path / "data" / "bgproc.db"
    register(db)
    with SQLiteStore.open(db) as setup:
        one_time = [_schedule(setup, TimingOptions(now=True)) for _ in range(ONE_TIME)]
        start = (utcnow() + timedelta(seconds=3)).replace(microsecond=0)
        finish = start + timedelta(seconds=SLOTS - 1)
        recurring = [
            _schedule(setup, TimingOptions(every="1s", start=start.isoformat(), finish=finish.isoformat()))
            for _ in range(RECURRING)
        ]

    store = SQLiteStore.open(db)
    flaky = FlakyStore(store, RATE, seed=20261202)
    daemon = Daemon(flaky, DaemonConfig(workers=4), reporter=Reporter(stream=open(tmp_path / "daemon.log", "w")))  # type: ignore[arg-type]
    failure: list[BaseException] = []

    def run() -> None:
        try:
            daemon.run()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        # Faults from the first claim on (a daemon that cannot even register may stop).
        wait_until(lambda: query(db, "SELECT 1 FROM runs LIMIT 1") or failure, timeout=60)
        flaky.armed = True

        def settled() -> bool:
            done = query(
                db,
                "SELECT COUNT(*) AS n FROM requests WHERE status = 'scheduled' OR manual_at IS NOT NULL",
            )[0]["n"] == 0
            running = query(db, "SELECT COUNT(*) AS n FROM runs WHERE status = 'running'")[0]["n"]
            return bool(failure) or (done and running == 0 and utcnow() > finish + timedelta(seconds=1))

        wait_until(settled, timeout=180, interval=0.2)
    finally:
        flaky.armed = False
        daemon.request_stop("the test is done")
        thread.join(timeout=60)
        store.close()
    assert not failure, f"the daemon stopped: {failure[0]!r}"
    assert not thread.is_alive()
    assert flaky.injected >= 20, f"only {flaky.injected} faults injected in {flaky.calls} calls"

    runs = query(db, "SELECT * FROM runs ORDER BY id")
    executing = [r for r in runs if r["status"] not in ("skipped", "missed")]
    assert not [r for r in runs if r["status"] == "running"]
    keys = Counter((r["request_id"], r["planned_at"]) for r in executing)
    assert [k for k, n in keys.items() if n > 1] == []

    per_request = Counter(r["request_id"] for r in executing)
    for request_id in one_time:
        assert per_request[request_id] == 1, f"one-time request {request_id} ran {per_request[request_id]} times"
    assert {r["status"] for r in executing if r["request_id"] in one_time} == {"success"}

    for request_id in recurring:
        mine = [r for r in runs if r["request_id"] == request_id]
        slots = sum((0 if r["status"] == "missed" else 1) + (r["missed_count"] or 0) for r in mine)
        assert slots == SLOTS, f"recurring request {request_id} accounts for {slots} slots: {mine}"
        assert all(r["status"] in ("success", "skipped", "missed") for r in mine), mine
    statuses = {r["status"] for r in query(db, "SELECT status FROM requests")}
    assert statuses == {"complete"}
