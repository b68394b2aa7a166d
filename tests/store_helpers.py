"""Databases for the store tests: a SQLite file, and a fresh PostgreSQL database when one is configured.

`MOVIEREC_TEST_POSTGRES_URL` (e.g. from `eval "$(.ci/start-postgres.sh)"`) names a server where the tests may
create and drop databases; without it the PostgreSQL cases are skipped, saying how to enable them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

POSTGRES_ENV = "MOVIEREC_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", "postgresql"]
SKIP_POSTGRES = f'{POSTGRES_ENV} is not set: run `eval "$(.ci/start-postgres.sh)"` to test against PostgreSQL'


@contextmanager
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database of `backend`, removed afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/db/movierec.db"
        return
    server = os.environ.get(POSTGRES_ENV)
    if not server:
        pytest.skip(SKIP_POSTGRES)
    import psycopg

    name = f"movierec_t_{uuid.uuid4().hex[:12]}"
    admin = make_url(server).set(drivername="postgresql")
    admin_dsn = admin.render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
