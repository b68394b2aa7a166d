"""The FastAPI application: `uvicorn app.main:app` serves the artifact at MOVIEREC_MODEL_DIR."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.body import register_schemas
from app.device import resolve_device
from app.errors import install_error_handlers
from app.middleware import BodySizeLimitMiddleware, Metrics, MetricsMiddleware
from app.routers import admin, movies, ops, predict, recommend
from app.schemas import FoldInRequest, PredictRequest
from app.settings import Settings, get_settings
from app.state import ModelHolder, load_model

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
    _limit_native_threads(settings)
    import anyio.to_thread

    anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threadpool_size
    device = resolve_device(settings.device)
    try:
        loaded = load_model(settings.model_dir, settings, device)
    except Exception as exc:
        log.error("cannot serve %s: %s", settings.model_dir, exc)
        raise
    app.state.holder.set(loaded)
    app.state.metrics.set_model(loaded.recommender.run_id, loaded.recommender.kind)
    log.info("serving %s (%s) on %s", loaded.recommender.run_id, loaded.recommender.kind, device)
    yield


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; the model is loaded by the lifespan, not here."""
    settings = settings or get_settings()
    app = FastAPI(
        title="movierec",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.holder = ModelHolder()
    app.state.metrics = Metrics()
    install_error_handlers(app)
    for router in (
        predict.router,
        recommend.router,
        movies.ranking_router,
        movies.router,
        ops.router,
        admin.router,
    ):
        app.include_router(router)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    _document_raw_bodies(app)
    return app


def _document_raw_bodies(app: FastAPI) -> None:
    """Put the bodies that routes parse themselves (app/body.py) into the OpenAPI components."""
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = register_schemas(default_openapi(), PredictRequest, FoldInRequest)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


app = create_app()
