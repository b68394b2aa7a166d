"""The FastAPI application: `uvicorn app.main:app` serves the artifact at MOVIEREC_MODEL_DIR."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.database import install_store, start_store, stop_store
from app.device import resolve_device
from app.errors import install_error_handlers
from app.lists import new_list_batcher, new_list_cache, new_turn_batcher
from app.logging_setup import STARTUP_EXPLAINED, ExplainedStartupFailure, configure_logging
from app.memory import fix_mmap_threshold, freeze_loaded_heap, thaw_heap
from app.middleware import BodySizeLimitMiddleware, Metrics, MetricsMiddleware
from app.model_watch import watch_model
from app.offload import HeavyWork
from app.openapi import install_openapi
from app.query import install_query_check
from app.routers import admin, movies, new_movies, ops, predict, ratings, recommend, web_routers
from app.schemas import FoldInRequest, PredictRequest
from app.settings import Settings, get_settings
from app.state import ModelHolder, load_model
from app.thread_results import ThreadResults

log = logging.getLogger(__name__)

DESCRIPTION = """Rating predictions and top-N recommendations from collaborative-filtering models
trained on MovieLens-style explicit ratings. Ids are raw MovieLens ids."""


def _limit_native_threads(settings: Settings) -> None:
    """One BLAS thread per process by default: BLAS threads inside the request threadpool fight each other."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=settings.blas_threads)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the model before serving; a missing or broken artifact stops start-up with the reason."""
    settings: Settings = app.state.settings
    configure_logging(settings.log_level)
    _limit_native_threads(settings)
    import anyio.to_thread

    anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threadpool_size
    device = resolve_device(settings.device)
    fix_mmap_threshold()  # before the first model's arrays: swaps must not grow the heap (app/memory.py)
    try:
        loaded = load_model(settings.model_dir, settings, device)
    except Exception as exc:
        # The reason and what to do, in one line; ExplainedStartupFailure keeps the traceback out of the log.
        log.error(
            "cannot serve %s: %s. Fix: run `make train`, or set MOVIEREC_MODEL_DIR to a trained model",
            settings.model_dir,
            exc,
        )
        setattr(app.state, STARTUP_EXPLAINED, True)
        raise
    app.state.holder.set(loaded)
    app.state.metrics.set_model(loaded.recommender.run_id, loaded.recommender.kind)
    log.info(
        "serving %s (%s) on %s; a top-10 list costs %.2f ms",
        loaded.recommender.run_id,
        loaded.recommender.kind,
        device,
        loaded.list_cost_ms,
    )
    app.state.list_batcher = new_list_batcher(settings)  # fresh per start: the previous ones were closed
    app.state.turn_batcher = new_turn_batcher(settings)
    app.state.thread_results = ThreadResults(
        asyncio.get_running_loop()
    )  # the group commit's acknowledgements
    freeze_loaded_heap()  # what is alive now lives as long as the process or the model (app/memory.py)
    await start_store(app)  # people's own ratings; an unreachable database is a warning, not a failure
    # Follow `latest` (MOVIEREC_MODEL_POLL_SECONDS): a retrain reaches every process with no admin call.
    async with watch_model(app.state.holder, settings, device, app.state.metrics) as watcher:
        app.state.model_watch = watcher
        yield
    app.state.list_batcher.close()
    app.state.turn_batcher.close()
    await stop_store(app)
    thaw_heap()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; the model is loaded by the lifespan, not here."""
    settings = settings or get_settings()
    app = FastAPI(
        title="movierec",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc with local assets: app/routers/docs.py
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.holder = ModelHolder()
    app.state.metrics = Metrics()
    app.state.list_batcher = new_list_batcher(settings)
    app.state.turn_batcher = new_turn_batcher(settings)
    app.state.list_cache = new_list_cache(settings, app.state.metrics)
    app.state.heavy_work = HeavyWork(settings.heavy_threads, settings.heavy_queue)
    install_error_handlers(app)
    install_store(app, settings)
    for router in (
        predict.router,
        recommend.router,
        movies.ranking_router,
        movies.router,
        ops.router,
        admin.router,
        ratings.router,
        new_movies.router,
        *web_routers.ROUTERS,
    ):
        app.include_router(router)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(ExplainedStartupFailure)
    install_query_check(app)  # 422 for a query parameter the route does not declare (app/query.py)
    install_openapi(app, PredictRequest, FoldInRequest)
    return app


app = create_app()
