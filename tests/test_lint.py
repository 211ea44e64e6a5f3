"""ruff and mypy keep the code honest (skipped where they are not installed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    pytest.importorskip(module)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_finds_nothing() -> None:
    if shutil.which("ruff") is None:
        pytest.importorskip("ruff")
    result = _run("ruff", "check", "bgproc", "tests", "benchmarks", "sample_tasks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing() -> None:
    result = _run("mypy", "bgproc")
    assert result.returncode == 0, result.stdout + result.stderr
