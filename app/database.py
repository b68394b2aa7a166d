"""The ratings database as the service sees it: opened with the app, migrated at start-up, 503 when down.

The database is never a reason not to serve: a start-up with it unreachable logs a warning and the model still
answers (reads fall back to trained vectors); the migrations run again at the first write after it returns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.errors import error_response
from app.settings import Settings
from movierec.store import RatingStore, StoreBusyError, StoreUnavailableError, create_store_engine

log = logging.getLogger(__name__)
T = TypeVar("T")


def install_store(app: FastAPI, settings: Settings) -> None:
    """Create the store (no connection yet) and map `StoreUnavailableError` to a 503 with Retry-After."""
    from app.user_vectors import UserVectorCache  # app.user_vectors builds on this module

    url = settings.database_url.get_secret_value()
    engine = create_store_engine(
        url,
        statement_timeout_ms=settings.database_statement_timeout_ms,
        busy_timeout_ms=settings.database_busy_timeout_ms,
    )
    app.state.store = RatingStore(url, engine=engine, busy_timeout_ms=settings.database_busy_timeout_ms)
    app.state.user_vectors = UserVectorCache(settings.user_cache_size)
    app.state.metrics.user_vector_cache.set_function(lambda: len(app.state.user_vectors))
    store = app.state.store

    def mirrored_users() -> float:
        mirror = store.version_mirror
        return -1.0 if mirror is None or not mirror.following else float(len(mirror))

    app.state.metrics.version_mirror.set_function(mirrored_users)

    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StoreUnavailableError)
        log.warning("%s on %s %s: %s", exc.code, request.method, request.url.path, exc)
        # The reason goes to the log above (without host, user or password), not to clients.
        what = (
            "busy: a lock held elsewhere (another writer, a backup, a migration) outlasted "
            f"MOVIEREC_DATABASE_BUSY_TIMEOUT_MS ({settings.database_busy_timeout_ms} ms)"
            if isinstance(exc, StoreBusyError)
            else "unavailable"
        )
        return error_response(
            503,
            exc.code,
            f"the ratings database is {what}: ratings cannot be read or written right now, retry in "
            f"{exc.retry_after_s} s (recommendations and predictions from the model keep working)",
            {"Retry-After": str(exc.retry_after_s)},
        )

    app.add_exception_handler(StoreUnavailableError, _unavailable)


async def start_store(app: FastAPI) -> None:
    """Migrate the database at start-up; unreachable is a warning, not a failure (see the module docstring)."""
    store: RatingStore = app.state.store
    try:
        await anyio.to_thread.run_sync(store.ensure_migrated)
        log.info("ratings database ready (%s)", store.dialect)
    except StoreUnavailableError as exc:
        log.warning("ratings database unavailable at start-up, serving the model without it: %s", exc)
    settings: Settings = app.state.settings
    if settings.version_mirror_max_users > 0:
        store.start_version_mirror(
            settings.version_mirror_max_users
        )  # retries by itself while the db is down


async def stop_store(app: FastAPI) -> None:
    store: RatingStore = app.state.store
    store.close()


def get_store(request: Request) -> RatingStore:
    store: RatingStore = request.app.state.store
    return store


async def run_read(store: RatingStore, work: Callable[[], T]) -> T:
    """A short read: inline on SQLite (a local file, tens of µs, cheaper than a thread hop), in a worker
    thread for a server database (a network round trip must not block the event loop)."""
    if store.dialect == "sqlite":
        return work()
    return await anyio.to_thread.run_sync(work)


# /ready waits at most this long for the database (it must answer a load balancer quickly, whatever the state).
READY_TIMEOUT_S = 2.0


async def database_state(app: FastAPI) -> str:
    """'ok' when the ratings database answers (migrated), 'unavailable' otherwise or after READY_TIMEOUT_S."""
    store: RatingStore = app.state.store
    with anyio.move_on_after(READY_TIMEOUT_S):
        try:
            await anyio.to_thread.run_sync(store.ping, abandon_on_cancel=True)
            return "ok"
        except StoreUnavailableError as exc:
            log.warning("readiness: ratings database unavailable: %s", exc)
    return "unavailable"
