"""An anonymous browser session's questions: predictions and "because you rated ..." from its ratings.

The session's ratings travel with each request and are folded in, never stored: a page needs no account and
no API key, and the stored-ratings API stays for a frontend's own backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request

from app.dependencies import LoadedDep, SettingsDep, check_limit
from app.schemas import ErrorResponse, RatingIn
from app.web_schemas import (
    ExplainRequest,
    ExplainResponse,
    Explanation,
    Reason,
    SessionPrediction,
    SessionPredictRequest,
    SessionPredictResponse,
)
from movierec.anonymous import SessionRatings, because_you_rated, predict_for_ratings, session_ratings
from movierec.recommender import Recommender

router = APIRouter(tags=["anonymous session"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "a movie to predict or explain is unknown to the model"},
    413: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
    503: {"model": ErrorResponse},
}


def _session_ratings(recommender: Recommender, ratings: list[RatingIn]) -> SessionRatings:
    movies = np.array([r.movie_id for r in ratings], dtype=np.int64)
    values = np.array([r.rating for r in ratings], dtype=np.float64)
    return session_ratings(recommender, movies, values)


@router.post("/predict/for-ratings", response_model=SessionPredictResponse, responses=_ERRORS)
async def predict_for_session(
    request: Request, body: SessionPredictRequest, loaded: LoadedDep, settings: SettingsDep
) -> SessionPredictResponse:
    """Predicted ratings of `movie_ids` for the user `ratings` describe, by fold-in (nothing is stored)."""
    check_limit("ratings", len(body.ratings), settings.max_fold_in_ratings)
    check_limit("movie_ids", len(body.movie_ids), settings.max_batch)
    recommender = loaded.recommender
    targets = np.array([recommender.movie_index(m) for m in body.movie_ids], dtype=np.int64)  # 404 if unknown
    rated = _session_ratings(recommender, body.ratings)
    # An optimiser-based fold-in (nn) takes milliseconds: off the event loop, bounded (app/offload.py).
    predicted = (
        await request.app.state.heavy_work.run(lambda: predict_for_ratings(recommender, rated, targets))
        if recommender.scorer.fold_in_is_iterative
        else predict_for_ratings(recommender, rated, targets)
    )
    return SessionPredictResponse(
        predictions=[
            SessionPrediction(movie_id=m, predicted_rating=round(p, 4))
            for m, p in zip(body.movie_ids, predicted.tolist(), strict=True)
        ],
        ignored_movie_ids=rated.ignored,
    )


@router.post("/explain", response_model=ExplainResponse, responses=_ERRORS)
async def explain(body: ExplainRequest, loaded: LoadedDep, settings: SettingsDep) -> ExplainResponse:
    """For each movie, the rated movies closest to it in the model's movie embedding ("because you rated")."""
    check_limit("ratings", len(body.ratings), settings.max_fold_in_ratings)
    check_limit("movie_ids", len(body.movie_ids), settings.max_k)
    recommender = loaded.recommender
    targets = np.array([recommender.movie_index(m) for m in body.movie_ids], dtype=np.int64)  # 404 if unknown
    rated = _session_ratings(recommender, body.ratings)
    reasons = because_you_rated(recommender, rated, targets, body.n)
    return ExplainResponse(
        items=[
            Explanation(
                movie_id=movie_id,
                title=recommender.titles[idx],
                because=[
                    Reason(
                        movie_id=recommender.movie_id(r.movie_index),
                        title=recommender.titles[r.movie_index],
                        rating=r.rating,
                        similarity=round(r.similarity, 4),
                    )
                    for r in row
                ],
            )
            for movie_id, idx, row in zip(body.movie_ids, targets.tolist(), reasons, strict=True)
        ],
        ignored_movie_ids=rated.ignored,
    )
