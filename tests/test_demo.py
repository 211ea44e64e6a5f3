"""README's first command, `bgproc demo`, end to end: a real process in a fresh
directory, with no database named, so it makes its own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT


@pytest.mark.daemon
def test_demo_in_a_fresh_directory_runs_the_sample_and_shows_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("BGPROC_DB", "BGPROC_APP_DB")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["COLUMNS"] = "160"
    proc = subprocess.run(
        [sys.executable, "-m", "bgproc", "demo", "--delay", "0.2"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert (tmp_path / "bgproc-demo.db").is_file()
    rows = [line for line in out.splitlines() if "BackgroundActivityCreator" in line and "success" in line]
    assert rows, f"no success row in the monitor's table:\n{out}"
    activity = re.search(r"^5\. the activity row: id ([0-9a-f-]{36}), category 'To do', created ", out, re.M)
    assert activity, f"no activity row:\n{out}"
    assert f"│ activity {activity[1]} " in rows[0], "the row is the one that run created"
    assert "demo succeeded" in out
