"""A task module whose import is slow on demand, for the start-up limit's tests.

In a worker whose environment names a gate file (``BGPROC_TEST_IMPORT_GATE``),
importing this module first leaves a file beside the gate (``GATE.importing``:
proof that the import began) and then waits, up to a minute, for the gate to
exist: a slow import, as long as the test wants. Registering it (no gate)
imports it at once.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bgproc import BackgroundTask, NoParams

GATE_ENV = "BGPROC_TEST_IMPORT_GATE"

_gate = os.environ.get(GATE_ENV)
if _gate:
    Path(f"{_gate}.importing").touch()
    _until = time.monotonic() + 60
    while not os.path.exists(_gate) and time.monotonic() < _until:
        time.sleep(0.01)


class SlowImport(BackgroundTask[NoParams]):
    """Runs at once, once its module is imported."""

    def run(self, params: NoParams) -> None:
        print("running after the import")
