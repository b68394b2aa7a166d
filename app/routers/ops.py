"""What operators need: liveness, readiness, model info, Prometheus metrics, genres."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.auth import require_metrics_token
from app.database import database_state
from app.dependencies import LoadedDep, MetricsDep
from app.errors import error_response, public_detail
from app.schemas import ErrorResponse, ModelInfo, ModelWatchInfo, StatusResponse

router = APIRouter(tags=["operations"])


# HEAD answers like GET (load balancers probe with it); one documented operation per path.
@router.head("/health", include_in_schema=False, response_model=None)
@router.get("/health", response_model=StatusResponse, response_model_exclude_none=True)
async def health(request: Request) -> StatusResponse:
    """Liveness: the process answers (with the served run, once one is loaded)."""
    loaded = request.app.state.holder.current
    return StatusResponse(status="ok", run_id=None if loaded is None else loaded.recommender.run_id)


@router.head("/ready", include_in_schema=False, response_model=None)
@router.get("/ready", response_model=StatusResponse, responses={503: {"model": ErrorResponse}})
async def ready(request: Request) -> StatusResponse | Response:
    """Readiness: 200 once a model is loaded and serving, 503 before. `database` reports the ratings database
    but never fails the check: without it the model still serves (only rating writes answer 503)."""
    loaded = request.app.state.holder.current
    if loaded is None:
        return error_response(503, "not_ready", "no model is loaded yet")
    database = await database_state(request.app)
    return StatusResponse(status="ready", run_id=loaded.recommender.run_id, database=database)


@router.get("/model", response_model=ModelInfo, responses={503: {"model": ErrorResponse}})
async def model_info(loaded: LoadedDep, request: Request) -> ModelInfo:
    """The served model's manifest: kind, run id, metrics, data fingerprint, and the device in use.

    `evaluated_model` is the model the metrics describe, `served_model` the one answering; after a refit on all
    ratings they differ, and the served model's own held-out error is unknown.
    """
    m = loaded.recommender.manifest
    return ModelInfo(
        run_id=m.run_id,
        model_kind=m.model_kind,
        created_at=m.created_at,
        schema_version=m.schema_version,
        metrics={k: v for k, v in m.metrics.items()},
        data=_public_data(m.data),
        config=m.config,
        libraries=m.libraries,
        n_users=m.n_users,
        n_movies=m.n_movies,
        scorer=m.scorer,
        evaluated_model=m.evaluated_model,
        served_model=m.served_model,
        device=loaded.device,
        loaded_at=loaded.loaded_at,
        model_watch=_watch_info(request),
    )


def _public_data(data: dict[str, Any]) -> dict[str, Any]:
    """The manifest's data section, the training database by its dialect alone: an artifact from before the
    trainer wrote only that may hold a URL with host and user (never a password), which no response names."""
    public = dict(data)
    database = public.get("database")
    if isinstance(database, str) and "://" in database:
        public["database"] = database.split("://", 1)[0].split("+", 1)[0]
    return public


def _watch_info(request: Request) -> ModelWatchInfo | None:
    watcher = getattr(request.app.state, "model_watch", None)
    if watcher is None:
        return None
    state = asdict(watcher.state)
    # Names, never where they live on the server (as every error message: app.errors.public_detail).
    state["watching"] = public_detail(state["watching"])
    if state["last_error"] is not None:
        state["last_error"] = public_detail(state["last_error"])
    return ModelWatchInfo(**state)


@router.get("/genres", response_model=list[str], responses={503: {"model": ErrorResponse}})
async def genres(loaded: LoadedDep) -> list[str]:
    """Genres known to the catalogue (the values the `genre` filters accept)."""
    return loaded.recommender.genre_names


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(require_metrics_token)],
    responses={
        200: {"content": {"text/plain": {}}},
        401: {"model": ErrorResponse, "description": "MOVIEREC_METRICS_TOKEN is set and was not sent"},
        403: {"model": ErrorResponse, "description": "another credential of the service was sent"},
    },
)
async def metrics(registry: MetricsDep) -> Response:
    """Prometheus metrics: requests and latency per route, the served run id. With MOVIEREC_METRICS_TOKEN set,
    only for `Authorization: Bearer <token>` (Prometheus: `authorization: {credentials: <token>}`)."""
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
