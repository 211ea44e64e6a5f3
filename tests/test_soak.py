"""The soak's 30-second form: daemons SIGKILLed at random lose and double nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.daemon
def test_soak_30_seconds_records_no_duplicate_and_loses_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--seconds", "30", "--one-time", "150",
         "--recurring", "8", "--keep", str(tmp_path / "soak")],
        capture_output=True, text=True, timeout=600,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    figures = {k.strip(): v for k, v in (line.rsplit("  ", 1) for line in done.stdout.splitlines() if "  " in line)}
    for name in ("duplicates", "runs left running", "one-time requests never run", "slots unaccounted"):
        assert figures[name].strip() == "0", report
    assert int(figures["daemons killed"]) >= 3, report
