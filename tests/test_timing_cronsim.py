"""Cron fires agree with cronsim, an independent implementation of Vixie cron's
rules (used here as a test oracle only).

- UTC: a few hundred seeded random expressions, 5-field and 6-field (cronsim's
  6-field form has seconds first too), with names, L, LW, 5L and 5#3.
- DST zones: random expressions started just before offset changes (1995-2035).
  Fixed-time expressions are compared with cronsim. Expressions that follow the
  clock are compared with a brute-force walk over real minutes (each matched by
  cronsim's own field parser), and with cronsim itself in Berlin and New York.

Where we differ from cronsim, the tests at the end pin both values and say why:
two rule choices (a one-value range with a step, which we refuse as any step
that never reaches a second value; an hour step or a 6-field expression with
fixed minute and hour), and three places where cronsim misses
real instants that follow-the-clock expressions match (changes on the half
hour or at :45, and a day that starts in a gap). In some folds cronsim's
iteration never ends (``15-19/4 51 3/4 * * *`` at Pacific/Chatham's 2018
change), so the random DST test only iterates cronsim where it applies.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from itertools import takewhile
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim, CronSimError

from bgproc.errors import TimingError
from bgproc.timing import Timing, iter_fires

SEED = 20260504
FIRES = 12
START = datetime(1980, 1, 1, tzinfo=UTC)  # before every instant compared

MONTHS = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()
DAYS = "SUN MON TUE WED THU FRI SAT".split()


def random_field(rng: random.Random, lo: int, hi: int, names: list[str] | None = None,
                 near: tuple[int, ...] = ()) -> str:
    def value() -> int:
        return rng.choice(near) if near and rng.random() < 0.5 else rng.randint(lo, hi)

    def show(v: int) -> str:
        if names and rng.random() < 0.3 and 0 <= v - lo < len(names):
            return names[v - lo]
        return str(v)

    r = rng.random()
    if r < 0.25:
        return "*"
    if r < 0.40:
        return f"*/{rng.randint(1, hi - lo)}"
    if r < 0.55:
        return show(value())
    if r < 0.70:
        a = rng.randint(lo, hi - 1)
        return f"{show(a)}-{show(rng.randint(a + 1, hi))}"
    # Steps reach a second value: larger ones are refused (see below).
    if r < 0.80:
        # a-b/n with a < b: cronsim reads a one-value range a-a/n as a/n (see below).
        a = rng.randint(lo, hi - 1)
        b = rng.randint(a + 1, hi)
        return f"{a}-{b}/{min(rng.randint(1, 6), b - a)}"
    if r < 0.88:
        v = value()
        return f"{v}/{min(rng.randint(1, 10), max(1, hi - v))}"
    picks = sorted({value() for _ in range(rng.randint(2, 4))})
    return ",".join(show(v) for v in picks)


def random_day_of_month(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.05:
        return "L"
    if r < 0.08:
        return "LW"
    if r < 0.5:
        return "*"
    return random_field(rng, 1, 31)


def random_day_of_week(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.04:
        return f"{rng.randint(0, 6)}L"
    if r < 0.08:
        return f"{rng.choice(DAYS)}#{rng.randint(1, 5)}"
    if r < 0.5:
        return "*"
    return random_field(rng, 0, 7 if rng.random() < 0.2 else 6, DAYS)


def random_expr(rng: random.Random, six: bool, hours: tuple[int, ...] = (), any_day: float = 0.0) -> str:
    """A random expression; ``any_day`` is the chance of leaving each day field '*'."""
    fields = [
        random_field(rng, 0, 59, near=(0, 15, 30, 45)),
        random_field(rng, 0, 23, near=hours),
        "*" if rng.random() < any_day else random_day_of_month(rng),
        "*" if rng.random() < max(any_day, 0.5) else random_field(rng, 1, 12, MONTHS),
        "*" if rng.random() < any_day else random_day_of_week(rng),
    ]
    if six:
        fields.insert(0, random_field(rng, 0, 59, near=(0, 30)))
    return " ".join(fields)


def cronsim_reads(expr: str) -> bool:
    """Whether cronsim accepts the expression (without iterating: in some folds its
    iteration never ends, e.g. 15-19/4 51 3/4 * * * at Pacific/Chatham's 2018 change)."""
    try:
        CronSim(expr, datetime(2000, 1, 1))
    except CronSimError:
        return False
    return True


def ours(expr: str, zone: str, after: datetime, n: int = FIRES) -> list[datetime] | None:
    try:
        t = Timing(kind="cron", zone=zone, start=START, cron=expr)
    except TimingError:
        return None
    return t.fires(after, n)


def theirs(expr: str, zone: str, after: datetime, n: int = FIRES) -> list[datetime] | None:
    try:
        it = CronSim(expr, after.astimezone(ZoneInfo(zone)) if zone != "UTC" else after)
    except CronSimError:
        return None
    out = []
    try:
        for _ in range(n):
            out.append(next(it).astimezone(UTC))
    except StopIteration:  # cronsim gives up after 50 years without a match
        pass
    return out


def compare(expr: str, zone: str, after: datetime) -> str | None:
    a, b = ours(expr, zone, after), theirs(expr, zone, after)
    if b is None:
        return None  # a construct cronsim does not support
    if a is None:
        # We refuse expressions that can never fire; cronsim accepts some and finds nothing.
        return None if b == [] else f"{expr!r}: refused by us, cronsim fires at {b[0]}"
    if a != b[: len(a)] or (len(a) < len(b)):
        tz = ZoneInfo(zone)
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            if x != y:
                return (f"{expr!r} in {zone} after {after}: fire {i}: "
                        f"ours {x.astimezone(tz)}, cronsim {y.astimezone(tz)}")
        return f"{expr!r} in {zone} after {after}: {len(a)} fires, cronsim {len(b)}"
    return None


def test_utc_agrees_with_cronsim() -> None:
    rng = random.Random(SEED)
    compared, problems = 0, []
    for i in range(400):
        expr = random_expr(rng, six=i % 3 == 0)
        after = datetime(1990, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 50 * 365 * 86400))
        if theirs(expr, "UTC", after, 1) is None:
            continue
        compared += 1
        problem = compare(expr, "UTC", after)
        if problem:
            problems.append(problem)
    assert compared >= 300
    assert problems == []


