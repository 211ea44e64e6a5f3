"""bgproc: typed background tasks with an embedded scheduler and a process monitor.

The task API is imported eagerly (it is light, and the worker needs it);
the request functions load the store on first use.
"""

from __future__ import annotations

from typing import Any

from .errors import BgprocError
from .task import BackgroundTask, Cancelled, Connection, ConnectionRequired, NoParams

__all__ = [
    "BackgroundTask",
    "BgprocError",
    "Cancelled",
    "Connection",
    "ConnectionRequired",
    "NoParams",
    "schedule",
    "start_new",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("start_new", "schedule"):
        from . import requests

        return getattr(requests, name)
    raise AttributeError(f"module 'bgproc' has no attribute {name!r}")
