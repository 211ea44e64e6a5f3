"""The daemon: the loop (``loop.py``), a run's log (``runlog.py``), the operator's
event lines (``reporter.py``), how it lives through a failing database
(``outage.py``). What to do with a due request is the claim pass's, in the
store (``bgproc.store.decide``).

Importing the package loads none of them: the child imports
``bgproc.daemon.protocol`` at every run and must stay light, so the loop's
names are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .loop import CUT_LOG_BYTES, TEST_CONFIG_ENV, Daemon, DaemonConfig, overrides_for_tests

__all__ = ["CUT_LOG_BYTES", "TEST_CONFIG_ENV", "Daemon", "DaemonConfig", "overrides_for_tests"]

_HOMES = {
    "Daemon": "loop", "DaemonConfig": "loop", "TEST_CONFIG_ENV": "loop", "overrides_for_tests": "loop",
    "CUT_LOG_BYTES": "loop",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
