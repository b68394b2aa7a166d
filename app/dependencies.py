"""Dependencies shared by the routers.

They are `async def` on purpose: FastAPI runs a plain `def` dependency in its threadpool, and a thread hop per
dependency per request cost more than the model's numpy work (bench/results/serving.md).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.errors import ApiError
from app.middleware import Metrics
from app.settings import Settings
from app.state import LoadedModel, ModelHolder


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_holder(request: Request) -> ModelHolder:
    holder: ModelHolder = request.app.state.holder
    return holder


def current_model(request: Request) -> LoadedModel:
    """The model serving this request; one reference for the whole request, so a reload cannot split it."""
    loaded: LoadedModel | None = request.app.state.holder.current
    if loaded is None:
        raise ApiError(503, "not_ready", "no model is loaded yet")
    return loaded


async def get_loaded(request: Request) -> LoadedModel:
    """`current_model` as a dependency."""
    return current_model(request)


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
HolderDep = Annotated[ModelHolder, Depends(get_holder)]
LoadedDep = Annotated[LoadedModel, Depends(get_loaded)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


def check_limit(name: str, value: int, maximum: int) -> None:
    """422 naming the field when a size parameter passes its configured maximum."""
    if value > maximum:
        raise ApiError(422, "limit_exceeded", f"{name}: {value} is above the configured maximum of {maximum}")
