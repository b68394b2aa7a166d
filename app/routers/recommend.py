"""Top-k lists: for a known user id, and for an anonymous user folded in from ratings."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from app.dependencies import check_limit, current_model
from app.responses import FastJSONResponse
from app.schemas import ErrorResponse, FoldInRequest, RecommendResponse
from movierec.recommender import Ranked, Recommender

router = APIRouter(tags=["recommendations"])

_ERRORS: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}}
# The body route also answers 400 (a body that is not even text) and 413 (over MOVIEREC_MAX_BODY_BYTES).
_BODY_ERRORS = {**_ERRORS, 400: {"model": ErrorResponse}, 413: {"model": ErrorResponse}}


def _items(recommender: Recommender, ranked: Ranked) -> list[dict[str, Any]]:
    """`RecommendedMovie`s as plain JSON types (see app/responses.py for why not the model)."""
    ids = recommender.bundle.movie_ids.ids
    return [
        {
            "movie_id": int(ids[idx]),
            "title": recommender.titles[idx],
            "genres": recommender.genres[idx],
            "predicted_rating": round(score, 4),
        }
        for idx, score in zip(ranked.movie_index.tolist(), ranked.scores.tolist(), strict=True)
    ]


@router.get("/recommend/{user_id}", response_model=RecommendResponse, responses=_ERRORS)
async def recommend_for_user(
    request: Request,
    user_id: Annotated[int, Path(ge=1, le=2**53 - 1, examples=[1])],
    k: Annotated[int, Query(ge=1, description="list length (at most MOVIEREC_MAX_K)")] = 10,
    exclude_rated: bool = True,
    genre: Annotated[list[str] | None, Query(description="repeatable; movies of any of these genres")] = None,
    min_ratings: Annotated[
        int, Query(ge=0, le=2**31 - 1, description="only movies rated at least this often")
    ] = 0,
) -> Response:
    """Top-k movies for a user: personalised when the user is known, the cold-start list otherwise."""
    # The model and settings come from app state, not Depends: a dependency solve per request is measurable here.
    check_limit("k", k, request.app.state.settings.max_k)
    recommender = current_model(request).recommender
    ranked = recommender.recommend(
        user_id, k, exclude_rated=exclude_rated, genres=genre, min_ratings=min_ratings
    )
    return FastJSONResponse(
        {
            "user_id": user_id,
            "strategy": ranked.strategy,
            "items": _items(recommender, ranked),
            "ignored_movie_ids": [],
        }
    )


@router.post("/recommend", response_model=RecommendResponse, responses=_BODY_ERRORS)
async def recommend_for_ratings(body: FoldInRequest, request: Request) -> Response:
    """Top-k for a new or anonymous user from their ratings, folded in without retraining."""
    settings = request.app.state.settings
    check_limit("k", body.k, settings.max_k)
    check_limit("ratings", len(body.ratings), settings.max_fold_in_ratings)
    recommender = current_model(request).recommender
    movies = np.array([r.movie_id for r in body.ratings], dtype=np.int64)
    ratings = np.array([r.rating for r in body.ratings], dtype=np.float64)
    ranked = recommender.recommend_for_ratings(
        movies, ratings, body.k, genres=body.genre, min_ratings=body.min_ratings
    )
    return FastJSONResponse(
        {
            "user_id": None,
            "strategy": "fold_in",
            "items": _items(recommender, ranked),
            "ignored_movie_ids": ranked.ignored,
        }
    )
