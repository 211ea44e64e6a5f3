"""Daemons: their rows, heartbeats, and what dead ones left running.

Where the dialect has a clock of the database's own (``server_clock``), a heartbeat
is that clock's time and each row is read with the seconds since it (``silent_s``),
so daemons on hosts whose clocks disagree judge one another by one clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..base import DeadDaemon, Judge, Settled
from ..records import DaemonRecord
from . import rows
from .connection import operation
from .runs import Runs


class Daemons(Runs):
    def _clock(self, now: datetime) -> tuple[str, list[Any]]:
        """The SQL for a heartbeat's time, and its parameters: the database's clock, or ``now``."""
        clock = self.dialect.server_clock
        return (clock, []) if clock else ("?", [self.dialect.instant(now)])

    @operation
    def register_daemon(self, daemon: DaemonRecord) -> None:
        beat, params = self._clock(daemon.heartbeat_at)
        with self.write():
            self.execute(
                "INSERT INTO daemons (id, host, pid, started_at, heartbeat_at, stopped_at, workers) "
                f"VALUES (?, ?, ?, ?, {beat}, NULL, ?)",
                (daemon.id, daemon.host, daemon.pid, self.dialect.instant(daemon.started_at), *params, daemon.workers),
            )

    @operation
    def beat(self, daemon_id: str, now: datetime) -> bool:
        """With a database clock, the heartbeat is its time (``now`` is not used)."""
        beat, params = self._clock(now)
        with self.write():
            changed = self.execute(
                f"UPDATE daemons SET heartbeat_at = {beat} WHERE id = ? AND stopped_at IS NULL", (*params, daemon_id)
            )
        return bool(changed)

    @operation
    def get_daemon(self, daemon_id: str) -> DaemonRecord | None:
        found = self.row(self.dialect.daemon_select + " WHERE id = ?", (daemon_id,))
        return rows.daemon(self.dialect, found) if found else None

    @operation
    def daemon_stopped(self, daemon_id: str) -> bool:
        """Whether a daemon's row says it stopped (or was declared dead), or is gone
        (pruned long after it was declared dead)."""
        found = self.tuples("SELECT stopped_at FROM daemons WHERE id = ?", (daemon_id,))
        return not found or found[0][0] is not None

    @operation
    def live_daemons(self) -> list[DaemonRecord]:
        found = self.rows(self.dialect.daemon_select + " WHERE stopped_at IS NULL ORDER BY started_at, id")
        return [rows.daemon(self.dialect, r) for r in found]

    @operation
    def prune_daemons(self, stopped_before: datetime) -> int:
        with self.write():
            return self.execute(
                "DELETE FROM daemons WHERE stopped_at IS NOT NULL AND stopped_at < ?",
                (self.dialect.instant(stopped_before),),
            )

    @operation
    def stop_daemon(self, daemon_id: str, now: datetime) -> None:
        """Record a daemon stopped, leaving its runs as they are (tests make orphans so)."""
        with self.write():
            self.execute("UPDATE daemons SET stopped_at = ? WHERE id = ?", (self.dialect.instant(now), daemon_id))

    @operation
    def interrupt_daemon_runs(self, daemon_id: str, now: datetime, detail: str) -> list[int]:
        at = self.dialect.instant(now)
        with self.write():
            # The daemon's row first: whoever settles it, and its own heartbeat, go one at a time.
            self.execute("UPDATE daemons SET stopped_at = ? WHERE id = ? AND stopped_at IS NULL", (at, daemon_id))
            ids = self.update_ids(
                "runs", "status = 'interrupted', ended_at = ?, detail = ?", "daemon_id = ? AND status = 'running'",
                (at, detail), (daemon_id,),
            )
            for run_id in ids:
                self.follow_up(run_id, now)
        return ids

    @operation
    def settle_orphans(self, now: datetime, judge: Judge, *, daemon: str | None = None) -> Settled:
        live = self.live_daemons()
        suspects = sorted(other.id for other in live if other.id != daemon and judge(other) is not None)
        if not suspects and not self._orphaned_runs(daemon):
            return Settled(live=live)
        with self.write():
            dead = [found for found in (self._settle_daemon(suspect, now, judge) for suspect in suspects) if found]
            orphans = [
                (run_id, owner)
                for run_id, owner in self._orphaned_runs(daemon)
                if self._interrupt_run(
                    run_id, now,
                    f"interrupted: daemon {owner} had stopped while the run was recorded running; not re-run",
                )
            ]
        if dead or orphans:
            self._notify()  # what waited for these runs (a recovery, a one-time run) may start now
        return Settled(live=live, dead=dead, orphans=orphans)

    def _settle_daemon(self, daemon_id: str, now: datetime, judge: Judge) -> DeadDaemon | None:
        """Judge a daemon again on its row as it is now, holding its lock (the row's, or
        the database's): it may have beaten meanwhile, and another may have settled it first."""
        found = self.row(self.dialect.locking(self.dialect.daemon_select + " WHERE id = ?", "UPDATE"), (daemon_id,))
        fresh = rows.daemon(self.dialect, found) if found else None
        why = None if fresh is None or fresh.stopped_at is not None else judge(fresh)
        if why is None:
            return None
        ids = self.interrupt_daemon_runs(daemon_id, now, f"interrupted: daemon {daemon_id} {why}; not re-run")
        return DeadDaemon(id=daemon_id, why=why, runs=ids)

    def _orphaned_runs(self, daemon: str | None) -> list[tuple[int, str | None]]:
        """Runs still ``running`` whose daemon row is stopped or gone (not ``daemon``'s:
        its own row says stopped, and its next heartbeat tells it)."""
        found = self.tuples(
            "SELECT runs.id, runs.daemon_id FROM runs LEFT JOIN daemons ON daemons.id = runs.daemon_id "
            "WHERE runs.status = 'running' AND (daemons.id IS NULL OR daemons.stopped_at IS NOT NULL) "
            "ORDER BY runs.id"
        )
        return [(int(r[0]), r[1]) for r in found if r[1] is None or r[1] != daemon]

    def _interrupt_run(self, run_id: int, now: datetime, detail: str) -> bool:
        """Mark one run interrupted if it is still ``running``, and schedule its recovery
        if it opted in (inside ``write()``)."""
        changed = self.execute(
            "UPDATE runs SET status = 'interrupted', ended_at = ?, detail = ? WHERE id = ? AND status = 'running'",
            (self.dialect.instant(now), detail, run_id),
        )
        if changed:
            self.follow_up(run_id, now)
        return bool(changed)
