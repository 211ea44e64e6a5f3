"""The task the soak runs: a short body that leaves one marker file per execution.

The marker's name carries the request and run ids and the worker's pid, so the
soak can tell a body that ran twice for one run (or one one-time request) from
the database's own record, which it does not trust for this.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from bgproc import BackgroundTask, ConnectionRequired


@dataclass
class SoakParams:
    markers: str
    sleep_ms: int = 50


class SoakTask(BackgroundTask[SoakParams], ConnectionRequired):
    """Sleeps a little and leaves a marker per execution (benchmarks/soak.py)."""

    timeout = 60

    def run(self, params: SoakParams) -> None:
        connection = self.connection
        name = f"{connection.request_id}-{connection.run_id}-{os.getpid()}"
        # Written before the sleep: a body that started counts, even if it is killed.
        fd = os.open(os.path.join(params.markers, name), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
        os.close(fd)
        time.sleep(params.sleep_ms / 1000)
