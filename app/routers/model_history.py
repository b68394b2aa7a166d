"""`GET /model/history`: the served run's learning curves, for the web page's model view (the notebook's plot)."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter

from app.dependencies import LoadedDep
from app.schemas import ErrorResponse
from app.web_schemas import TrainingHistory

router = APIRouter(tags=["operations"])

RECORDED_ON = "the epoch-selection fit: train split, validation slice for the val_ series"


def _series(values: Any) -> list[float | None] | None:
    """A list of numbers with non-finite values as null; None for anything that is not a list of numbers."""
    if not isinstance(values, list):
        return None
    out: list[float | None] = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        out.append(float(value) if math.isfinite(value) else None)
    return out


@router.get("/model/history", response_model=TrainingHistory, responses={503: {"model": ErrorResponse}})
async def model_history(loaded: LoadedDep) -> TrainingHistory:
    """Per-epoch loss and RMSE (train and validation) recorded while the served run chose its epochs."""
    manifest = loaded.recommender.manifest
    raw = getattr(manifest, "history", None)
    history: dict[str, list[float | None]] = {}
    if isinstance(raw, dict):
        for name, values in raw.items():
            series = _series(values)
            if series is not None:
                history[str(name)] = series
    epochs = manifest.metrics.get("epochs")
    return TrainingHistory(
        run_id=manifest.run_id,
        model_kind=manifest.model_kind,
        history=history,
        recorded_on=RECORDED_ON,
        epochs_chosen=epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None,
    )
