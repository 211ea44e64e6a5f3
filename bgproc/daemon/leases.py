"""Workers' leases, renewed by the daemon at the heartbeat interval: a worker that
hears nothing within its lease stops its task itself (``DaemonConfig.worker_lease``;
the worker's side is ``bgproc.lifeline``), so that a daemon stopped or suspended
cannot leave a run going after another daemon has declared it dead.

Renewals go on while the database fails (a daemon that is alive keeps its runs)
except where the database times heartbeats (``Store.heartbeats_expire``: any
daemon declares another dead once its row has been silent for the expiry by the
database's clock, whether that one is alive or not). There a lease is renewed,
and a run started, only within one heartbeat interval after the last heartbeat
the database took (the *fence*). As ``worker_lease`` leaves lease and grace two
intervals short of the expiry, a daemon cut off from its database has its runs
stopped, and what was left of them killed, an interval before any daemon can
declare it dead. Renewals are held back rather than shortened: the worker
protocol stays as it is (a renewal is one byte, the lease's length is fixed at
the start), and the bound holds however late the loop's passes come.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..store import Store
    from .loop import DaemonConfig
    from .outage import Outage
    from .pool import Pool
    from .reporter import Reporter


class Leases:
    """The renewals of one daemon's workers' leases. ``beaten``: when the last
    heartbeat (or registration) the database took was sent (monotonic)."""

    def __init__(
        self, store: Store, config: DaemonConfig, reporter: Reporter, pool: Pool, outage: Outage,
        beaten: Callable[[], float],
    ) -> None:
        self.config = config
        self.reporter = reporter
        self.pool = pool
        self.outage = outage
        self.lease = config.worker_lease()
        self._fenced = store.heartbeats_expire  # whether renewals stop at the fence
        self._beaten = beaten
        self.last_renewal = 0.0  # monotonic
        self._last_call: float | None = None  # the loop's last pass (monotonic)
        self._said = False  # a renewal held back at the fence said, since the last one sent

    def fenced(self, mono: float) -> bool:
        """Whether no lease may be renewed, nor a run started, now: the database has
        taken no heartbeat for over an interval (where it times them)."""
        return self._fenced and mono > self._beaten() + self.config.heartbeat_s

    def renew(self, mono: float) -> None:
        """Renew each worker's lease, at the heartbeat interval, unless fenced. Called
        first in every pass of the loop, and while the database fails."""
        quiet = 0.0 if self._last_call is None else mono - self._last_call
        self._last_call = mono
        if self.lease is None or mono - self.last_renewal < self.config.heartbeat_s:
            return
        if self.fenced(mono):
            self._say_held(mono)
            return
        self.last_renewal, self._said = mono, False
        if quiet > self.lease[0] and self.pool.runs:
            self.reporter.event(
                f"this daemon's loop did not run for {quiet:.0f}s (stopped or suspended?), past its workers' "
                f"lease of {self.lease[0]:g}s: they stop their runs themselves"
            )
        for run in self.pool.runs.values():
            self.pool.renew(run)

    def delays(self, mono: float) -> list[float]:
        """When the next renewal is due (none while fenced: a heartbeat taken comes first)."""
        if self.lease is None or self.fenced(mono):
            return []
        return [self.config.heartbeat_s - (mono - self.last_renewal)]

    def _say_held(self, mono: float) -> None:
        """Once per lapse, while the database fails (not for the moment before a
        heartbeat due in this very pass is sent)."""
        live = [run for run in self.pool.runs.values() if not run.reaped]
        if self._said or self.outage.fault is None or not live or self.lease is None:
            return
        self._said = True
        lease_s, grace_s = self.lease
        self.reporter.event(
            f"the database has taken no heartbeat from this daemon for {mono - self._beaten():.0f}s "
            f"({self.outage.fault.kind}): its workers' leases are no longer renewed, so its {len(live)} running "
            f"stop within {lease_s + grace_s:g}s of the last renewal, before another daemon can declare this one "
            f"dead ({self.config.heartbeat_expiry_s:g}s after its last heartbeat) and run them again"
        )


__all__ = ["Leases"]
