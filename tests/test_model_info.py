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
