"""The PostgreSQL store's daemons: their rows, heartbeats on the server's clock, and
what dead ones left running.

A heartbeat is the server's ``clock_timestamp()``, and each row is read with the
seconds since it (``silent_s``), so daemons on hosts whose clocks disagree judge
one another by one clock: the database's.
"""

from __future__ import annotations

from datetime import datetime

from ..base import DeadDaemon, Judge, Settled
from ..records import DaemonRecord
from . import rows
from .faults import operation
from .runs import Runs


class Daemons(Runs):
    @operation
    def register_daemon(self, daemon: DaemonRecord) -> None:
        self.execute(
            "INSERT INTO daemons (id, host, pid, started_at, heartbeat_at, stopped_at, workers) "
            "VALUES (%s, %s, %s, %s, clock_timestamp(), NULL, %s)",
            (daemon.id, daemon.host, daemon.pid, daemon.started_at, daemon.workers),
        )

    @operation
    def beat(self, daemon_id: str, now: datetime) -> bool:
        """The heartbeat is the server's time (``now`` is not used)."""
        changed = self.execute(
            "UPDATE daemons SET heartbeat_at = clock_timestamp() WHERE id = %s AND stopped_at IS NULL", (daemon_id,)
        )
        return bool(changed)

    @operation
    def get_daemon(self, daemon_id: str) -> DaemonRecord | None:
        found = self.row(rows.DAEMON_SELECT + " WHERE id = %s", (daemon_id,))
        return rows.daemon(found) if found else None

    @operation
    def daemon_stopped(self, daemon_id: str) -> bool:
        """Whether a daemon's row says it stopped (or was declared dead), or is gone
        (pruned long after it was declared dead)."""
        found = self.row("SELECT stopped_at FROM daemons WHERE id = %s", (daemon_id,))
        return found is None or found["stopped_at"] is not None

    @operation
    def live_daemons(self) -> list[DaemonRecord]:
        found = self.rows(rows.DAEMON_SELECT + " WHERE stopped_at IS NULL ORDER BY started_at, id")
        return [rows.daemon(r) for r in found]

    @operation
    def prune_daemons(self, stopped_before: datetime) -> int:
        return self.execute(
            "DELETE FROM daemons WHERE stopped_at IS NOT NULL AND stopped_at < %s", (stopped_before,)
        )

    @operation
    def stop_daemon(self, daemon_id: str, now: datetime) -> None:
        """Record a daemon stopped, leaving its runs as they are (tests make orphans so)."""
        self.execute("UPDATE daemons SET stopped_at = %s WHERE id = %s", (now, daemon_id))

    @operation
    def interrupt_daemon_runs(self, daemon_id: str, now: datetime, detail: str) -> list[int]:
        with self.transaction():
            # The daemon's row first: whoever settles it, and its own heartbeat, go one at a time.
            self.execute(
                "UPDATE daemons SET stopped_at = %s WHERE id = %s AND stopped_at IS NULL", (now, daemon_id)
            )
            ids = [
                int(v)
                for v in self.values(
                    "UPDATE runs SET status = 'interrupted', ended_at = %s, detail = %s "
                    "WHERE daemon_id = %s AND status = 'running' RETURNING id",
                    (now, detail, daemon_id),
                )
            ]
            for run_id in sorted(ids):
                self.follow_up(run_id, now)
        return sorted(ids)

    @operation
    def settle_orphans(self, now: datetime, judge: Judge, *, daemon: str | None = None) -> Settled:
        live = self.live_daemons()
        suspects = sorted(other.id for other in live if other.id != daemon and judge(other) is not None)
        if not suspects and not self._orphaned_runs(daemon):
            return Settled(live=live)
        with self.transaction():
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
        """Judge a daemon again on its row as it is now, holding its row's lock: it may
        have beaten meanwhile, and another may have settled it first."""
        found = self.row(rows.DAEMON_SELECT + " WHERE id = %s FOR UPDATE", (daemon_id,))
        fresh = rows.daemon(found) if found else None
        why = None if fresh is None or fresh.stopped_at is not None else judge(fresh)
        if why is None:
            return None
        ids = self.interrupt_daemon_runs(daemon_id, now, f"interrupted: daemon {daemon_id} {why}; not re-run")
        return DeadDaemon(id=daemon_id, why=why, runs=ids)

    def _orphaned_runs(self, daemon: str | None) -> list[tuple[int, str | None]]:
        """Runs still ``running`` whose daemon row is stopped or gone (not ``daemon``'s:
        its own row says stopped, and its next heartbeat tells it)."""
        found = self.rows(
            "SELECT runs.id, runs.daemon_id FROM runs LEFT JOIN daemons ON daemons.id = runs.daemon_id "
            "WHERE runs.status = 'running' AND (daemons.id IS NULL OR daemons.stopped_at IS NOT NULL) "
            "ORDER BY runs.id"
        )
        return [(int(r["id"]), r["daemon_id"]) for r in found if r["daemon_id"] is None or r["daemon_id"] != daemon]

    def _interrupt_run(self, run_id: int, now: datetime, detail: str) -> bool:
        """Mark one run interrupted if it is still ``running``, and schedule its recovery
        if it opted in (inside ``transaction()``)."""
        changed = self.execute(
            "UPDATE runs SET status = 'interrupted', ended_at = %s, detail = %s WHERE id = %s AND status = 'running'",
            (now, detail, run_id),
        )
        if changed:
            self.follow_up(run_id, now)
        return bool(changed)
