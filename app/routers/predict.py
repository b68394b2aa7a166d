"""POST /predict: ratings for one pair or a batch."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Query

from app.dependencies import LoadedDep, SettingsDep, check_limit
from app.schemas import ErrorResponse, PredictBatchResponse, Prediction, PredictRequest

router = APIRouter(tags=["predictions"])

# 400: a body that is not even text (invalid UTF-8); 413: over MOVIEREC_MAX_BODY_BYTES.
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse},
    404: {"model": ErrorResponse},
    413: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
}


@router.post("/predict", response_model=Prediction | PredictBatchResponse, responses=_ERRORS)
async def predict(
    body: PredictRequest,
    loaded: LoadedDep,
    settings: SettingsDep,
    strict: bool = Query(False, description="404 on an unknown id instead of the fallback prediction"),
) -> Prediction | PredictBatchResponse:
    """Predicted rating for one (user, movie) pair or a batch of `instances`; unknown ids get the fallback."""
    # Async on purpose: this is microseconds of numpy, cheaper than a threadpool hop.
    strict = strict or body.strict
    if body.instances is None:
        assert body.user_id is not None and body.movie_id is not None  # guaranteed by the validator
        users = np.array([body.user_id], dtype=np.int64)
        movies = np.array([body.movie_id], dtype=np.int64)
    else:
        check_limit("instances", len(body.instances), settings.max_batch)
        users = np.fromiter((p.user_id for p in body.instances), dtype=np.int64, count=len(body.instances))
        movies = np.fromiter((p.movie_id for p in body.instances), dtype=np.int64, count=len(body.instances))
    preds = loaded.recommender.predict(users, movies, strict=strict)
    rows = zip(
        users.tolist(),
        movies.tolist(),
        preds.ratings.tolist(),
        preds.user_known.tolist(),
        preds.movie_known.tolist(),
        strict=True,
    )
    if body.instances is None:
        u, m, r, uk, mk = next(rows)
        return Prediction(
            user_id=u,
            movie_id=m,
            predicted_rating=round(r, 4),
            user_known=uk,
            movie_known=mk,
            fallback=not (uk and mk),
        )
    # One validation of plain dicts in pydantic-core is ~2x cheaper than a Prediction(...) call per pair.
    return PredictBatchResponse.model_validate(
        {
            "predictions": [
                {
                    "user_id": u,
                    "movie_id": m,
                    "predicted_rating": round(r, 4),
                    "user_known": uk,
                    "movie_known": mk,
                    "fallback": not (uk and mk),
                }
                for u, m, r, uk, mk in rows
            ]
        }
    )
