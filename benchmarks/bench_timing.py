"""How long the timing model takes to find the next fire.

Run:  python benchmarks/bench_timing.py [--quick]

Each figure is the best of several runs, per call, and as a ratio against a
baseline measured in the same run: one ``datetime.now(UTC).astimezone(zone)``,
the least a scheduler does to ask "what time is it here?". Missed schedules
are the point: every case asks for the next fire a year after the start, so a
model that walked through missed slots would show it at once (a per-second
schedule has 31.5 million of them).
"""

from __future__ import annotations

import sys
import timeit
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bgproc.timing import Timing

ZONE = "Europe/Berlin"
NOW = datetime(2026, 5, 4, 12, 0, 0, 123_456, tzinfo=UTC)
YEAR_AGO = NOW - timedelta(days=365)
EVERY_LIMIT_S = 1e-3  # --every must be well under a millisecond


def best_per_call(fn: Callable[[], object], number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def main() -> int:
    quick = "--quick" in sys.argv
    repeat, scale = (3, 0.2) if quick else (5, 1.0)
    tz = ZoneInfo(ZONE)

    every = Timing(kind="every", zone=ZONE, start=YEAR_AGO, interval=timedelta(seconds=1))
    per_second = Timing(kind="cron", zone=ZONE, start=YEAR_AGO, cron="* * * * * *")
    quarter = Timing(kind="cron", zone=ZONE, start=YEAR_AGO, cron="*/15 * * * *")
    daily = Timing(kind="daily", zone=ZONE, start=YEAR_AGO.replace(hour=7, minute=30))
    weekly = Timing(kind="weekly", zone=ZONE, start=YEAR_AGO, weekdays=(0, 4))
    hourly = Timing(kind="hourly", zone=ZONE, start=YEAR_AGO)
    # The fall-back night, from inside the repeated hour: the hardest fixed-time case.
    fold = datetime.fromisoformat("2026-10-25T02:10:00+01:00")

    cases: list[tuple[str, Callable[[], object], int]] = [
        ("baseline: datetime.now(UTC).astimezone(zone)", lambda: datetime.now(UTC).astimezone(tz), 100_000),
        ("--every 1s, next_fire a year after the start", lambda: every.next_fire(NOW), 100_000),
        ("--every 1s, backlog of a year (exact count)", lambda: every.backlog(YEAR_AGO, NOW), 50_000),
        ("cron '* * * * * *' (per second), next_fire", lambda: per_second.next_fire(NOW), 20_000),
        ("cron '*/15 * * * *', next_fire", lambda: quarter.next_fire(NOW), 20_000),
        ("--hourly, next_fire", lambda: hourly.next_fire(NOW), 20_000),
        ("--daily, next_fire", lambda: daily.next_fire(NOW), 20_000),
        ("--daily, next_fire in the repeated hour", lambda: daily.next_fire(fold), 5_000),
        ("--weekly mon,fri, next_fire", lambda: weekly.next_fire(NOW), 20_000),
        ("cron per second, last_fire (direct)", lambda: per_second.last_fire(NOW), 200),
        ("cron per second, backlog of a year (10,000 cap)", lambda: per_second.backlog(YEAR_AGO, NOW), 2),
    ]

    print(f"zone {ZONE}, now {NOW.isoformat()}, start {YEAR_AGO.isoformat()}")
    print(f"{'case':<50} {'per call':>12} {'x baseline':>11}")
    baseline = 0.0
    results: dict[str, float] = {}
    for name, fn, number in cases:
        seconds = best_per_call(fn, max(1, int(number * scale)), repeat)
        results[name] = seconds
        if not baseline:
            baseline = seconds
        print(f"{name:<50} {seconds * 1e6:>9.2f} us {seconds / baseline:>10.1f}x")

    every_s = results["--every 1s, next_fire a year after the start"]
    ok = every_s < EVERY_LIMIT_S / 100
    print(f"--every 1s next_fire: {every_s * 1e6:.2f} us; well under 1 ms: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
