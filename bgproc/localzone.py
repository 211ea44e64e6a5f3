"""The name of the system's IANA time zone (the default ``--tz``).

Timings store a zone *name*, never an offset, so that DST keeps working;
this finds the name the system is configured with.
"""

from __future__ import annotations

import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def _valid(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def system_zone_name() -> str:
    """``TZ`` if it names a zone, else /etc/localtime's target, else /etc/timezone, else UTC."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz and _valid(tz):
        return tz
    localtime = Path("/etc/localtime")
    try:
        target = str(localtime.resolve())
    except OSError:
        target = ""
    if "zoneinfo/" in target:
        name = target.split("zoneinfo/", 1)[1]
        if _valid(name):
            return name
    try:
        name = Path("/etc/timezone").read_text().strip()
    except OSError:
        name = ""
    if name and _valid(name):
        return name
    return "UTC"


def unusable_tz() -> str | None:
    """``TZ`` when it is set but names no IANA zone (a POSIX rule such as
    ``CET-1CEST,M3.5.0,M10.5.0/3``, or a typo): wall times read in it would
    silently be another zone's."""
    tz = os.environ.get("TZ", "").lstrip(":")
    return tz if tz and not _valid(tz) else None
