"""A fresh PostgreSQL database per test, on the server that ``BGPROC_TEST_POSTGRES``
names (an admin URL; default the development machines' server).

Without a reachable server (or without psycopg) a test that needs one is skipped,
saying how to point the tests at one; with ``BGPROC_REQUIRE_POSTGRES=1`` (CI) the
skip is a failure instead, so CI always runs them.
"""

from __future__ import annotations

import os
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


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty database (``bgproc_t_<random>``), dropped afterwards (its
    connections ended): its URL."""
    require()
    name = f"bgproc_t_{uuid.uuid4().hex[:12]}"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(admin_url())._replace(path=f"/{name}"))
    finally:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
        return list(conn.execute(sql, params or None).fetchall())


def drop_database(url: str) -> None:
    """Drop a test's database now, ending its connections (as an operator might)."""
    name = urlsplit(url).path.lstrip("/")
    with _admin() as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
