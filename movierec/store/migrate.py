"""Alembic migrations shipped inside the package, run programmatically (no alembic.ini anywhere)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from movierec.store.engine import create_store_engine, is_sqlite, sqlite_path

MIGRATIONS = Path(__file__).with_name("migrations")
# Any fixed 64-bit number: serialises start-up migrations of several replicas on one PostgreSQL.
_PG_LOCK_KEY = 7_316_402_118


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock next to a SQLite file, so that processes starting together migrate one at a time."""
    lock_path = path.with_name(path.name + ".migrate-lock")
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade_engine(engine: Engine) -> str:
    """Bring the database behind `engine` to the newest revision; returns it. Safe to run from many processes."""
    url = engine.url.render_as_string(hide_password=False)
    path = sqlite_path(url) if is_sqlite(url) else None
    if path is not None:
        path.parent.mkdir(
            parents=True, exist_ok=True
        )  # the default lives under data/, which may not exist yet
    lock = _file_lock(path) if path is not None else _nothing()
    with lock, engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        revision = current_revision(connection)
    return revision or ""


def upgrade_to_head(url: str) -> str:
    """`upgrade_engine` for a database URL (what `python -m training import-db` and tests call)."""
    engine = create_store_engine(url)
    try:
        return upgrade_engine(engine)
    finally:
        engine.dispose()


@contextmanager
def _nothing() -> Iterator[None]:
    yield