def transitions(zone: str, years: range) -> list[datetime]:
    """Offset changes, found by daily probes and bisection."""
    tz = ZoneInfo(zone)
    out = []
    t = datetime(years.start, 1, 1, tzinfo=UTC)
    end = datetime(years.stop, 1, 1, tzinfo=UTC)
    while t < end:
        nxt = t + timedelta(days=1)
        if t.astimezone(tz).utcoffset() != nxt.astimezone(tz).utcoffset():
            lo, hi = t, nxt
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                if mid.astimezone(tz).utcoffset() == lo.astimezone(tz).utcoffset():
                    lo = mid
                else:
                    hi = mid
            out.append(hi.replace(microsecond=0))
        t = nxt
    return out


def fires_until(t: Timing, after: datetime, until: datetime) -> list[datetime]:
    return list(takewhile(lambda f: f <= until, iter_fires(t, after)))


# Zones whose changes cronsim handles exactly: whole hours, away from midnight.
CRONSIM_EXACT = {"Europe/Berlin", "America/New_York"}


def follows_clock(expr: str) -> bool:
    """Our rule (Vixie cron's): the minute or the hour field starts with '*'."""
    fields = expr.split()
    minute, hour = fields[-5], fields[-4]
    return minute.startswith("*") or hour.startswith("*")


def clock_fires(expr: str, zone: str, after: datetime, until: datetime) -> list[datetime]:
    """Brute force: every real instant in (after, until] whose wall time matches,
    as cronsim's own field parser reads the expression."""
    sim = CronSim(expr, datetime(2000, 1, 1))
    tz = ZoneInfo(zone)
    seconds = sorted(sim.seconds)
    out = []
    minute = after.replace(second=0, microsecond=0)
    while minute <= until:
        w = minute.astimezone(tz)  # changes fall on whole minutes in these zones
        if (w.minute in sim.minutes and w.hour in sim.hours and w.month in sim.months
                and sim.match_day(w.date())):
            out += [minute + timedelta(seconds=s) for s in seconds]
        minute += timedelta(minutes=1)
    return [f for f in out if after < f <= until]


