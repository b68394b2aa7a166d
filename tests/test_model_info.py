"""`GET /model` says which model the metrics describe and which model answers requests."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from movierec.artifacts import read_manifest


def test_model_info_shows_the_evaluated_and_the_served_model(tiny_bundle_dir):
    manifest = read_manifest(tiny_bundle_dir)
    with TestClient(create_app(Settings(model_dir=tiny_bundle_dir, device="cpu"))) as client:
        info = client.get("/model").json()
    assert info["scorer"] == manifest.scorer == "factor"
    assert info["evaluated_model"] == manifest.evaluated_model
    assert info["evaluated_model"]["fitted_on"] == "train split"
    assert info["evaluated_model"]["n_heldout"] == info["metrics"]["n_heldout"]
    assert info["served_model"] == manifest.served_model
    assert info["served_model"]["fitted_on"] == "all ratings (refit)"
    assert info["served_model"]["n_ratings"] == info["data"]["n_ratings"]
    assert (
        info["evaluated_model"]["n_ratings"] + info["evaluated_model"]["n_heldout"]
        == info["data"]["n_ratings"]
    )


def test_the_manifest_records_the_rating_step_and_the_service_uses_it(tiny_bundle_dir):
    """Computed once by the trainer, not by scanning every training rating when the service needs it."""
    manifest = read_manifest(tiny_bundle_dir)
    assert manifest.data["rating_step"] == 0.5  # ml-latest-small has half stars
    with TestClient(create_app(Settings(model_dir=tiny_bundle_dir, device="cpu"))) as client:
        rating = client.get("/openapi.json").json()["components"]["schemas"]["RatingBody"]["properties"][
            "rating"
        ]
        assert rating["multipleOf"] == 0.5


def test_model_info_names_the_training_database_by_dialect_only(tiny_bundle_dir, tmp_path):
    """An artifact trained from a database, written before URLs were reduced to their dialect, still shows
    no host, user or password."""
    import json
    import shutil

    from movierec.artifacts import MANIFEST

    run = tmp_path / "run"
    shutil.copytree(tiny_bundle_dir, run)
    path = run / MANIFEST
    raw = json.loads(path.read_text())
    raw["data"]["database"] = "postgresql+psycopg://trainer:hunter2@db.internal:5432/movierec"
    path.write_text(json.dumps(raw))
    with TestClient(create_app(Settings(model_dir=run, device="cpu"))) as client:
        info = client.get("/model").json()
    assert info["data"]["database"] == "postgresql"
    assert "hunter2" not in json.dumps(info) and "db.internal" not in json.dumps(info)
