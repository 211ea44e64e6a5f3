"""Membership: a daemon among the others on one database. Its own row and
heartbeats, the one rule by which a daemon and the command line judge another
daemon dead, and what a daemon does when it finds itself declared dead.

A daemon of this machine (same host, boot and pid namespace) is dead when its
process is gone: its pid is checked, and nothing else is trusted (a stopped or
suspended daemon whose process exists is alive, however old its heartbeat). A
daemon elsewhere is dead when it has not beaten for the expiry: where the
database keeps the time (PostgreSQL: its rows say how long each has been silent
by the server's clock, ``silent_s``), by that clock, so a daemon and a command
that looks once judge alike; elsewhere (a SQLite file) when its heartbeat has
not changed over the expiry on the judge's own monotonic clock, while the
judge's own heartbeats were written (the database took writes), so a command
judges only daemons of this machine there. The wall clocks of two hosts are
never compared.

The daemons mark what dead daemons left ``running`` ``interrupted`` whenever
they look (``Store.settle_orphans``); ``settle`` lets the commands that show or
act on runs (``monitor``, ``cancel``) do the same when no daemon is running, so
that a run whose daemon was killed does not look alive for ever.

A daemon declared dead (it was stopped or suspended, or its writes stalled)
carries on under a new id, so that nothing is ever again recorded under the
old one; the loop stops the runs it still has (``Daemon._declared_dead``).
"""

from __future__ import annotations

import math
import os
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from .. import liveness
from ..errors import StoreFault
from ..store.decide import iso_local
from ..store.records import DaemonRecord

if TYPE_CHECKING:
    from ..clock import DatabaseClock
    from ..store import Store
    from .loop import DaemonConfig
    from .reporter import Reporter

# Seconds without a heartbeat after which a daemon elsewhere is dead (a daemon's
# default; see ``DaemonConfig.heartbeat_expiry_s``).
HEARTBEAT_EXPIRY_S = 60.0
# Own heartbeats that must be written while another daemon's stays unchanged before
# it is declared dead: they prove the database took writes meanwhile.
OWN_BEATS_TO_EXPIRE = 2
# How often stopped daemons' rows are pruned (each `daemon --once` adds one).
PRUNE_EVERY_S = 3600.0

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
    if other.silent_s is not None:  # the database's clock says
        if other.silent_s < expiry_s:
            return None
        return (
            f"stopped heartbeating (no heartbeat for {other.silent_s:.0f}s by the database's clock; "
            f"its last {iso_local(other.heartbeat_at)})"
        )
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


def settle(store: Store, now: datetime, expiry_s: float = HEARTBEAT_EXPIRY_S) -> list[int]:
    """Mark the runs of dead daemons interrupted: of this machine's, and where the
    database keeps the time, of daemons elsewhere silent for ``expiry_s``; returns
    their ids. A database that is busy or read-only is left as it is: the next
    daemon does it."""
    here = liveness.place()
    seen: dict[str, Sighting] = {}

    def judge(daemon: DaemonRecord) -> str | None:
        # Without the database's clock, one look cannot time a heartbeat.
        expiry = expiry_s if daemon.silent_s is not None else math.inf
        why = why_dead(daemon, here=here, mono=0.0, seen=seen, own_beats=0, expiry_s=expiry)
        if why is None or why.startswith("stopped heartbeating"):  # it says when it last beat
            return why
        # When it died is not known: after its last heartbeat, by now. (Not at that
        # heartbeat: a suspended daemon stops beating, its runs do not.)
        return f"{why} (its last heartbeat {iso_local(daemon.heartbeat_at)})"

    try:
        settled = store.settle_orphans(now, judge)
    except StoreFault:
        return []
    return [run_id for dead in settled.dead for run_id in dead.runs] + [run_id for run_id, _ in settled.orphans]


