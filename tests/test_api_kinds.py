"""Every model kind is servable: predict, recommend, fold-in; bias-only analysis answers 409 without biases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from movierec.data import RatingsData


@pytest.fixture(scope="module", params=["dot", "nn"])
def kind_client(
    request: pytest.FixtureRequest, tiny_ratings: RatingsData, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, TestClient]]:
    from training.config import TrainConfig
    from training.pipeline import train_run

    config = TrainConfig.for_kind(
        request.param, epochs=2, batch_size=256, refit=False, model_fields={"n_factors": 8}
    )
    result = train_run(tiny_ratings, config, tmp_path_factory.mktemp(f"models-{request.param}"), verbose=0)
    with TestClient(create_app(Settings(model_dir=result.run_dir, device="cpu"))) as client:
        yield request.param, client


def _any_user_and_movie(tiny_ratings: RatingsData) -> tuple[int, int]:
    row = tiny_ratings.ratings.iloc[0]
    return int(row["user_id"]), int(row["movie_id"])


def test_kind_serves_predictions_and_lists(
    kind_client: tuple[str, TestClient], tiny_ratings: RatingsData
) -> None:
    kind, client = kind_client
    assert client.get("/model").json()["model_kind"] == kind
    user, movie = _any_user_and_movie(tiny_ratings)
    pred = client.post("/predict", json={"user_id": user, "movie_id": movie}).json()
    assert 0.5 <= pred["predicted_rating"] <= 5.0 and not pred["fallback"]
    fallback = client.post("/predict", json={"user_id": 424242, "movie_id": movie}).json()
    assert fallback["fallback"] and 0.5 <= fallback["predicted_rating"] <= 5.0
    rec = client.get(f"/recommend/{user}?k=5&exclude_rated=false").json()
    assert rec["strategy"] == "personalized" and len(rec["items"]) == 5
    cold = client.get("/recommend/424242?k=5").json()
    assert cold["strategy"] == "cold_start" and len(cold["items"]) == 5
    fold = client.post("/recommend", json={"ratings": [{"movie_id": movie, "rating": 5}], "k": 5}).json()
    assert fold["strategy"] == "fold_in" and len(fold["items"]) == 5
    assert client.get(f"/movies/{movie}").json()["bias"] is None
    assert len(client.get(f"/movies/{movie}/similar?k=3").json()["items"]) == 3


def test_bias_ranking_without_biases_is_409(kind_client: tuple[str, TestClient]) -> None:
    _, client = kind_client
    response = client.get("/movies/bias-ranking")
    assert response.status_code == 409
    assert (
        response.json()["code"] == "unsupported_for_model"
        and "no learned biases" in response.json()["detail"]
    )
