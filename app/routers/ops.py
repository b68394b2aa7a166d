"""What operators need: liveness, readiness, model info, Prometheus metrics, genres."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.dependencies import LoadedDep, MetricsDep
from app.errors import error_response
from app.schemas import ErrorResponse, ModelInfo, StatusResponse

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=StatusResponse)
async def health() -> StatusResponse:
    """Liveness: the process answers."""
    return StatusResponse(status="ok")


@router.get("/ready", response_model=StatusResponse, responses={503: {"model": ErrorResponse}})
async def ready(request: Request) -> StatusResponse | Response:
    """Readiness: 200 once a model is loaded and serving, 503 before."""
    loaded = request.app.state.holder.current
    if loaded is None:
        return error_response(503, "not_ready", "no model is loaded yet")
    return StatusResponse(status="ready", run_id=loaded.recommender.run_id)


@router.get("/model", response_model=ModelInfo, responses={503: {"model": ErrorResponse}})
async def model_info(loaded: LoadedDep) -> ModelInfo:
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
        data={k: v for k, v in m.data.items()},
        config=m.config,
        libraries=m.libraries,
        n_users=m.n_users,
        n_movies=m.n_movies,
        scorer=m.scorer,
        evaluated_model=m.evaluated_model,
        served_model=m.served_model,
        device=loaded.device,
        loaded_at=loaded.loaded_at,
    )


@router.get("/genres", response_model=list[str], responses={503: {"model": ErrorResponse}})
async def genres(loaded: LoadedDep) -> list[str]:
    """Genres known to the catalogue (the values the `genre` filters accept)."""
    return loaded.recommender.genre_names


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(registry: MetricsDep) -> Response:
    """Prometheus metrics: requests and latency per route, the served run id."""
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