class Membership:
    """One daemon's row and heartbeats, and its watch over the other daemons.

    ``hostname``: for tests, a daemon that believes it runs on another host.
    """

    def __init__(
        self, store: Store, config: DaemonConfig, clock: DatabaseClock, reporter: Reporter, hostname: str
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.reporter = reporter
        self.hostname = liveness.host_name(hostname)  # what its runs record as their host
        # Where this process runs (host, boot, pid namespace) and which process it is:
        # another daemon with the same place can check our pid directly.
        self.place = liveness.place(hostname)
        self.host = liveness.host_text(self.place, liveness.proc_start(os.getpid()))
        self.id = self.new_id()
        self.registered = False  # a row in the daemons table (tests may claim without one)
        self.beats = 0  # own heartbeats written
        self.last_beat = 0.0  # monotonic
        # When the last heartbeat (or registration) the database took was sent, monotonic:
        # its row's heartbeat is no older than that.
        self.beaten = 0.0
        self._last_prune: float | None = None
        # Other daemons' heartbeats as last seen, by id.
        self.observed: dict[str, Sighting] = {}

    def new_id(self) -> str:
        return f"{self.hostname}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    def register(self, daemon_id: str | None = None) -> None:
        """Record this daemon in the database, under ``daemon_id`` (default its id),
        having measured the database's clock (the daemon's time is its)."""
        sent = self.clock.monotonic()
        self.clock.measure(self.store.clock_offset)
        now = self.clock.now()
        self.store.register_daemon(
            DaemonRecord(
                id=daemon_id or self.id, host=self.host, pid=os.getpid(), started_at=now, heartbeat_at=now,
                stopped_at=None, workers=self.config.workers,
            )
        )
        self.registered = True
        self.beaten = sent

    def beat_in(self, mono: float) -> float:
        """Seconds until the next heartbeat is due (<= 0: now)."""
        return self.config.heartbeat_s - (mono - self.last_beat)

    def beat(self, now: datetime) -> bool:
        """Write a heartbeat; False if this daemon was declared dead (nothing written).
        The database's clock is measured again first (the daemon's time is its)."""
        self.last_beat = self.clock.monotonic()
        self.clock.measure(self.store.clock_offset)
        alive = self.store.beat(self.id, now)
        if alive:
            self.beats += 1
            self.beaten = self.last_beat
        return alive

    def prune(self, now: datetime, *, when_due: bool = False) -> None:
        """Forget daemons stopped longer ago than ``keep_daemons_s`` (with ``when_due``:
        if an hour has passed since the last time)."""
        if when_due and self._last_prune is not None and self.last_beat - self._last_prune < PRUNE_EVERY_S:
            return
        self._last_prune = self.clock.monotonic()
        self.store.prune_daemons(now - timedelta(seconds=self.config.keep_daemons_s))

    def reap_dead(self, now: datetime) -> bool:
        """Mark the runs of daemons that died interrupted, and runs still recorded
        ``running`` under a daemon that stopped (``Store.settle_orphans``); True if
        any was (their requests may be claimable now)."""
        mono = self.clock.monotonic()
        settled = self.store.settle_orphans(now, lambda other: self._dead(other, mono), daemon=self.id)
        for gone in set(self.observed) - {d.id for d in settled.live}:
            del self.observed[gone]
        for dead in settled.dead:
            self.observed.pop(dead.id, None)
            self.reporter.event(f"daemon {dead.id} {dead.why}: declared dead")
            for run_id in dead.runs:
                self.reporter.event(f"run {run_id} interrupted: daemon {dead.id} {dead.why}")
        for run_id, daemon_id in settled.orphans:
            self.reporter.event(f"run {run_id} interrupted: daemon {daemon_id} had stopped")
        return bool(settled.dead or settled.orphans)

    def _dead(self, other: DaemonRecord, mono: float) -> str | None:
        """Why ``other`` is dead, or None while it may be alive: the rule the command
        line judges by too, with this daemon's sightings."""
        return why_dead(
            other, here=self.place, mono=mono, seen=self.observed, own_beats=self.beats,
            expiry_s=self.config.heartbeat_expiry_s,
        )

    def say_declared_dead(self, running: int) -> None:
        self.reporter.event(
            f"WARNING: daemon {self.id} was declared dead by another daemon (no heartbeat seen for "
            f"{self.config.heartbeat_expiry_s:g}s: this process was stopped or suspended, or the database "
            f"stalled its writes). Its runs were recorded interrupted; stopping the {running} still going. "
            "Continuing under a new id."
        )

    def carry_on(self, now: datetime) -> None:
        """After being declared dead (its runs stopped): what the old id still has
        recorded running ends interrupted, and the daemon goes on under a new id."""
        old = self.id
        self.store.interrupt_daemon_runs(
            old, now, f"interrupted: daemon {old} was declared dead while the run was starting; not re-run"
        )
        # Registered first: until the new id is recorded the old one (stopped) stays, so
        # nothing is claimed and the next pass or heartbeat tries again.
        new = self.new_id()
        self.register(new)
        self.id = new
        self.reporter.event(f"daemon {old} continues as {self.id}")

    def leave(self, now: datetime) -> None:
        """Record this daemon stopped: whatever of its runs is still recorded running (a
        run that could not start and whose error could not be written) ends interrupted."""
        ids = self.store.interrupt_daemon_runs(
            self.id, now, "interrupted: the daemon stopped before the run started; not re-run"
        )
        for run_id in ids:
            self.reporter.event(f"run {run_id} interrupted: it had not started")
