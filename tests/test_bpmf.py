"""Bayesian biased MF (training/bpmf.py): the sampler learns planted structure, the rank reduction is exact,
and the result is an ordinary Keras bias-form artifact that the service serves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from movierec.artifacts import MODEL_FILE, load_bundle
from movierec.data import RatingsData
from movierec.split import split_mask
from training import bpmf
from training.bpmf import gibbs_posterior_mean
from training.metrics import rmse
from training.sparse_gram import RatingPattern, expand_upper

SAMPLER = dict(
    n_factors=3, burn_in=5, prior_precision=1.0, bias_prior_precision=3.0, noise_precision=4.0, seed=0
)


def _planted(seed: int = 0) -> tuple[np.ndarray, ...]:
    """120 users x 90 movies, rank-3 preferences plus biases plus noise (sd 0.25), 40% observed."""
    rng = np.random.default_rng(seed)
    n_u, n_m = 120, 90
    p, q = rng.normal(0, 0.6, (n_u, 3)), rng.normal(0, 0.6, (n_m, 3))
    truth = 3.5 + rng.normal(0, 0.3, (n_u, 1)) + rng.normal(0, 0.3, (1, n_m)) + p @ q.T
    users, movies = np.nonzero(rng.random((n_u, n_m)) < 0.4)
    ratings = truth[users, movies] + rng.normal(0, 0.25, users.size)
    train = rng.random(users.size) < 0.8
    return users, movies, ratings, train, n_u, n_m


def test_posterior_mean_recovers_planted_structure_beyond_the_biases():
    users, movies, ratings, train, n_u, n_m = _planted()
    post = gibbs_posterior_mean(
        users[train],
        movies[train],
        ratings[train],
        n_u,
        n_m,
        sweeps=40,
        rank=8,
        **SAMPLER,
        rating_scale=(-10.0, 20.0),
    )
    t = ~train
    pred = post.predict(users[t], movies[t])
    biases_only = post.global_mean + post.user_bias[users[t]] + post.movie_bias[movies[t]]
    # Noise floor 0.25; the planted rank-3 part has sd ~0.6, so biases alone stay near 0.7 (0.75 measured) while
    # the posterior mean gets most of the way to the floor (0.33 measured).
    assert rmse(pred, ratings[t]) < 0.4
    assert rmse(biases_only, ratings[t]) > 0.6


def test_rank_reduction_without_truncation_is_the_exact_posterior_mean_of_the_samples():
    users, movies, ratings, train, n_u, n_m = _planted(1)
    v = ~train
    common = dict(
        sweeps=12, validation=(users[v], movies[v], ratings[v]), rating_scale=(-10.0, 20.0), **SAMPLER
    )
    # 7 kept samples x 3 factors = 21 columns: rank 21 keeps all of them, rank 2 truncates.
    full = gibbs_posterior_mean(users[train], movies[train], ratings[train], n_u, n_m, rank=21, **common)
    assert full.user_factors.shape == (n_u, 21) and len(full.validation_rmse) == 7

    def exported_rmse(post) -> float:
        return rmse(np.clip(post.predict(users[v], movies[v]), -10.0, 20.0), ratings[v])

    # The running validation RMSE averages the samples' own predictions; the exported factors must match it.
    assert exported_rmse(full) == pytest.approx(full.validation_rmse[-1], abs=1e-9)
    truncated = gibbs_posterior_mean(users[train], movies[train], ratings[train], n_u, n_m, rank=2, **common)
    assert truncated.user_factors.shape == (n_u, 2)
    assert exported_rmse(truncated) > exported_rmse(full)


def _bincount_gram_and_rhs(rows, cols, values, features, offset, n_rows):
    """The per-rating formulation the sparse products replace: a bincount per Gram entry over all ratings."""
    x = features[cols]
    targets = values - offset[cols]
    width = x.shape[1]
    gram = np.empty((n_rows, width, width))
    for a in range(width):
        for b in range(width):
            gram[:, a, b] = np.bincount(rows, weights=x[:, a] * x[:, b], minlength=n_rows)
    rhs = np.stack([np.bincount(rows, weights=x[:, a] * targets, minlength=n_rows) for a in range(width)], 1)
    return gram, rhs


@pytest.mark.parametrize("workers", [1, 3])
def test_sparse_gram_and_rhs_equal_the_per_rating_sums(workers):
    # Duplicate pairs (separate ratings), entities without ratings on both sides, both orientations.
    rng = np.random.default_rng(3)
    n_u, n_m, n = 70, 40, 900
    users, movies = rng.integers(0, n_u - 5, n), rng.integers(0, n_m - 3, n)
    values = rng.normal(3.5, 1.0, n)
    by_user, by_movie = RatingPattern.pair(users, movies, values, n_u, n_m, workers=workers)
    for pattern, rows, cols, n_rows, n_cols in (
        (by_user, users, movies, n_u, n_m),
        (by_movie, movies, users, n_m, n_u),
    ):
        features = np.hstack([rng.normal(0, 0.7, (n_cols, 5)), np.ones((n_cols, 1))])
        offset = rng.normal(0, 0.5, n_cols)
        upper, rhs = pattern.gram_and_rhs(features, offset)
        gram_ref, rhs_ref = _bincount_gram_and_rhs(rows, cols, values, features, offset, n_rows)
        np.testing.assert_allclose(expand_upper(upper, 6), gram_ref, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(rhs, rhs_ref, rtol=1e-9, atol=1e-12)
        assert np.all(expand_upper(upper, 6)[-3:] == 0)  # the entities nobody rated


def test_posterior_draws_have_the_gaussian_posterior_mean_and_covariance(monkeypatch):
    # 40,000 copies of one entity's system: the draws' mean and covariance are the closed-form posterior's,
    # whatever the block size and number of workers.
    monkeypatch.setattr(bpmf, "_SOLVE_BLOCK", 4_096)
    rng = np.random.default_rng(5)
    x = np.hstack([rng.normal(size=(12, 3)), np.ones((12, 1))])
    t = rng.normal(size=12)
    prior, noise = np.array([2.0, 2.0, 2.0, 5.0]), 1.6
    prior_mean = np.array([0.3, -0.2, 0.1, 0.4])
    copies = 40_000
    upper = np.tile((x.T @ x)[np.triu_indices(4)], (copies, 1))
    rhs = np.tile(x.T @ t, (copies, 1))
    draws = bpmf.posterior_draw(rng, upper, rhs, prior, noise, np.tile(prior_mean, (copies, 1)), 3)
    precision = noise * (x.T @ x + np.diag(prior))
    mean = np.linalg.solve(precision, noise * (x.T @ t + prior * prior_mean))
    covariance = np.linalg.inv(precision)
    sd = np.sqrt(np.diag(covariance))
    assert np.all(np.abs(draws.mean(axis=0) - mean) < 5 * sd / np.sqrt(copies))
    np.testing.assert_allclose(np.cov(draws.T), covariance, atol=0.03 * sd.max() ** 2)
    # Each entity's draw depends on its own noise only: blocks and threads do not change the numbers.
    again = bpmf.posterior_draw(np.random.default_rng(9), upper[:9000], rhs[:9000], prior, noise, None, 1)
    monkeypatch.setattr(bpmf, "_SOLVE_BLOCK", 1_000)
    blocked = bpmf.posterior_draw(np.random.default_rng(9), upper[:9000], rhs[:9000], prior, noise, None, 4)
    np.testing.assert_array_equal(again, blocked)


def test_rank_reduction_is_exact_with_fewer_entities_than_stacked_sample_columns():
    # 45 kept samples x 3 factors = 135 columns, more than the 120 users and 90 movies: the stacked samples
    # are rank-deficient, and the reduction at full rank must still reproduce the running posterior mean.
    users, movies, ratings, train, n_u, n_m = _planted(2)
    v = ~train
    post = gibbs_posterior_mean(
        users[train],
        movies[train],
        ratings[train],
        n_u,
        n_m,
        sweeps=50,
        rank=135,
        validation=(users[v], movies[v], ratings[v]),
        rating_scale=(-10.0, 20.0),
        **SAMPLER,
    )
    exported = rmse(np.clip(post.predict(users[v], movies[v]), -10.0, 20.0), ratings[v])
    assert post.user_factors.shape[1] <= 90
    assert exported == pytest.approx(post.validation_rmse[-1], abs=1e-9)


def test_sweeps_must_leave_samples_after_burn_in():
    users, movies, ratings, _, n_u, n_m = _planted()
    with pytest.raises(ValueError, match="burn_in"):
        gibbs_posterior_mean(users, movies, ratings, n_u, n_m, sweeps=5, rank=4, **SAMPLER)


@pytest.fixture(scope="module")
def bpmf_run(tiny_ratings: RatingsData, tmp_path_factory: pytest.TempPathFactory):
    from training.config import TrainConfig
    from training.pipeline import train_run

    config = TrainConfig.for_kind("bpmf", epochs=30, model_fields={"burn_in": 10, "export_rank": 16})
    return train_run(tiny_ratings, config, tmp_path_factory.mktemp("models-bpmf"), verbose=0)


def test_bpmf_artifact_is_a_keras_bias_model_that_the_scorer_reproduces(bpmf_run, tiny_ratings):
    import keras

    bundle = load_bundle(bpmf_run.run_dir)
    manifest = bundle.manifest
    assert manifest.model_kind == "bpmf" and manifest.head["squash"] is False
    assert manifest.metrics["epochs"] == 30 and manifest.refit is not None and manifest.refit["epochs"] == 30
    model = keras.saving.load_model(Path(bpmf_run.run_dir) / MODEL_FILE)
    users = np.arange(min(20, len(bundle.user_ids)), dtype=np.int32)
    movies = np.arange(len(users), dtype=np.int32)
    keras_pred = np.asarray(model.predict({"user": users, "movie": movies}, verbose=0)).reshape(-1)
    scorer = bpmf_run.final_model.scorer()
    np.testing.assert_allclose(
        np.clip(keras_pred, 0.5, 5.0),
        scorer.predict(users.astype(np.int64), movies.astype(np.int64))[0],
        atol=1e-4,
    )
    # Better than predicting the training mean on the tiny data's held-out ratings.
    ratings = tiny_ratings.ratings
    heldout = ratings[~split_mask(ratings, "random", 42)]["rating"].to_numpy()
    train_mean = float(ratings[split_mask(ratings, "random", 42)]["rating"].mean())
    assert manifest.metrics["rmse"] < rmse(np.full(heldout.size, train_mean), heldout) - 0.1


def test_bpmf_is_served_like_a_bias_model(bpmf_run, tiny_ratings):
    ratings = tiny_ratings.ratings
    user = int(ratings["user_id"].value_counts().idxmin())  # leaves unrated movies to recommend
    movie = int(ratings.loc[ratings["user_id"] == user, "movie_id"].iloc[0])
    with TestClient(create_app(Settings(model_dir=bpmf_run.run_dir, device="cpu"))) as client:
        assert client.get("/model").json()["model_kind"] == "bpmf"
        pred = client.post("/predict", json={"user_id": user, "movie_id": movie}).json()
        assert 0.5 <= pred["predicted_rating"] <= 5.0 and not pred["fallback"]
        assert len(client.get(f"/recommend/{user}?k=5").json()["items"]) == 5
        fold = client.post("/recommend", json={"ratings": [{"movie_id": movie, "rating": 5}], "k": 5})
        assert fold.status_code == 200 and len(fold.json()["items"]) == 5
        ranking = client.get("/movies/bias-ranking?limit=5&most_rated=50").json()["items"]
        assert len(ranking) == 5 and ranking[0]["bias"] >= ranking[-1]["bias"]
