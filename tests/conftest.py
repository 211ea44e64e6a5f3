"""Shared test helpers: a database per test, the command line in-process or as a
real subprocess, polling with a deadline, and database snapshots; and the fast
lane's rule held: a test not marked ``daemon`` starts no daemon and no worker.

A module marked ``both_stores`` (``pytestmark = pytest.mark.both_stores``) runs each
test that takes ``db`` (itself or through a fixture) on each store, SQLite and
PostgreSQL (test ids ``[sqlite]``/``[postgres]``); a test there marked
``sqlite_only`` (what is about files) runs on SQLite alone. ``db`` is a database
target: a SQLite file's ``Path`` or a PostgreSQL URL (``str``), as ``--db`` takes it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_tasks" / "activities.py"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        import json

        return json.loads(self.out)


# The worker's module, by its names before and after the daemon's split.
WORKER_MODULES = {"bgproc.worker", "bgproc.child", "bgproc.forkserver"}


def starts_a_daemon_or_worker(args: Any) -> bool:
    """Whether a command line runs a worker, or `bgproc daemon` or `bgproc demo`."""
    argv = [str(a) for a in args] if isinstance(args, list | tuple) else str(args).split()
    rest: list[str] = []
    if len(argv) > 1 and Path(argv[0]).name == "bgproc":
        rest = argv[1:]
    for i, arg in enumerate(argv[:-1]):
        if arg == "-m" and argv[i + 1] in WORKER_MODULES:
            return True
        if arg == "-m" and argv[i + 1] == "bgproc":
            rest = argv[i + 2 :]
    while rest[:1] == ["--db"]:
        rest = rest[2:]
    return bool(rest) and rest[0] in ("daemon", "demo")


@pytest.fixture(autouse=True)
def _fast_lane_starts_no_daemon(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast lane (`-m "not daemon"`) runs no real daemon and no worker process:
    a test that starts one without the ``daemon`` mark fails, in either lane."""
    if request.node.get_closest_marker("daemon") is not None:
        return

    class Guarded(subprocess.Popen):  # type: ignore[type-arg]
        def __init__(self, args: Any, *rest: Any, **options: Any) -> None:
            if starts_a_daemon_or_worker(args):
                # pytest.fail is a BaseException: the daemon's own error handling cannot swallow it
                pytest.fail(f"this test starts {args!r}; mark it @pytest.mark.daemon", pytrace=False)
            super().__init__(args, *rest, **options)

    monkeypatch.setattr(subprocess, "Popen", Guarded)


STORES = ("sqlite", "postgres")

# A database target: a SQLite file's path, or a PostgreSQL database's URL.
Target = Path | str


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``db`` on each store, in the modules (or for the tests) marked ``both_stores``."""
    both = metafunc.definition.get_closest_marker("both_stores") is not None
    one = metafunc.definition.get_closest_marker("sqlite_only") is not None
    if both and not one and "db" in metafunc.fixturenames:
        metafunc.parametrize("db", STORES, indirect=True)


@contextmanager
def target_on(store: str, tmp_path: Path) -> Iterator[Target]:
    """A fresh, empty database target on ``store``: a file not made yet, or a new
    PostgreSQL database (``pgserver``: skipped without a server), dropped afterwards."""
    if store == "sqlite":
        yield tmp_path / "data" / "bgproc.db"
        return
    import pgserver

    with pgserver.fresh_database() as url:
        yield url


@pytest.fixture(autouse=True)
def _no_subreaper_after_the_test() -> Iterator[None]:
    """A daemon made in the test process (with the fork server on) makes it the reaper
    of orphaned descendants; the next tests get a test process as it was."""
    yield
    from bgproc.daemon.forking import become_subreaper

    become_subreaper(False)


@pytest.fixture(params=["fork", "spawn"])
def isolation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways a run's process starts: forked by the daemon's fork server, and a fresh
    interpreter (``BGPROC_FORK_SERVER=0``, as for a task with ``isolation = "spawn"``).
    A test module that uses it runs each of its tests in both."""
    monkeypatch.setenv("BGPROC_FORK_SERVER", "1" if request.param == "fork" else "0")
    return str(request.param)


