"""A task module whose import is slow on demand, for the start-up limit's tests.

In a worker whose environment names a gate file (``BGPROC_TEST_IMPORT_GATE``),
importing this module first leaves a file beside the gate (``GATE.importing``:
proof that the import began) and then waits, up to a minute, for the gate to
exist: a slow import, as long as the test wants. Registering it (no gate)
imports it at once, and so does the daemon's fork server (not a worker: it has
no worker pipes); a run forked from it, which imports nothing, waits for the
gate as it makes the task instead, still before its task starts.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bgproc import BackgroundTask, NoParams

GATE_ENV = "BGPROC_TEST_IMPORT_GATE"

_gate = os.environ.get(GATE_ENV)


def _wait_for_gate(gate: str) -> None:
    Path(f"{gate}.importing").touch()
    until = time.monotonic() + 60
    while not os.path.exists(gate) and time.monotonic() < until:
        time.sleep(0.01)


# A fresh interpreter's worker has its pipes from the start (the fork server has none).
_import_gated = bool(_gate) and "BGPROC_WORKER_FDS" in os.environ
if _gate and _import_gated:
    _wait_for_gate(_gate)


class SlowImport(BackgroundTask[NoParams]):
    """Runs at once, once its module is imported."""

    def __init__(self) -> None:
        if _gate and not _import_gated:
            _wait_for_gate(_gate)  # forked: the module was imported in the fork server

    def run(self, params: NoParams) -> None:
        print("running after the import")
