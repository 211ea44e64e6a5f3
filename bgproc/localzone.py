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


def _zone_of_file(path: str) -> str | None:
    """The zone a tz file is (``/usr/share/zoneinfo/Europe/Berlin``, or a link to it)."""
    try:
        target = str(Path(path).resolve())
    except OSError:
        return None
    name = target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else ""
    return name if name and _valid(name) else None


def system_zone_name() -> str:
    """``TZ`` if it names a zone (or a zone's file), else /etc/localtime's target,
    else /etc/timezone, else UTC."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz and _valid(tz):
        return tz
    name = _zone_of_file(tz) if tz.startswith("/") else None
    if name:
        return name
    name = _zone_of_file("/etc/localtime")
    if name:
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
    if not tz or _valid(tz) or tz == "/etc/localtime" or (tz.startswith("/") and _zone_of_file(tz)):
        return None
    return tz