@pytest.fixture
def spawn_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every run a fresh interpreter: no fork server (the spare worker's tests)."""
    monkeypatch.setenv("BGPROC_FORK_SERVER", "0")


@pytest.fixture
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """This test's database: a SQLite file's path; on each store in a ``both_stores``
    module."""
    with target_on(getattr(request, "param", "sqlite"), tmp_path) as target:
        yield target


@pytest.fixture
def pg_db() -> Iterator[str]:
    """A fresh PostgreSQL database's URL (see ``pgserver``: skipped without a server)."""
    import pgserver

    with pgserver.fresh_database() as url:
        yield url


@pytest.fixture(params=STORES)
def store_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """A database target on each store: a SQLite file's path, a PostgreSQL URL. What
    ``--db`` takes, and what ``cli_on``, ``run_bgproc`` and ``bgproc_env`` take."""
    with target_on(request.param, tmp_path) as target:
        yield target


def cli_on(target: Path | str, capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """The command line in-process against ``target`` (a path or a URL)."""
    from bgproc.cli import run

    def invoke(*args: str) -> Result:
        capsys.readouterr()
        code = run(["--db", str(target), *args])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return invoke


@pytest.fixture
def cli(db: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run the command line in-process (fast) against this test's database."""
    return cli_on(db, capsys)


@pytest.fixture
def store_cli(store_db: Path | str, capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """``cli`` on each store (``store_db``)."""
    return cli_on(store_db, capsys)


def bgproc_env(db: Path | str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["BGPROC_DB"] = str(db)
    env.pop("BGPROC_APP_DB", None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def run_bgproc(db: Path | str, *args: str, timeout: float = 60, **env: str) -> Result:
    """Run the command line as a real subprocess."""
    proc = subprocess.run(
        [sys.executable, "-m", "bgproc", *args], capture_output=True, text=True,
        env=bgproc_env(db, **env), timeout=timeout, cwd=str(ROOT),
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.02) -> Any:
    """Poll until ``predicate()`` is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


def snapshot(db: Target) -> dict[str, list[tuple]]:
    """Every row of every table (to prove a failed command wrote nothing), on either
    store."""
    if is_url(db):
        import pgserver

        return pgserver.snapshot(str(db))
    db = Path(db)
    if not db.exists():
        return {}
    conn = sqlite3.connect(db)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall() for t in tables}
    finally:
        conn.close()


def created(db: Target) -> bool:
    """Whether a database was made there: the file, or bgproc's tables on the server."""
    if is_url(db):
        import pgserver

        return bool(pgserver.snapshot(str(db)))
    return Path(db).exists()


def insert_runs(db: Target, *runs: dict[str, Any]) -> list[int]:
    """Record run rows as a daemon would (``insert_run``'s keywords each), in one
    transaction, on either store: their ids."""
    from bgproc.store import open_store

    with open_store(db) as store:
        begin = getattr(store, "immediate", None) or getattr(store, "transaction")  # noqa: B009
        with begin():
            return [store.insert_run(**run) for run in runs]  # type: ignore[attr-defined]


def is_url(db: Path | str) -> bool:
    """Whether a database target is a PostgreSQL URL (else a SQLite file)."""
    return isinstance(db, str) and db.startswith(("postgresql://", "postgres://"))


def query(db: Path | str, sql: str, *params: Any) -> list[dict[str, Any]]:
    """Rows as dicts, from a SQLite file or a PostgreSQL database (``?`` placeholders
    either way)."""
    if is_url(db):
        import pgserver

        return pgserver.query(str(db), sql.replace("?", "%s"), *params)
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        with conn:  # what it changes, committed
            return [dict(r) for r in conn.execute(sql, params)]
    finally:
        conn.close()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The PostgreSQL databases the tests made are dropped by now."""
    pgserver = sys.modules.get("pgserver")
    if pgserver is not None:
        pgserver.finish_drops()
