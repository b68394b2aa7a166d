"""Top-k lists: for a known user id, and for an anonymous user folded in from ratings."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import Response

from app.body import json_body_openapi, parse_json_body
from app.dependencies import check_limit, current_model
from app.list_cache import ListCache, ListKey
from app.lists import rank_list
from app.query import parameters_openapi, parse_params
from app.responses import FastJSONResponse
from app.routing import DirectRoute
from app.schemas import ErrorResponse, FoldInRequest, RecommendParams, RecommendResponse
from app.user_vectors import try_read_state, user_list_query
from movierec.recommender import ListQuery, Ranked, Recommender

router = APIRouter(tags=["recommendations"], route_class=DirectRoute)

_ERRORS: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}}
# The body route also answers 413 (over MOVIEREC_MAX_BODY_BYTES).
_BODY_ERRORS = {**_ERRORS, 413: {"model": ErrorResponse}}


def _items(recommender: Recommender, ranked: Ranked) -> list[dict[str, Any]]:
    """`RecommendedMovie`s as plain JSON types (see app/responses.py for why not the model)."""
    ids = recommender.bundle.movie_ids.ids
    rank_scores = ranked.scores if ranked.rank_scores is None else ranked.rank_scores
    return [
        {
            "movie_id": int(ids[idx]),
            "title": recommender.titles[idx],
            "genres": recommender.genres[idx],
            "predicted_rating": round(score, 4),
            "rank_score": round(rank_score, 6),
        }
        for idx, score, rank_score in zip(
            ranked.movie_index.tolist(), ranked.scores.tolist(), rank_scores.tolist(), strict=True
        )
    ]


@router.get(
    "/recommend/{user_id}",
    response_model=RecommendResponse,
    responses=_ERRORS,
    openapi_extra=parameters_openapi(RecommendParams, path=("user_id",)),
)
async def recommend_for_user(request: Request) -> Response:
    """Top-k movies for a user: personalised when the user is known, the cold-start list otherwise."""
    # A DirectRoute (app/routing.py): parameters validated as one model (app/query.py) and the model read from
    # app state, because FastAPI's per-parameter solving cost more than the scoring itself.
    params = parse_params(request, RecommendParams)
    check_limit("k", params.k, request.app.state.settings.max_k)
    loaded = current_model(request)
    recommender = loaded.recommender
    # The version row decides both the cached answer (app/list_cache.py) and, on a miss, whether the user is
    # served from their re-solved vector (app/user_vectors.py).
    state, answered = await try_read_state(request, params.user_id)
    cache: ListCache = request.app.state.list_cache
    key = None
    if answered and cache.enabled:
        version = -1 if state is None else state.version
        key = ListKey.of(
            params.user_id, version, params.k, params.exclude_rated, params.genre, params.min_ratings
        )
        body = cache.get(recommender.run_id, key)
        if body is not None:
            return Response(body, media_type=FastJSONResponse.media_type)
    query, user_vector, of_state = await user_list_query(
        request,
        recommender,
        params.user_id,
        state,
        params.k,
        exclude_rated=params.exclude_rated,
        genres=params.genre,
        min_ratings=params.min_ratings,
    )
    # Scored inline or together with concurrent requests' (app/lists.py).
    ranked = query if isinstance(query, Ranked) else await rank_list(request, loaded, query)
    response = FastJSONResponse(
        {
            "user_id": params.user_id,
            "strategy": ranked.strategy,
            "ranking": ranked.ranking,
            "items": _items(recommender, ranked),
            "user_vector": user_vector,
        }
    )
    if key is not None and of_state:
        cache.put(recommender.run_id, key, bytes(response.body))
    return response


@router.post(
    "/recommend",
    response_model=RecommendResponse,
    responses=_BODY_ERRORS,
    openapi_extra=json_body_openapi(FoldInRequest),
)
async def recommend_for_ratings(request: Request) -> Response:
    """Top-k for a new or anonymous user from their ratings, folded in without retraining."""
    # A query string is refused before this runs (app/query.py): the options live in the body.
    body = await parse_json_body(request, FoldInRequest)
    settings = request.app.state.settings
    check_limit("k", body.k, settings.max_k)
    check_limit("ratings", len(body.ratings), settings.max_fold_in_ratings)
    loaded = current_model(request)
    recommender = loaded.recommender
    movies = np.array([r.movie_id for r in body.ratings], dtype=np.int64)
    ratings = np.array([r.rating for r in body.ratings], dtype=np.float64)

    def fold_in() -> tuple[ListQuery | Ranked, list[int]]:
        return recommender.fold_in_query(
            movies, ratings, body.k, genres=body.genre, min_ratings=body.min_ratings
        )

    # An optimiser-based fold-in (nn) takes milliseconds: off the event loop, bounded (app/offload.py).
    query, ignored = (
        await request.app.state.heavy_work.run(fold_in)
        if recommender.scorer.fold_in_is_iterative
        else fold_in()
    )
    ranked = query if isinstance(query, Ranked) else await rank_list(request, loaded, query)
    return FastJSONResponse(
        {
            "user_id": None,
            "strategy": ranked.strategy,
            "ranking": ranked.ranking,
            "items": _items(recommender, ranked),
            "ignored_movie_ids": ignored,
            "user_vector": "fold_in" if ranked.strategy == "fold_in" else "none",
        }
    )
