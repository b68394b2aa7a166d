"""People's own ratings: write, delete, page, forget and export, behind `Authorization: Bearer <API key>`.

Writes go to the ratings database (app/database.py) and count at once: the user's next /recommend and
/predict re-solve their vector from all of their ratings (app/user_vectors.py), in this process and in every
other one serving the same database.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth import check_bearer
from app.database import get_store, run_read
from app.dependencies import LoadedDep, MetricsDep, SettingsDep, check_limit
from app.errors import ApiError
from app.middleware import Metrics
from app.schemas import ErrorResponse
from app.thread_results import ThreadResults
from app.user_schemas import (
    ForgetReceipt,
    ModelRatingOut,
    RatingBody,
    RatingsPage,
    RemovedRatingOut,
    StoredRatingOut,
    UserExport,
    UserRatingOut,
)
from app.user_vectors import get_cache
from movierec.errors import InvalidRequestError, UnknownMovieError
from movierec.recommender import Recommender
from movierec.store import CURSOR_PATTERN, RatingStore
from movierec.store.group_commit import DEFAULT_MAX_QUEUED

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="`Authorization: Bearer <MOVIEREC_API_KEY>`; with no key configured these endpoints answer 403",
)


async def require_api_key(
    settings: SettingsDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """MOVIEREC_API_KEY (distinct from the admin token), by the one rule of app/auth.py."""
    disabled = ApiError(
        403,
        "writes_disabled",
        "the /users and PUT /movies endpoints are disabled: set MOVIEREC_API_KEY to enable them "
        "and send it as `Authorization: Bearer <key>`",
    )
    check_bearer(settings, credentials, settings.api_key, disabled=disabled)


async def _store(request: Request) -> RatingStore:
    return get_store(request)


StoreDep = Annotated[RatingStore, Depends(_store)]
UserId = Annotated[int, Path(ge=1, le=2**53 - 1, description="raw user id", examples=[1])]
MovieId = Annotated[
    int, Path(ge=1, le=2**53 - 1, description="raw movie id of the catalogue", examples=[260])
]

# Page size of GET /users/{user_id}/ratings without `limit` (at most MOVIEREC_MAX_K, like every list).
DEFAULT_PAGE = 50

router = APIRouter(tags=["ratings"], dependencies=[Depends(require_api_key)])


def _error(description: str, code: str, detail: str) -> dict[str, Any]:
    return {
        "model": ErrorResponse,
        "description": description,
        "content": {"application/json": {"example": {"detail": detail, "code": code}}},
    }


_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _error(
        "no bearer key, or a wrong one (`WWW-Authenticate: Bearer`)",
        "unauthorized",
        "missing bearer credentials",
    ),
    403: _error(
        "no MOVIEREC_API_KEY configured (`writes_disabled`), or another credential of the service, such as the "
        "admin token (`forbidden`)",
        "writes_disabled",
        "the /users and PUT /movies endpoints are disabled: set MOVIEREC_API_KEY to enable them",
    ),
    422: _error("invalid ids or parameters", "validation_error", "user_id: Input should be greater than 0"),
    503: _error(
        "the ratings database is unreachable (`database_unavailable`, Retry-After 5) or a lock held elsewhere "
        "outlasted MOVIEREC_DATABASE_BUSY_TIMEOUT_MS, or this process already has "
        f"{DEFAULT_MAX_QUEUED:,} writes waiting to commit (`database_busy`, Retry-After 1); model reads keep "
        "working",
        "database_busy",
        "the ratings database is busy: ...; retry in 1 s",
    ),
}


def check_rating(recommender: Recommender, rating: float) -> None:
    """A rating must lie on the served model's scale and, when its data uses whole or half stars, on that grid."""
    lo, hi = recommender.scorer.head.min_rating, recommender.scorer.head.max_rating
    if not (lo <= rating <= hi):
        raise InvalidRequestError(f"rating {rating} is outside the rating scale [{lo}, {hi}]")
    step = recommender.rating_step
    if step is not None and not math.isclose(rating / step, round(rating / step), abs_tol=1e-9):
        raise InvalidRequestError(
            f"rating {rating} is not a multiple of {step}, the step of this model's ratings"
        )


def _record(metrics: Metrics, operation: str, started: float) -> None:
    metrics.rating_write_latency.labels(operation).observe(time.perf_counter() - started)
    metrics.ratings_written.labels(operation).inc()


@router.put(
    "/users/{user_id}/ratings/{movie_id}",
    response_model=UserRatingOut,
    responses={
        **_AUTH_ERRORS,
        404: _error(
            "the movie is neither in the model nor added (PUT /movies/{movie_id})",
            "unknown_movie",
            "unknown movie_id 999999: ...",
        ),
        422: _error(
            "a rating off the scale or its steps, or invalid ids",
            "invalid_request",
            "rating 7.0 is outside the rating scale [0.5, 5.0]",
        ),
    },
)
async def put_rating(
    request: Request,
    user_id: UserId,
    movie_id: MovieId,
    body: Annotated[
        RatingBody,
        Body(
            openapi_examples={"half star": {"value": {"rating": 4.5}}, "whole star": {"value": {"rating": 3}}}
        ),
    ],
    loaded: LoadedDep,
    store: StoreDep,
    metrics: MetricsDep,
) -> UserRatingOut:
    """Create or replace a person's rating of a movie (idempotent); their next list and predictions use it.

    A user the model has never seen becomes a known user with their first rating. A movie added after training
    (`PUT /movies/{movie_id}`) may be rated too: its ratings move its predictions until a retrain learns it.
    """
    recommender = loaded.recommender
    trained = recommender.bundle.movie_ids.index(movie_id) is not None
    if not trained and await run_read(store, lambda: store.added_movie(movie_id)) is None:
        raise UnknownMovieError(movie_id)  # 404 unknown_movie: neither trained on nor added
    check_rating(recommender, body.rating)
    started = time.perf_counter()
    # The writer thread commits it with the writes that arrived alongside (movierec/store/group_commit.py);
    # the loop waits for the commit without holding a worker thread, and answers only once it is durable.
    results: ThreadResults = request.app.state.thread_results
    stored = await results.wait(store.put_rating_later(user_id, movie_id, float(body.rating)))
    _record(metrics, "put", started)
    get_cache(request).invalidate(user_id)
    return UserRatingOut(
        user_id=user_id, movie_id=movie_id, rating=stored.rating, updated_at=stored.updated_at
    )


