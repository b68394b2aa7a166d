"""`bias` fitted by alternating least squares (`--solver als`, training/als.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from fastapi.testclient import TestClient
from test_bpmf import _planted

from app.main import create_app
from app.settings import Settings
from movierec.artifacts import load_bundle
from movierec.data import RatingsData
from movierec.errors import MovieRecError
from movierec.split import split_mask
from training.als import alternating_least_squares
from training.config import TrainConfig
from training.kinds.registry import kind_for
from training.metrics import rmse

PENALTIES = dict(n_factors=3, prior_precision=1.0, bias_prior_precision=3.0, seed=0)


def test_sweeps_recover_the_planted_structure_beyond_the_biases():
    users, movies, ratings, train, n_u, n_m = _planted()
    t = ~train
    fit = alternating_least_squares(
        users[train],
        movies[train],
        ratings[train],
        n_u,
        n_m,
        max_sweeps=15,
        **PENALTIES,
        validation=(users[t], movies[t], ratings[t]),
        rating_scale=(-10.0, 20.0),
    )
    predicted = (
        fit.global_mean
        + fit.user_bias[users[t]]
        + fit.movie_bias[movies[t]]
        + np.einsum("ij,ij->i", fit.user_factors[users[t]], fit.movie_factors[movies[t]])
    )
    # Noise floor 0.25; biases alone stay near 0.7 on this data (tests/test_bpmf.py).
    assert rmse(predicted, ratings[t]) < 0.4
    assert fit.validation_rmse[fit.sweeps - 1] == pytest.approx(rmse(predicted, ratings[t]), abs=1e-9)
    # The curve falls steeply: the first sweep is already most of the way, later sweeps refine.
    assert fit.validation_rmse[0] > fit.validation_rmse[fit.sweeps - 1]


def test_early_stopping_keeps_the_best_sweep_and_a_replay_runs_exactly_that_many():
    users, movies, ratings, train, n_u, n_m = _planted(1)
    t = ~train
    common = dict(rating_scale=(-10.0, 20.0), **PENALTIES)
    # Almost no penalty: the fit overfits after a few sweeps, so validation turns up and stopping must act.
    loose = {**common, "prior_precision": 1e-3}
    chosen = alternating_least_squares(
        users[train], movies[train], ratings[train], n_u, n_m, max_sweeps=30, patience=2,
        validation=(users[t], movies[t], ratings[t]), **loose,
    )  # fmt: skip
    curve = chosen.validation_rmse
    assert chosen.sweeps == int(np.argmin(curve)) + 1
    assert len(curve) < 30 and len(curve) - chosen.sweeps == 2  # stopped `patience` sweeps after the best
    replay = alternating_least_squares(
        users[train], movies[train], ratings[train], n_u, n_m, max_sweeps=chosen.sweeps, **loose
    )
    assert replay.sweeps == chosen.sweeps and replay.validation_rmse == []
    np.testing.assert_allclose(replay.user_factors, chosen.user_factors)  # same start, same sweeps
    np.testing.assert_allclose(replay.movie_bias, chosen.movie_bias)


def test_the_solver_is_bias_only_and_one_process():
    assert kind_for(TrainConfig.for_kind("bias", solver="als")).name == "bias"
    with pytest.raises(MovieRecError, match="--solver als fits bias, not 'nn'"):
        kind_for(TrainConfig.for_kind("nn", solver="als"))
    from training.distributed import refuse_undistributable

    with pytest.raises(MovieRecError, match="drop --workers"):
        refuse_undistributable("bias", "als")


def test_als_defaults_overlay_the_bias_defaults_and_explicit_flags_win():
    config = TrainConfig.for_kind("bias", solver="als", model_fields={"n_factors": 7})
    assert config.solver == "als" and config.model.kind == "bias"
    assert config.model.n_factors == 7 and config.model.squash_output is False
    assert config.model.side_features is True  # bias's side features stay, as prior means
    plain = TrainConfig.for_kind("bias", solver="als", model_fields={"side_features": False})
    assert plain.model.side_features is False and plain.model.squash_output is False


@pytest.fixture(scope="module")
def als_run(tiny_ratings: RatingsData, tmp_path_factory: pytest.TempPathFactory):
    from training.pipeline import train_run

    config = TrainConfig.for_kind("bias", solver="als", epochs=12, model_fields={"n_factors": 8})
    return train_run(tiny_ratings, config, tmp_path_factory.mktemp("models-als"), verbose=0)


def test_als_run_chooses_sweeps_on_validation_refits_and_serves(als_run, tiny_ratings):
    manifest = load_bundle(als_run.run_dir).manifest
    assert manifest.model_kind == "bias" and manifest.head["squash"] is False
    assert manifest.config["solver"] == "als"
    curve = als_run.selection_model.history["val_rmse"]
    chosen = als_run.selection_model.epochs
    assert chosen == int(np.argmin(curve)) + 1 and manifest.history["val_rmse"] == curve
    assert als_run.eval_model.epochs == chosen  # the evaluated fit on the whole train split replays the count
    assert manifest.refit is not None and manifest.refit["epochs"] == chosen
    ratings = tiny_ratings.ratings
    train = split_mask(ratings, "random", 42)
    heldout = ratings[~train]["rating"].to_numpy()
    train_mean = float(ratings[train]["rating"].mean())
    assert manifest.metrics["rmse"] < rmse(np.full(heldout.size, train_mean), heldout) - 0.1
    user = int(ratings["user_id"].value_counts().idxmin())
    movie = int(ratings.loc[ratings["user_id"] == user, "movie_id"].iloc[0])
    with TestClient(create_app(Settings(model_dir=als_run.run_dir, device="cpu"))) as client:
        pred = client.post("/predict", json={"user_id": user, "movie_id": movie}).json()
        assert 0.5 <= pred["predicted_rating"] <= 5.0 and not pred["fallback"]
        assert len(client.get(f"/recommend/{user}?k=5").json()["items"]) == 5


def test_sgd_penalties_keep_their_weight_per_rating_above_the_size_they_were_tuned_at():
    from training.kinds.keras_sgd import PENALTY_REFERENCE_RATINGS, size_scaled_penalties

    config = TrainConfig.for_kind("nn")
    assert size_scaled_penalties(config, PENALTY_REFERENCE_RATINGS) is config  # where they were tuned
    assert size_scaled_penalties(config, 5_000) is config  # smaller sets are not penalised harder
    scaled = size_scaled_penalties(config, 40 * PENALTY_REFERENCE_RATINGS)
    assert scaled.model.l2_factors == pytest.approx(config.model.l2_factors / 40)
    assert scaled.model.side_l2 == pytest.approx(config.model.side_l2 / 40)
    assert scaled.model.n_factors == config.model.n_factors and scaled.learning_rate == config.learning_rate
    per_row = TrainConfig.for_kind("bias", model_fields={"regularization": "per_example"})
    assert size_scaled_penalties(per_row, 10**8) is per_row  # a per-row penalty already scales with the data


def test_the_trainer_names_the_solver_counts_sweeps_and_hints_at_als_for_large_sgd_runs(
    tiny_ratings: RatingsData,
    tmp_path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    import training.__main__ as cli

    data = str(tiny_ratings.ratings_path.parent)
    common = ["--data", data, "--model", "bias", "--no-ranker", "--output-dir", str(tmp_path), "--quiet"]
    assert cli.main(["train", *common, "--solver", "als", "--epochs", "6"]) == 0
    out = capsys.readouterr().out
    assert "training bias by alternating least squares on 2,500 ratings" in out
    assert re.search(r"model bias: \d+ sweeps, held-out RMSE", out) and "hint:" not in out
    monkeypatch.setattr(cli, "ALS_HINT_RATINGS", 2_500)  # as if this were ml-25m
    assert cli.main(["train", *common, "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "hint: at this size SGD needs many long epochs; `--solver als` fits bias in minutes" in out
    assert re.search(r"model bias: 1 epochs, held-out RMSE", out)
