"""The one error family of bgproc.

Every error a user can cause is a ``BgprocError`` whose message names the
thing that was wrong and how to fix it; the command line prints it on one
line and exits non-zero. Anything else escaping is a bug.
"""

from __future__ import annotations


class BgprocError(Exception):
    """Root of every error bgproc raises on purpose."""

    exit_code = 1


class ParamsError(BgprocError):
    """Parameters that cannot be converted, validated or (de)serialized."""


class TimingError(BgprocError):
    """A timing that cannot be parsed or can never fire."""


class RegistryError(BgprocError):
    """A module or task that cannot be registered or found."""


class NotFound(BgprocError):
    """An id or name that the database does not know."""


class StateError(BgprocError):
    """An operation that the current state of a request or run forbids."""


class StoreError(BgprocError):
    """A database file that cannot be opened or used safely."""