@pytest.mark.parametrize(
    "zone",
    ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Sao_Paulo",
     "Asia/Tehran", "Pacific/Chatham"],
)
def test_dst_zones_agree_with_cronsim(zone: str) -> None:
    """Near offset changes: fixed-time expressions against cronsim; expressions
    that follow the clock against a brute-force walk over real minutes (cronsim
    reading the fields), and in CRONSIM_EXACT zones against cronsim itself."""
    rng = random.Random(f"{SEED}-{zone}")
    changes = transitions(zone, range(1995, 2036))
    compared, crossed, problems = 0, 0, []
    while compared < 60:
        change = rng.choice(changes)
        local = change.astimezone(ZoneInfo(zone))
        near = tuple(sorted({(local.hour + d) % 24 for d in (-1, 0, 1)}))
        six = compared % 4 == 0
        # Mostly any day, so that fires reach the change's day.
        expr = random_expr(rng, six=six, hours=near, any_day=0.8)
        window = timedelta(minutes=20) if six else timedelta(hours=6)
        after = change - timedelta(seconds=rng.randint(0, int(window.total_seconds()) // 2))
        if not cronsim_reads(expr):
            continue
        try:
            t = Timing(kind="cron", zone=zone, start=START, cron=expr)
        except TimingError:
            continue  # can never fire
        compared += 1
        until = after + window
        mine = fires_until(t, after, until)
        crossed += any(abs(f - change) <= window / 2 for f in mine)
        if follows_clock(expr):
            expected = clock_fires(expr, zone, after, until)
            if mine != expected:
                problems.append(f"{expr!r} in {zone} after {after}: ours {mine[:3]}..., walk {expected[:3]}...")
        cronsim_same_rule = (
            (not six or follows_clock(expr))  # cronsim: 6 fields always follow the clock
            and (zone in CRONSIM_EXACT or not follows_clock(expr))  # its misses, pinned below
        )
        if cronsim_same_rule:
            problem = compare(expr, zone, after)
            if problem:
                problems.append(problem)
    assert crossed >= 20, "too few cases reach the offset change"
    assert problems == []


@pytest.mark.parametrize(
    ("expr", "zone", "after"),
    [
        # Fixed-time and wildcard expressions right at each 2026 transition.
        (expr, zone, after)
        for zone, afters in {
            "Europe/Berlin": ["2026-03-28T23:00+01:00", "2026-10-24T23:00+02:00"],
            "America/New_York": ["2026-03-07T23:00-05:00", "2026-10-31T23:00-04:00"],
            "Australia/Lord_Howe": ["2026-04-04T23:00+11:00", "2026-10-03T23:00+10:30"],
        }.items()
        for after in afters
        for expr in ["30 2 * * *", "0,30 1,2 * * *", "45 1 * * *", "15 2 * * 0", "*/15 * * * *",
                     "30 * * * *", "*/20 2 * * *", "* 2 * * *", "0 0-3 * * *", "5 1-2 * * *"]
        # cronsim misses real instants around Lord Howe's 30-minute changes: pinned below.
        if zone in CRONSIM_EXACT or not follows_clock(expr)
    ],
)
def test_transitions_agree_with_cronsim(expr: str, zone: str, after: str) -> None:
    assert compare(expr, zone, datetime.fromisoformat(after)) is None


# ----------------------------------------------------------------------
# Where we differ from cronsim, on purpose.


def local(fires: list[datetime] | None, zone: str) -> list[str]:
    assert fires is not None
    return [f.astimezone(ZoneInfo(zone)).isoformat() for f in fires]


def test_one_value_range_with_step_is_refused() -> None:
    # Vixie cron reads 20-20/10 as the range 20..20 stepped by 10: minute 20 only.
    # cronsim collapses the range to one value and then reads it as 20/10 (20, 30,
    # 40, 50). croniter read it as */10. Like any step that never reaches a second
    # value (*/90 in minutes), we refuse it and say what to write.
    after = datetime(2026, 5, 4, tzinfo=UTC)
    with pytest.raises(TimingError, match="a step of 10 is larger than the range 20-20.*write 20 for that"):
        Timing(kind="cron", zone="UTC", start=START, cron="20-20/10 * * * *")
    assert local(theirs("20-20/10 * * * *", "UTC", after, 2), "UTC") == [
        "2026-05-04T00:20:00+00:00", "2026-05-04T00:30:00+00:00",
    ]


def test_an_hour_step_not_starting_with_a_star_is_fixed_time_as_in_vixie_cron() -> None:
    # 0-4/2 does not start with '*': fixed-time, like cronsim. 02:30 in the spring
    # gap fires once at its end; in the fall it fires once, at its first occurrence.
    zone = "Europe/Berlin"
    spring = datetime.fromisoformat("2026-03-29T00:00+01:00")
    expected = ["2026-03-29T00:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:30:00+02:00"]
    assert local(ours("30 0-4/2 * * *", zone, spring, 3), zone) == expected
    assert local(theirs("30 0-4/2 * * *", zone, spring, 3), zone) == expected
    fall = datetime.fromisoformat("2026-10-25T01:00+02:00")
    expected = ["2026-10-25T02:30:00+02:00", "2026-10-25T04:30:00+01:00"]
    assert local(ours("30 0-4/2 * * *", zone, fall, 2), zone) == expected
    assert local(theirs("30 0-4/2 * * *", zone, fall, 2), zone) == expected


def test_six_fields_with_fixed_minute_and_hour_are_fixed_time() -> None:
    # cronsim follows the clock for every 6-field expression ("not Debian cron
    # compatible anyway"). Our rule looks at the minute and hour fields whatever
    # the number of fields, so 0 30 2 * * * behaves as 30 2 * * *.
    zone = "America/New_York"
    spring = datetime.fromisoformat("2026-03-07T12:00-05:00")
    assert local(ours("0 30 2 * * *", zone, spring, 2), zone) == local(ours("30 2 * * *", zone, spring, 2), zone) == [
        "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00",
    ]
    assert local(theirs("0 30 2 * * *", zone, spring, 2), zone) == [
        "2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00",
    ]


@pytest.mark.parametrize(
    ("expr", "after", "expected", "cronsim"),
    [
        # DST ends: 02:00 +11 becomes 01:30 +10:30, so 01:30-01:59 happen twice.
        # 01:30+10:30 (15:00 UTC) shows minute 30 on the clock: it fires. cronsim
        # jumps 59 wall minutes as 59 real minutes from 01:31+11 and lands on
        # 02:00+10:30, past it.
        ("30 * * * *", "2026-04-05T01:00+11:00",
         ["2026-04-05T01:30:00+11:00", "2026-04-05T01:30:00+10:30", "2026-04-05T02:30:00+10:30"],
         ["2026-04-05T01:30:00+11:00", "2026-04-05T02:30:00+10:30", "2026-04-05T03:30:00+10:30"]),
        # 02:00+10:30 (15:30 UTC) is the first real instant showing 02:00 that day.
        ("*/20 2 * * *", "2026-04-04T23:00+11:00",
         ["2026-04-05T02:00:00+10:30", "2026-04-05T02:20:00+10:30", "2026-04-05T02:40:00+10:30"],
         ["2026-04-05T02:40:00+10:30", "2026-04-06T02:00:00+10:30", "2026-04-06T02:20:00+10:30"]),
        # DST starts: 02:00 +10:30 becomes 02:30 +11. The change instant (15:30
        # UTC) shows 02:30: it fires.
        ("30 * * * *", "2026-10-04T01:00+10:30",
         ["2026-10-04T01:30:00+10:30", "2026-10-04T02:30:00+11:00", "2026-10-04T03:30:00+11:00"],
         ["2026-10-04T01:30:00+10:30", "2026-10-04T03:30:00+11:00", "2026-10-04T04:30:00+11:00"]),
    ],
)
def test_half_hour_changes_follow_the_clock(
    expr: str, after: str, expected: list[str], cronsim: list[str]
) -> None:
    zone = "Australia/Lord_Howe"
    start = datetime.fromisoformat(after)
    assert local(ours(expr, zone, start, 3), zone) == expected
    assert local(theirs(expr, zone, start, 3), zone) == cronsim  # cronsim's miss, for the record


def test_cronsim_misses_a_day_that_starts_in_a_gap() -> None:
    # Sao Paulo, 2003-10-19: midnight became 01:00, so hour 0 never showed that
    # day. * 0 */2 * * then next fires on the 21st (as * 0 * * * does on the 20th).
    # cronsim returns the imaginary midnight of the 19th (01:00), a time whose
    # hour does not match, once.
    zone = "America/Sao_Paulo"
    after = datetime.fromisoformat("2003-10-18T21:00-03:00")
    assert local(ours("* 0 */2 * *", zone, after, 2), zone) == [
        "2003-10-21T00:00:00-02:00", "2003-10-21T00:01:00-02:00",
    ]
    assert local(theirs("* 0 */2 * *", zone, after, 2), zone) == [
        "2003-10-19T01:00:00-02:00", "2003-10-21T00:00:00-02:00",
    ]


def test_cronsim_misses_an_hour_cut_at_45() -> None:
    # Chatham, 2026-09-27: 02:45 +12:45 became 03:45 +13:45, so 03:45-03:59 did
    # show on the clock. cronsim jumps over the whole hour to the next day.
    zone = "Pacific/Chatham"
    after = datetime.fromisoformat("2026-09-26T12:00+12:45")
    assert local(ours("*/5 3 * * *", zone, after, 3), zone) == [
        "2026-09-27T03:45:00+13:45", "2026-09-27T03:50:00+13:45", "2026-09-27T03:55:00+13:45",
    ]
    assert local(theirs("*/5 3 * * *", zone, after, 1), zone) == ["2026-09-28T03:00:00+13:45"]
