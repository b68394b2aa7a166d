"""Engines for the store: SQLite in WAL mode with a busy timeout, PostgreSQL through psycopg 3."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

# How long a writer waits for a lock held elsewhere before giving up (ms): the trainer's and the importer's
# default, where waiting is right; the service passes its own, short `MOVIEREC_DATABASE_BUSY_TIMEOUT_MS`.
DEFAULT_BUSY_TIMEOUT_MS = 30_000
DEFAULT_DATABASE_URL = "sqlite:///data/movierec.db"


def normalise_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here (SQLAlchemy's bare default is psycopg2, which is not installed)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for in-memory databases)."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def create_store_engine(
    url: str,
    *,
    connect_timeout_s: int = 5,
    pool_size: int = 10,
    statement_timeout_ms: int = 0,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
) -> Engine:
    """An engine for `url` (no connection yet); every SQLite connection runs in WAL mode.

    WAL lets readers in other processes see each committed write on their next statement while a writer holds
    the lock; the busy timeout makes concurrent writers wait for each other, up to `busy_timeout_ms`, instead of
    failing at once. The same bound applies to waiting for a pooled connection and, on PostgreSQL, to waiting
    for a row or table lock (`lock_timeout`): past it a call fails (`StoreBusyError`) rather than hanging.
    `statement_timeout_ms` (PostgreSQL; 0: none) bounds each statement, for the service: a server that accepts
    connections but stops answering fails a request instead of holding it. Bulk imports and training reads
    leave it at 0.
    """
    url = normalise_url(url)
    # A pre-ping costs a round trip per checkout: worth it for a server that can restart under the pool (a
    # stale connection is replaced before use, so the first write after an outage succeeds), not for a file.
    kwargs: dict[str, Any] = {"pool_pre_ping": not is_sqlite(url)}
    # Up to 40 connections, the service's default worker threads; past that a request waits for one, at most
    # the busy timeout (a bounded queue, not an outage: an unreachable server fails fast via `connect_timeout`).
    kwargs["pool_size"] = pool_size
    kwargs["max_overflow"] = 3 * pool_size
    kwargs["pool_timeout"] = max(busy_timeout_ms, 1) / 1000
    if is_sqlite(url):
        kwargs["connect_args"] = {"timeout": busy_timeout_ms / 1000, "check_same_thread": False}
    else:
        kwargs["connect_args"] = {"connect_timeout": connect_timeout_s}
        options = [f"-c lock_timeout={busy_timeout_ms}"] if busy_timeout_ms > 0 else []
        if statement_timeout_ms > 0:
            options.append(f"-c statement_timeout={statement_timeout_ms}")
        if options:
            kwargs["connect_args"]["options"] = " ".join(options)
    engine = create_engine(url, **kwargs)
    if is_sqlite(url):
        event.listen(engine, "connect", functools.partial(_sqlite_pragmas, busy_timeout_ms=busy_timeout_ms))
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, busy_timeout_ms: int) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # NORMAL is durable across a process kill in WAL mode (only a power loss can drop the last commits).
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()
