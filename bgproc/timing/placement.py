"""Placing wall times on the timeline, through DST changes: pure, on ``zoneinfo``.

A wall time exists, occurs twice (fall-back: a fixed-time fire takes the first),
or falls in a spring-forward gap (it is placed at the gap's end). A timing's
candidate wall times (``next_wall``) become its next fire here, fixed-time or
following the clock (see ``model``). Offset changes are found by probing a day
at a time, then bisecting to the second.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

_DAY = timedelta(days=1)
_US = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The next candidate wall time strictly after a naive wall time, on the calendar.
NextWall = Callable[[datetime], datetime | None]


def next_fixed(after: datetime, tz: ZoneInfo, next_wall: NextWall) -> datetime | None:
    """Fixed-time: the first candidate wall time whose placement is past ``after``.

    Placement (first occurrence, or the end of a gap) keeps wall order, so
    every candidate up to the wall time at ``after`` lands at or before
    it, and the next one lands after it; except in the second pass of a
    repeated hour, whose wall times were placed in the first pass: there
    the search starts at the end of the repeated range.
    """
    wall = after.astimezone(tz).replace(tzinfo=None, fold=0)
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first < after:
        before = offset_at(first, tz)
        change = next_offset_change(first, after, before, tz)
        if change is not None:
            wall = max(wall, (change + before).replace(tzinfo=None) - _US)
    for _ in range(1000):  # one step in practice; the bound guards against a bug looping
        candidate = next_wall(wall)
        if candidate is None:
            return None
        instant = place_fixed(candidate, tz)
        if instant > after:
            return instant
        wall = candidate
    raise AssertionError(f"no fixed-time fire found after {after} in {tz.key}")


def next_following_clock(after: datetime, tz: ZoneInfo, next_wall: NextWall) -> datetime | None:
    """Follow the clock: the first instant after ``after`` whose wall time matches."""
    t, inclusive = after, False
    for _ in range(100_000):
        offset = offset_at(t, tz)
        wall = (t + offset).replace(tzinfo=None)
        candidate = next_wall(wall - _US if inclusive else wall)
        if candidate is None:
            return None
        instant = candidate.replace(tzinfo=UTC) - offset
        change = next_offset_change(t, instant, offset, tz)
        if change is None:
            return instant
        # The offset changes before the candidate: continue from the change,
        # reading the clock with the new offset.
        t, inclusive = change, True
    raise AssertionError(f"no fire following the clock found after {after} in {tz.key}")


def as_utc(instant: datetime, name: str) -> datetime:
    """``instant`` in UTC; ``name`` says which argument a naive one came as."""
    # A naive datetime would be read in the host's zone: an environment read
    # that this module must not make, and a bug in the caller.
    if instant.tzinfo is None:
        raise ValueError(f"{name} must be an aware datetime, got {instant!r}")
    return instant.astimezone(UTC)


def offset_at(instant: datetime, tz: ZoneInfo) -> timedelta:
    """The zone's UTC offset at ``instant``."""
    off = instant.astimezone(tz).utcoffset()
    assert off is not None
    return off


def wall_exists(wall: datetime, tz: ZoneInfo) -> bool:
    """Whether the clocks of ``tz`` ever show ``wall`` (not in a spring-forward gap)."""
    aware = wall.replace(tzinfo=tz, fold=0)
    return aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall


def place_fixed(wall: datetime, tz: ZoneInfo) -> datetime:
    """A fixed-time wall time as an instant: its first occurrence, or the end of its gap."""
    if wall_exists(wall, tz):
        return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    return gap_end(wall, tz)


def gap_end(wall: datetime, tz: ZoneInfo) -> datetime:
    """The first instant after the spring-forward gap that swallows ``wall``."""
    # fold=0 reads the wall with the offset before the gap, fold=1 with the
    # one after; the transition lies between the two instants.
    early = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    late = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    lo, hi = min(early, late), max(early, late)
    before = offset_at(lo, tz)
    change = next_offset_change(lo, hi, before, tz)
    return change if change is not None else hi


def next_offset_change(
    t: datetime, until: datetime, offset: timedelta, tz: ZoneInfo
) -> datetime | None:
    """The first instant in (t, until] at which the zone's offset differs from ``offset``."""
    if until <= t:
        return None
    # Probe a day at a time (no zone in the tz database changes its offset
    # twice within two days; tests check this), then bisect to the second:
    # transitions fall on whole seconds.
    lo = t
    while lo < until:
        hi = min(lo + _DAY, until)
        if offset_at(hi, tz) != offset:
            a = _floor_seconds(lo)
            b = -_floor_seconds_neg(hi)
            while b - a > 1:
                mid = (a + b) // 2
                if offset_at(_EPOCH + timedelta(seconds=mid), tz) != offset:
                    b = mid
                else:
                    a = mid
            change = _EPOCH + timedelta(seconds=b)
            return max(change, t + _US)
        lo = hi
    return None


def _floor_seconds(instant: datetime) -> int:
    """Whole seconds since the epoch, rounded down (exact: no float)."""
    return (instant - _EPOCH) // timedelta(seconds=1)


def _floor_seconds_neg(instant: datetime) -> int:
    """Minus the whole seconds since the epoch rounded up."""
    return (_EPOCH - instant) // timedelta(seconds=1)