@router.delete("/users/{user_id}/ratings/{movie_id}", status_code=204, responses=_AUTH_ERRORS)
def delete_rating(
    request: Request, user_id: UserId, movie_id: MovieId, store: StoreDep, metrics: MetricsDep
) -> Response:
    """Delete a person's rating of a movie, also the rating the model was trained on (idempotent: always 204)."""
    started = time.perf_counter()
    store.delete_rating(user_id, movie_id)
    _record(metrics, "delete", started)
    get_cache(request).invalidate(user_id)
    return Response(status_code=204)


_FORGOTTEN: dict[int | str, dict[str, Any]] = {
    404: _error(
        "the person asked to be forgotten (DELETE /users/{user_id}) and nothing was stored for them since",
        "user_forgotten",
        "user 7 was forgotten at 2026-01-01T12:00:00+00:00: nothing is stored about them",
    )
}


def _forgotten(user_id: int, forgotten_at: datetime) -> ApiError:
    """A forgotten person reads as gone (404) on every /users/{user_id} read, until they write again."""
    return ApiError(
        404,
        "user_forgotten",
        f"user {user_id} was forgotten at {forgotten_at.isoformat()}: nothing is stored about them",
    )


@router.get("/users/{user_id}/ratings", response_model=RatingsPage, responses={**_AUTH_ERRORS, **_FORGOTTEN})
def list_ratings(
    user_id: UserId,
    store: StoreDep,
    settings: SettingsDep,
    limit: Annotated[
        int | None,
        Query(ge=1, description="page size, at most MOVIEREC_MAX_K; default 50 (or MAX_K if lower)"),
    ] = None,
    cursor: Annotated[
        str | None,
        Query(pattern=CURSOR_PATTERN, description="`next_cursor` of the previous page (opaque)"),
    ] = None,
) -> RatingsPage:
    """A person's stored ratings, newest first, a page at a time."""
    if limit is None:
        limit = min(DEFAULT_PAGE, settings.max_k)
    check_limit("limit", limit, settings.max_k)
    page = store.list_ratings(user_id, limit, cursor)
    if not page.items and cursor is None:
        state = store.user_state(user_id, from_database=True)  # a read of their data: never a mirror's lag
        if state is not None and state.forgotten_at is not None:
            raise _forgotten(user_id, state.forgotten_at)
    items = [
        StoredRatingOut(movie_id=r.movie_id, rating=r.rating, updated_at=r.updated_at) for r in page.items
    ]
    return RatingsPage(user_id=user_id, items=items, next_cursor=page.next_cursor)


@router.delete("/users/{user_id}", response_model=ForgetReceipt, responses=_AUTH_ERRORS)
def forget_user(request: Request, user_id: UserId, store: StoreDep, metrics: MetricsDep) -> ForgetReceipt:
    """Forget a person: every stored rating goes, and their history is left out of future training runs and of
    their vector from now on (they are served like a new user)."""
    started = time.perf_counter()
    deleted = store.forget_user(user_id)
    _record(metrics, "forget", started)
    get_cache(request).invalidate(user_id)
    return ForgetReceipt(user_id=user_id, deleted_ratings=deleted)


@router.get("/users/{user_id}/export", response_model=UserExport, responses={**_AUTH_ERRORS, **_FORGOTTEN})
def export_user(user_id: UserId, store: StoreDep, loaded: LoadedDep) -> UserExport:
    """Everything stored about a person: their ratings, the ratings they removed, whether they were forgotten,
    and their ratings in the served model's training data. A forgotten person with nothing stored since: 404."""
    history = store.user_history(user_id)
    if history is not None and history.forgotten_at is not None and not history.ratings:
        raise _forgotten(user_id, history.forgotten_at)
    recommender = loaded.recommender
    model_ratings: list[ModelRatingOut] = []
    u = recommender.user_index(user_id)
    if u is not None and (history is None or history.forgotten_at is None):
        movies = recommender.bundle.movie_ids.ids[recommender.bundle.user_ratings.movies_of(u)]
        ratings = recommender.bundle.user_ratings.ratings_of(u)
        model_ratings = [
            ModelRatingOut(movie_id=int(m), rating=float(r))
            for m, r in zip(movies.tolist(), ratings.tolist(), strict=True)
        ]
    return UserExport(
        user_id=user_id,
        exported_at=datetime.now(UTC),
        forgotten_at=None if history is None else history.forgotten_at,
        ratings=[]
        if history is None
        else [
            StoredRatingOut(movie_id=r.movie_id, rating=r.rating, updated_at=r.updated_at)
            for r in history.ratings
        ],
        removed=[]
        if history is None
        else [RemovedRatingOut(movie_id=m, removed_at=t) for m, t in history.removed],
        model_ratings=model_ratings,
    )
