"""The two apps `bench/serving.py` measures besides the service's own routes.

- `create_bench_app()`: the real service (`app.main.create_app()`, same settings, same middleware) plus
  `GET /_bench/ceiling`, a trivial JSON endpoint (and `GET /_bench/ceiling-direct`, the same on a DirectRoute). Served by the same uvicorn process as the routes under test,
  it is the ceiling: the speed of the web stack itself on this machine.
- `create_naive_app()`: the reference the issue asks for, serving `POST /predict` the careless way, by
  loading `model.keras` with Keras and calling `model.predict` once per request (a plain `def` route, so
  FastAPI runs it in its threadpool). Same response shape as the service's single-pair `/predict`.

Both read MOVIEREC_MODEL_DIR; run them with `uvicorn --factory bench.naive_app:create_bench_app` (or
`create_naive_app`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from app.main import create_app
from app.responses import FastJSONResponse
from app.routing import DirectRoute
from app.schemas import Prediction, RawId
from app.settings import get_settings
from movierec.artifacts import MODEL_FILE, MOVIE_IDS_FILE, USER_IDS_FILE
from movierec.ids import IdMap

CEILING_PATH = "/_bench/ceiling"
DIRECT_CEILING_PATH = "/_bench/ceiling-direct"


def create_bench_app() -> FastAPI:
    """The service as deployed, plus the trivial JSON ceiling route."""
    app = create_app()

    @app.get(CEILING_PATH, include_in_schema=False)
    async def ceiling() -> dict[str, bool]:
        return {"ok": True}

    # For information: the same trivial answer on a DirectRoute (app/routing.py), as the hot routes are served.
    # They skip FastAPI's per-request machinery that the ceiling above pays, so they can beat it; this row shows
    # by how much the framework's share shrinks.
    async def ceiling_direct(request: Request) -> Response:
        return FastJSONResponse({"ok": True})

    app.router.add_api_route(
        DIRECT_CEILING_PATH,
        ceiling_direct,
        methods=["GET"],
        include_in_schema=False,
        route_class_override=DirectRoute,
    )
    return app


class NaivePredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: RawId
    movie_id: RawId


def create_naive_app() -> FastAPI:
    """`model.predict` per request on the Keras model of MOVIEREC_MODEL_DIR."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    import movierec.models  # noqa: F401  (registers the custom layers for deserialisation)

    model_dir = get_settings().model_dir
    model: Any = keras.saving.load_model(model_dir / MODEL_FILE, compile=False)
    users = IdMap.load(model_dir / USER_IDS_FILE)
    movies = IdMap.load(model_dir / MOVIE_IDS_FILE)
    app = FastAPI(title="naive model.predict reference")

    @app.get("/ready")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/predict")
    def predict(body: NaivePredictRequest) -> Prediction:
        u, m = users.index(body.user_id), movies.index(body.movie_id)
        rating = float(
            model.predict(
                {"user": np.array([u or 0], dtype=np.int32), "movie": np.array([m or 0], dtype=np.int32)},
                verbose=0,
            ).reshape(-1)[0]
        )
        known_u, known_m = u is not None, m is not None
        return Prediction(
            user_id=body.user_id,
            movie_id=body.movie_id,
            predicted_rating=round(rating, 4),
            user_known=known_u,
            movie_known=known_m,
            fallback=not (known_u and known_m),
        )

    return app
