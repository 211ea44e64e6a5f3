"""The SQLite store's daemons: their rows, heartbeats, and what dead ones left running."""

from __future__ import annotations

from datetime import datetime

from ..base import DeadDaemon, Judge, Settled
from ..records import DaemonRecord
from . import rows
from .faults import operation
from .runs import Runs
from .schema import ts


class Daemons(Runs):
    @operation
    def register_daemon(self, daemon: DaemonRecord) -> None:
        with self.immediate():
            self.conn.execute(
                "INSERT INTO daemons (id, host, pid, started_at, heartbeat_at, stopped_at, workers) "
                "VALUES (?, ?, ?, ?, ?, NULL, ?)",
                (daemon.id, daemon.host, daemon.pid, ts(daemon.started_at), ts(daemon.heartbeat_at), daemon.workers),
            )

    @operation
    def beat(self, daemon_id: str, now: datetime) -> bool:
        with self.immediate():
            changed = self.conn.execute(
                "UPDATE daemons SET heartbeat_at = ? WHERE id = ? AND stopped_at IS NULL", (ts(now), daemon_id)
            ).rowcount
        return bool(changed)

    @operation
    def get_daemon(self, daemon_id: str) -> DaemonRecord | None:
        found = list(self.db.query("SELECT * FROM daemons WHERE id = ?", [daemon_id]))
        return rows.daemon(found[0]) if found else None

    @operation
    def daemon_stopped(self, daemon_id: str) -> bool:
        """Whether a daemon's row says it stopped (or was declared dead), or is gone
        (pruned long after it was declared dead)."""
        row = self.conn.execute("SELECT stopped_at FROM daemons WHERE id = ?", (daemon_id,)).fetchone()
        return row is None or row[0] is not None

    @operation
    def live_daemons(self) -> list[DaemonRecord]:
        found = self.db.query("SELECT * FROM daemons WHERE stopped_at IS NULL ORDER BY started_at")
        return [rows.daemon(r) for r in found]

    @operation
    def prune_daemons(self, stopped_before: datetime) -> int:
        with self.immediate():
            return self.conn.execute(
                "DELETE FROM daemons WHERE stopped_at IS NOT NULL AND stopped_at < ?", (ts(stopped_before),)
            ).rowcount

    @operation
    def stop_daemon(self, daemon_id: str, now: datetime) -> None:
        """Record a daemon stopped, leaving its runs as they are (tests make orphans so)."""
        with self.immediate():
            self.conn.execute("UPDATE daemons SET stopped_at = ? WHERE id = ?", (ts(now), daemon_id))

    @operation
    def interrupt_daemon_runs(self, daemon_id: str, now: datetime, detail: str) -> list[int]:
        with self.immediate():
            running = self.conn.execute("SELECT id FROM runs WHERE daemon_id = ? AND status = 'running'", (daemon_id,))
            ids = [int(r[0]) for r in running]
            self.conn.execute(
                "UPDATE runs SET status = 'interrupted', ended_at = ?, detail = ? "
                "WHERE daemon_id = ? AND status = 'running'",
                (ts(now), detail, daemon_id),
            )
            self.conn.execute(
                "UPDATE daemons SET stopped_at = ? WHERE id = ? AND stopped_at IS NULL", (ts(now), daemon_id)
            )
            for run_id in ids:
                self.follow_up(run_id, now)
        return ids

    @operation
    def settle_orphans(self, now: datetime, judge: Judge, *, daemon: str | None = None) -> Settled:
        live = self.live_daemons()
        suspects = [other for other in live if other.id != daemon and judge(other) is not None]
        if not suspects and not self._orphaned_runs(daemon):
            return Settled(live=live)
        with self.immediate():
            dead = [found for found in (self._settle_daemon(other.id, now, judge) for other in suspects) if found]
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
        """Judge a daemon again on its row as it is now, holding the write lock: it may
        have beaten meanwhile, and another may have settled it first."""
        fresh = self.get_daemon(daemon_id)
        why = None if fresh is None or fresh.stopped_at is not None else judge(fresh)
        if why is None:
            return None
        ids = self.interrupt_daemon_runs(daemon_id, now, f"interrupted: daemon {daemon_id} {why}; not re-run")
        return DeadDaemon(id=daemon_id, why=why, runs=ids)

    def _orphaned_runs(self, daemon: str | None) -> list[tuple[int, str | None]]:
        """Runs still ``running`` whose daemon row is stopped or gone (not ``daemon``'s:
        its own row says stopped, and its next heartbeat tells it)."""
        found = self.conn.execute(
            "SELECT runs.id, runs.daemon_id FROM runs LEFT JOIN daemons ON daemons.id = runs.daemon_id "
            "WHERE runs.status = 'running' AND (daemons.id IS NULL OR daemons.stopped_at IS NOT NULL) "
            "ORDER BY runs.id"
        )
        return [(int(r[0]), r[1]) for r in found if r[1] is None or r[1] != daemon]

    def _interrupt_run(self, run_id: int, now: datetime, detail: str) -> bool:
        """Mark one run interrupted if it is still ``running``, and schedule its recovery
        if it opted in (inside ``immediate()``)."""
        changed = self.conn.execute(
            "UPDATE runs SET status = 'interrupted', ended_at = ?, detail = ? WHERE id = ? AND status = 'running'",
            (ts(now), detail, run_id),
        ).rowcount
        if changed:
            self.follow_up(run_id, now)
        return bool(changed)
