"""A PostgreSQL store's connections over a network that may fail under them.

A host cut off (its link down, a partition) drops packets without a word to
either side: without limits, a query sent then waits for TCP's retransmissions
(a quarter of an hour), the daemon's loop with it, and the server keeps the
lost client's transaction, and its row locks, until it notices (hours). So each
connection is opened with limits on both ends:

- this side: data the server has not acknowledged for ``USER_TIMEOUT_S``, or an
  idle connection whose keepalives go unanswered as long, ends the connection
  (``OperationalError``: the store's ``StoreIOError``; the next operation connects
  again), as does a connection not made within the caller's ``connect_timeout``;
- the server's side: a session idle inside a transaction for
  ``IDLE_IN_TRANSACTION_S`` (bgproc's transactions are a few statements sent one
  after another) is ended, its locks released, so a lost host's claim or outcome
  blocks no other daemon for longer; and the server's keepalives and user
  timeout end a lost client's session as this side does.

Limits the URL sets itself (``?tcp_user_timeout=...``, ``keepalives_idle``...)
are kept.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

USER_TIMEOUT_S = 10
KEEPALIVE_IDLE_S = 5
KEEPALIVE_INTERVAL_S = 2
KEEPALIVE_COUNT = 3
IDLE_IN_TRANSACTION_S = 5


def client_limits(url: str) -> dict[str, Any]:
    """libpq's keepalive and user-timeout parameters, but those the URL gives."""
    limits: dict[str, Any] = {
        "keepalives": 1,
        "keepalives_idle": KEEPALIVE_IDLE_S,
        "keepalives_interval": KEEPALIVE_INTERVAL_S,
        "keepalives_count": KEEPALIVE_COUNT,
        "tcp_user_timeout": USER_TIMEOUT_S * 1000,
    }
    given = conninfo_to_dict(url)
    return {name: value for name, value in limits.items() if name not in given}


SERVER_LIMITS = (
    f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_S * 1000}",
    f"SET tcp_user_timeout = {USER_TIMEOUT_S * 1000}",
    f"SET tcp_keepalives_idle = {KEEPALIVE_IDLE_S}",
    f"SET tcp_keepalives_interval = {KEEPALIVE_INTERVAL_S}",
    f"SET tcp_keepalives_count = {KEEPALIVE_COUNT}",
)


def connect(url: str, *, connect_timeout: int, application_name: str) -> psycopg.Connection[Any]:
    """A connection in autocommit mode with the limits above on both ends; raises
    ``psycopg.Error``."""
    conn = psycopg.connect(
        url, autocommit=True, connect_timeout=connect_timeout, application_name=application_name,
        **client_limits(url),
    )
    try:
        conn.execute("; ".join(SERVER_LIMITS))
    except BaseException:
        conn.close()
        raise
    return conn
