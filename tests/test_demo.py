"""README's first command, `bgproc demo`, end to end: a real process in a fresh
directory, with no database named, so it makes its own."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ROOT, Result


def _demo(tmp_path: Path, *db: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("BGPROC_DB", "BGPROC_APP_DB")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["COLUMNS"] = "160"
    proc = subprocess.run(
        [sys.executable, "-m", "bgproc", *db, "demo", "--delay", "0.2"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.daemon
def test_demo_in_a_fresh_directory_runs_the_sample_and_shows_it(tmp_path: Path) -> None:
    out = _demo(tmp_path)
    assert (tmp_path / "bgproc-demo.db").is_file()
    _assert_shown(out)


@pytest.mark.daemon
def test_demo_on_postgresql_keeps_the_samples_rows_in_a_file_of_their_own(pg_db: str, tmp_path: Path) -> None:
    secret = pg_db.replace("postgres@", "postgres:hunter2@", 1)
    out = _demo(tmp_path, "--db", secret)
    assert not (tmp_path / "bgproc-demo.db").exists() and (tmp_path / "bgproc-demo-app.db").is_file()
    assert "application database bgproc-demo-app.db" in out and "hunter2" not in out
    assert f"--db {pg_db.replace('postgres@', 'postgres:***@', 1)} monitor" in out
    _assert_shown(out)


def _assert_shown(out: str) -> None:
    rows = [line for line in out.splitlines() if "BackgroundActivityCreator" in line and "success" in line]
    assert rows, f"no success row in the monitor's table:\n{out}"
    activity = re.search(r"^5\. the activity row: id ([0-9a-f-]{36}), category 'To do', created ", out, re.M)
    assert activity, f"no activity row:\n{out}"
    assert f"│ activity {activity[1]} " in rows[0], "the row is the one that run created"
    assert "demo succeeded" in out


@pytest.mark.parametrize("delay", ["1e308", "inf", "nan", "-1", "241"])
def test_a_delay_the_sample_task_cannot_finish_within_its_timeout_is_refused(
    cli: Callable[..., Result], db: Path, delay: str
) -> None:
    result = cli("demo", "--delay", delay)
    assert result.code == 2 and result.out == ""
    assert result.err.count("\n") == 1 and "'--delay'" in result.err and "from 0 to 240 seconds" in result.err
    assert not db.exists()


def test_the_longest_demo_delay_fits_in_the_sample_tasks_timeout() -> None:
    from bgproc.cli.demo import MAX_DELAY_S
    from sample_tasks.activities import BackgroundActivityCreator

    assert MAX_DELAY_S + 60 <= BackgroundActivityCreator.timeout_seconds()


@pytest.mark.daemon
def test_a_failed_demo_shows_no_activity_row_an_earlier_demo_left(tmp_path: Path) -> None:
    from bgproc.cli.demo import TITLE

    app_db = tmp_path / "app.db"
    with sqlite3.connect(app_db) as conn:
        conn.execute("CREATE TABLE activities (id TEXT PRIMARY KEY, title TEXT, category TEXT, created_at TEXT)")
        conn.execute("INSERT INTO activities VALUES ('earlier-row', ?, 'To do', '2020-01-01T00:00:00+00:00')", [TITLE])
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON activities BEGIN SELECT RAISE(ABORT, 'no more activities'); END"
        )
    env = {k: v for k, v in os.environ.items() if k != "BGPROC_DB"}
    env["BGPROC_APP_DB"] = str(app_db)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run(
        [sys.executable, "-m", "bgproc", "demo", "--delay", "0"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "earlier-row" not in out and "the activity row" not in out
    assert "5. no activity row: the run ended error" in out
    assert "demo failed" in out
