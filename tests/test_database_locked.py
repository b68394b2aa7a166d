"""A database held locked by another process (a backup, a migration, a stuck writer) never makes a write hang.

uvicorn on 127.0.0.1 serves with ratings in a real SQLite file or PostgreSQL database; another process takes a
write lock and holds it for longer than MOVIEREC_DATABASE_BUSY_TIMEOUT_MS. A PUT answers 503
`database_busy` with Retry-After soon after the busy timeout, reads (history, lists) stay fast meanwhile, and
once the lock is gone the same PUT is stored.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from servers import running_uvicorn
from sqlalchemy.engine import make_url
from store_helpers import BACKENDS, database_url

from movierec.artifacts import load_bundle

KEY = "locked-db-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
BUSY_TIMEOUT_MS = 1000
HOLD_S = 20  # far longer than the busy timeout: the PUT must not wait for the lock to go
# SQLite: a write transaction in another process (WAL readers go on). PostgreSQL: a table lock that lets only
# plain SELECTs through.
HOLDERS = {
    "sqlite": (
        "import sqlite3, sys, time\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE')\n"
        "print('locked', flush=True); time.sleep(float(sys.argv[2]))\n"
    ),
    "postgresql": (
        "import psycopg, sys, time\n"
        "c = psycopg.connect(sys.argv[1])\n"
        "c.execute('LOCK TABLE ratings, user_state IN EXCLUSIVE MODE')\n"
        "print('locked', flush=True); time.sleep(float(sys.argv[2]))\n"
    ),
}


@contextmanager
def locked(backend: str, url: str) -> Iterator[None]:
    """Another process holds a write lock on the ratings database until the block ends."""
    parsed = make_url(url)
    target = (
        parsed.database
        if backend == "sqlite"
        else parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDERS[backend], str(target), str(HOLD_S)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_write_to_a_locked_database_is_refused_soon_and_reads_go_on(
    backend: str, tiny_model_root: Path, tmp_path: Path
) -> None:
    with database_url(backend, tmp_path) as url:
        env = {
            "MOVIEREC_MODEL_DIR": str(tiny_model_root / "latest"),
            "MOVIEREC_API_KEY": KEY,
            "MOVIEREC_DATABASE_URL": url,
            "MOVIEREC_DATABASE_BUSY_TIMEOUT_MS": str(BUSY_TIMEOUT_MS),
        }
        with running_uvicorn(env) as base, httpx.Client(base_url=base, timeout=30) as client:
            first, second = (int(m) for m in load_bundle(tiny_model_root / "latest").movie_ids.ids[:2])
            assert client.put(f"/users/1/ratings/{first}", json={"rating": 4}, headers=AUTH).status_code in (
                200,
                201,
            )
            with locked(backend, url):
                started = time.monotonic()
                response = client.put(f"/users/1/ratings/{second}", json={"rating": 3}, headers=AUTH)
                waited = time.monotonic() - started
                assert response.status_code == 503, response.text
                assert response.json()["code"] == "database_busy"
                assert int(response.headers["retry-after"]) >= 1
                # Bounded by the busy timeout (plus the request), nowhere near the lock's 20 s.
                assert waited < BUSY_TIMEOUT_MS / 1000 + 4, waited
                for path in ("/users/1/ratings", "/recommend/1?k=5"):
                    started = time.monotonic()
                    read = client.get(path, headers=AUTH)
                    assert read.status_code == 200, (path, read.text)
                    assert time.monotonic() - started < 1.0, path
            stored = client.put(f"/users/1/ratings/{second}", json={"rating": 3}, headers=AUTH)
            assert stored.status_code in (200, 201), stored.text
            history = client.get("/users/1/ratings", headers=AUTH).json()
            assert {int(r["movie_id"]) for r in history["items"]} == {first, second}
