"""A fresh PostgreSQL database per test, on the server that ``BGPROC_TEST_POSTGRES``
names (an admin URL; default the development machines' server).

Without a reachable server (or without psycopg) a test that needs one is skipped,
saying how to point the tests at one; with ``BGPROC_REQUIRE_POSTGRES=1`` (CI) the
skip is a failure instead, so CI always runs them.
"""

from __future__ import annotations

import os
import queue
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def admin_url() -> str:
    return os.environ.get("BGPROC_TEST_POSTGRES") or DEFAULT_ADMIN_URL


@cache
def unavailable() -> str | None:
    """Why there is no server to test on, or None."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test,postgres]')"
    try:
        with psycopg.connect(admin_url(), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"no PostgreSQL server at {admin_url()} ({str(exc).strip().splitlines()[0]})"
    return None


def require() -> None:
    """Skip (or, with BGPROC_REQUIRE_POSTGRES=1, fail) the test without a server."""
    why = unavailable()
    if why is None:
        return
    why += "; point the tests at one with BGPROC_TEST_POSTGRES=postgresql://USER@HOST:PORT/DBNAME"
    if os.environ.get("BGPROC_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"BGPROC_REQUIRE_POSTGRES=1 and {why}", pytrace=False)
    pytest.skip(why)


def _admin() -> Any:
    import psycopg

    return psycopg.connect(admin_url(), autocommit=True)


def url_of(name: str) -> str:
    return urlunsplit(urlsplit(admin_url())._replace(path=f"/{name}"))


@contextmanager
def fresh_database(template: str | None = None) -> Iterator[str]:
    """A new database (``bgproc_t_<random>``): empty, or a copy of the database
    ``template`` (a URL; nobody may be connected to it). Dropped afterwards (its
    connections ended), in the background: a drop takes the server a while, and the
    next test need not wait for it. Its URL."""
    require()
    name = f"bgproc_t_{uuid.uuid4().hex[:12]}"
    copy = "" if template is None else f' TEMPLATE "{urlsplit(template).path.lstrip("/")}"'
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"{copy}')
    try:
        yield url_of(name)
    finally:
        _drop_later(name)


def refill(url: str, template: str) -> None:
    """Make the database at ``url`` a copy of ``template``'s (the old one renamed out
    of the way and dropped later)."""
    name, old = urlsplit(url).path.lstrip("/"), f"bgproc_t_{uuid.uuid4().hex[:12]}"
    with _admin() as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(f'ALTER DATABASE "{name}" RENAME TO "{old}"')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{urlsplit(template).path.lstrip("/")}"')
    _drop_later(old)


_drops: queue.Queue[str | None] = queue.Queue()
_dropper: list[threading.Thread] = []


def _drop_later(name: str) -> None:
    if not _dropper:
        _dropper.append(threading.Thread(target=_drop_queued, name="pgserver drops", daemon=True))
        _dropper[0].start()
    _drops.put(name)


def _drop_queued() -> None:
    with _admin() as conn:
        while (name := _drops.get()) is not None:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def finish_drops() -> None:
    """Wait for every database given up to be dropped (at the end of the session)."""
    if _dropper:
        _drops.put(None)
        _dropper.pop().join(120)


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, each table's rows sorted (to prove a failed command
    wrote nothing); ``{}`` for a database without tables."""
    import psycopg

    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )]
        return {t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}


@contextmanager
def lock_everything(url: str) -> Iterator[None]:
    """Another connection holds bgproc's tables locked against writes (reads go on):
    what a writer needs, it waits for."""
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute("LOCK TABLE tasks, requests, runs, run_logs, daemons, reruns IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            conn.rollback()


def query(url: str, sql: str, *params: Any) -> list[dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url, row_factory=dict_row) as conn:
        cursor = conn.execute(sql, params or None)
        return list(cursor.fetchall()) if cursor.description is not None else []


def drop_database(url: str) -> None:
    """Drop a test's database now, ending its connections (as an operator might)."""
    name = urlsplit(url).path.lstrip("/")
    with _admin() as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
