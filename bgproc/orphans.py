"""Runs left ``running`` by a daemon that is gone from this machine.

Daemons mark such runs ``interrupted`` whenever they look; this lets the
commands that show or act on runs (``monitor``, ``cancel``) do the same when
no daemon is running, so that a run whose daemon was killed does not look
alive for ever. Only daemons of this machine (same host, boot and pid
namespace) are judged, by their pid: a daemon elsewhere is left to daemons,
which time its heartbeat.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from . import liveness
from .daemon.claim import iso_local
from .store import Store


def settle(store: Store, now: datetime) -> list[int]:
    """Mark the runs of this machine's dead daemons interrupted; returns their ids.
    A database that is busy or read-only is left as it is: the next daemon does it."""
    here = liveness.place()
    done: list[int] = []
    try:
        for daemon in store.live_daemons():
            if not liveness.gone_here(daemon.host, daemon.pid, here):
                continue
            with store.immediate():
                fresh = store.get_daemon(daemon.id)
                if fresh is None or fresh.stopped_at is not None:
                    continue
                # When it died is not known: after its last heartbeat, by now. (Not
                # at that heartbeat: a suspended daemon stops beating, its runs do not.)
                done += store.interrupt_daemon_runs(
                    daemon.id, now,
                    f"interrupted: daemon {daemon.id} is no longer running (its last heartbeat "
                    f"{iso_local(fresh.heartbeat_at)}); not re-run",
                )
    except sqlite3.Error:
        pass
    if done:
        store.notify()  # what waited for these runs (a recovery, a one-time run) may start now
    return done
