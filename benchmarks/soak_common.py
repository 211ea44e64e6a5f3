"""What the soaks share (soak.py on one host, hosts_soak.py on several): the command
line against a database target, the feeder of one-time requests, and the counting
of what happened.

The counting reads the database through the command line's JSON (``monitor
--json``, ``requests --json --all``), the contract scripts rely on, so it counts
the same way whatever the store (a SQLite file or a PostgreSQL URL), and the
marker files the task leaves (soak_tasks.py), which it trusts over the database
for bodies executed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
MONITOR_LIMIT = 100_000  # `bgproc monitor --limit`'s largest


def env(target: str | Path, **extra: str) -> dict[str, str]:
    """The environment of a bgproc process on ``target`` that finds the soak's task."""
    values = dict(os.environ, BGPROC_DB=str(target), **extra)
    values["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), str(HERE), values.get("PYTHONPATH", "")) if p)
    return values


def bgproc(target: str | Path, *args: str) -> str:
    """``bgproc ARGS`` on ``target``; its stdout. A failure ends the soak in one line."""
    done = subprocess.run(
        [sys.executable, "-m", "bgproc", *args], env=env(target), cwd=HERE, capture_output=True, text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise SystemExit(f"bgproc {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def feed(
    target: str | Path, markers: Path, count: int, seconds: float, stop: threading.Event, made: list[int],
    *, sleep_ms: tuple[int, int] = (0, 300),
) -> None:
    """Create ``count`` one-time requests spread over ``seconds``, from the Python API,
    appending their ids to ``made``."""
    import random

    from soak_tasks import SoakParams, SoakTask

    import bgproc as api

    rng = random.Random(7)
    began = time.monotonic()
    for index in range(count):
        if stop.is_set():
            return
        wait = began + seconds * index / max(count, 1) - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        params = SoakParams(markers=str(markers), sleep_ms=rng.randint(*sleep_ms))
        for _ in range(50):  # the database may be busy for a moment under this load
            try:
                made.append(api.start_new(SoakTask, params, db=target))
                break
            except Exception as exc:  # noqa: BLE001 - retried, then reported
                error = exc
                time.sleep(0.2)
        else:
            raise SystemExit(f"could not create a one-time request: {error}")


@dataclass
class Outcome:
    """Every run and request of a soak's database, as the command line's JSON gives them."""

    runs: list[dict[str, Any]]
    requests: dict[int, dict[str, Any]]


def read_outcome(target: str | Path) -> Outcome:
    runs = json.loads(bgproc(target, "monitor", "--json", "--limit", str(MONITOR_LIMIT)))
    if len(runs) >= MONITOR_LIMIT:
        raise SystemExit(f"more than {MONITOR_LIMIT} runs: too many to count through `bgproc monitor`")
    requests = json.loads(bgproc(target, "requests", "--json", "--all"))
    return Outcome(runs, {r["id"]: r for r in requests})


def utc(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def executing(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs that executed (or were to): not the ``skipped`` and ``missed`` rows."""
    return [r for r in runs if r["status"] not in ("skipped", "missed")]


def count(outcome: Outcome, markers: Path, one_time: list[int], recurring: list[int]) -> dict[str, int]:
    """The soak's figures: occurrences planned (one-time requests, and every recurring
    slot up to the last one a daemon handled), runs recorded, duplicates (an
    occurrence recorded by two runs, a run whose body ran twice, a one-time request
    whose body ran twice), runs left running, one-time requests never run, and
    recurring slots neither run nor recorded skipped or missed."""
    runs = outcome.runs
    ran = executing(runs)
    keys = Counter(
        (r["request_id"], utc(r["planned_at"])) for r in ran if r["reason"] not in ("manual", "retry", "recovery")
    )
    bodies = [name.split("-") for name in os.listdir(markers)]
    per_run = Counter(int(run) for _, run, _ in bodies)
    per_request = Counter(int(request) for request, _, _ in bodies)
    ran_requests = {r["request_id"] for r in ran}
    slots, unaccounted = recurring_slots(outcome, recurring)
    return {
        "occurrences planned": len(one_time) + slots,
        "runs recorded": len(runs),
        "runs executed": len(ran),
        "bodies executed": len(bodies),
        "duplicates": sum(n - 1 for n in keys.values() if n > 1)
        + sum(n - 1 for n in per_run.values() if n > 1)
        + sum(per_request[r] - 1 for r in one_time if per_request[r] > 1),
        "runs left running": sum(1 for r in runs if r["status"] == "running"),
        "one-time requests never run": sum(1 for r in one_time if r not in ran_requests),
        "slots unaccounted": unaccounted,
    }


def recurring_slots(outcome: Outcome, recurring: list[int]) -> tuple[int, int]:
    """(slots planned, slots unaccounted) of the every-N-seconds requests: every slot
    from the start up to the last one a daemon handled is a run, or counted in a
    ``skipped`` or ``missed`` row."""
    planned = unaccounted = 0
    by_request: dict[int, list[dict[str, Any]]] = {}
    for run in outcome.runs:
        by_request.setdefault(run["request_id"], []).append(run)
    for request_id in recurring:
        mine = [r for r in by_request.get(request_id, []) if r["reason"] != "manual"]
        last = max((utc(r["missed_until"] or r["planned_at"]) for r in mine), default=None)
        request = outcome.requests[request_id]
        start = utc(request["start"])
        assert start is not None
        every = request["timing"]["interval_s"]
        slots = 0 if last is None else int((last - start).total_seconds() // every) + 1
        accounted = sum((1 if r["status"] != "missed" else 0) + (r["missed_count"] or 0) for r in mine)
        planned += slots
        unaccounted += abs(slots - accounted)
    return planned, unaccounted


def print_figures(figures: dict[str, Any]) -> None:
    """One figure a line, ``name  value`` (two spaces before the value; tests parse it)."""
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}", flush=True)


def parse_figures(stdout: str) -> dict[str, str]:
    """The figures ``print_figures`` printed, by name (for the tests)."""
    return {k.strip(): v.strip() for k, v in (line.rsplit("  ", 1) for line in stdout.splitlines() if "  " in line)}
