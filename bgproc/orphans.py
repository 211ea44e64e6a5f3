"""Dead daemons: the one rule by which a daemon and the command line judge that
another daemon is dead, and the command line's use of it.

A daemon of this machine (same host, boot and pid namespace) is dead when its
process is gone: its pid is checked, and nothing else is trusted (a stopped or
suspended daemon whose process exists is alive, however old its heartbeat). A
daemon elsewhere is dead when its heartbeat has not changed over the expiry, on
the judge's own monotonic clock, while the judge's own heartbeats were written
(the database took writes): the wall clocks of two hosts are never compared. A
command looks once, so it judges only daemons of this machine; daemons time
the others.

The daemons mark what dead daemons left ``running`` ``interrupted`` whenever
they look (``Store.settle_orphans``); ``settle`` lets the commands that show or
act on runs (``monitor``, ``cancel``) do the same when no daemon is running, so
that a run whose daemon was killed does not look alive for ever.
"""

from __future__ import annotations

import math
import os
from datetime import datetime

from . import liveness
from .errors import StoreFault
from .store import Store
from .store.decide import iso_local
from .store.records import DaemonRecord

# Own heartbeats that must be written while another daemon's stays unchanged before
# it is declared dead: they prove the database took writes meanwhile.
OWN_BEATS_TO_EXPIRE = 2

# Another daemon's heartbeat as last seen by a judge: (value, the judge's monotonic
# time when first seen with that value, the judge's own heartbeats written by then).
Sighting = tuple[datetime, float, int]


def why_dead(
    other: DaemonRecord, *, here: str, mono: float, seen: dict[str, Sighting], own_beats: int, expiry_s: float
) -> str | None:
    """Why ``other`` is dead, judged from ``here`` (``liveness.place``), or None while it
    may be alive. ``seen`` keeps the judge's sightings of heartbeats between calls
    (updated here); ``own_beats`` counts the judge's own heartbeats written."""
    place, _ = liveness.parse_host(other.host)
    if liveness.same_place(place, here):
        if other.pid == os.getpid() or liveness.gone_here(other.host, other.pid, here):
            return "is no longer running"
        return None
    sighting = seen.get(other.id)
    if sighting is None or sighting[0] != other.heartbeat_at:
        seen[other.id] = (other.heartbeat_at, mono, own_beats)
        return None
    waited = mono - sighting[1]
    if waited >= expiry_s and own_beats - sighting[2] >= OWN_BEATS_TO_EXPIRE:
        return (
            f"stopped heartbeating (no heartbeat seen for {waited:.0f}s; "
            f"its last, by its clock, {iso_local(sighting[0])})"
        )
    return None


def settle(store: Store, now: datetime) -> list[int]:
    """Mark the runs of this machine's dead daemons interrupted; returns their ids.
    A database that is busy or read-only is left as it is: the next daemon does it."""
    here = liveness.place()
    seen: dict[str, Sighting] = {}

    def judge(daemon: DaemonRecord) -> str | None:
        why = why_dead(daemon, here=here, mono=0.0, seen=seen, own_beats=0, expiry_s=math.inf)
        # When it died is not known: after its last heartbeat, by now. (Not at that
        # heartbeat: a suspended daemon stops beating, its runs do not.)
        return None if why is None else f"{why} (its last heartbeat {iso_local(daemon.heartbeat_at)})"

    try:
        settled = store.settle_orphans(now, judge)
    except StoreFault:
        return []
    return [run_id for dead in settled.dead for run_id in dead.runs] + [run_id for run_id, _ in settled.orphans]
