"""The daemon, split by its jobs: the loop (``loop.py``: run, one pass, sleep,
signals, shutdown) composes the dispatcher (``dispatcher.py``: claiming through
the store, starting runs), the supervisor (``supervisor.py``: the active runs,
from reaping to their recorded outcome), membership (``membership.py``:
heartbeats, dead daemons) and the worker processes (``pool.py``, ``pipes.py``,
``protocol.py``). Beside them: what wakes the loop (``wakeups.py``), a run's
log (``runlog.py``), the operator's event lines (``reporter.py``), how it
lives through a failing database (``outage.py``). What to do with a due
request is the claim pass's, in the store (``bgproc.store.decide``).

Importing the package loads none of them: the child imports
``bgproc.daemon.protocol`` at every run and must stay light, so the loop's
names are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .loop import TEST_CONFIG_ENV, Daemon, DaemonConfig, overrides_for_tests
    from .supervisor import CUT_LOG_BYTES

__all__ = ["CUT_LOG_BYTES", "TEST_CONFIG_ENV", "Daemon", "DaemonConfig", "overrides_for_tests"]

_HOMES = {
    "Daemon": "loop", "DaemonConfig": "loop", "TEST_CONFIG_ENV": "loop", "overrides_for_tests": "loop",
    "CUT_LOG_BYTES": "supervisor",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
