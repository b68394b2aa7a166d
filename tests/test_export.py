"""Exported arrays reproduce the Keras model: the service's numpy path equals `model.predict`."""

from __future__ import annotations

import numpy as np
import pytest

from movierec.export import export_arrays
from movierec.models import ModelConfig, build_model
from movierec.scoring import Head, _top_k_above_sampled_threshold, build_scorer, top_k_indices
from training.kinds.registry import KINDS as KIND_REGISTRY

KINDS = ("dot", "bias", "nn")


def _all_pairs(n_users: int, n_movies: int) -> tuple[np.ndarray, np.ndarray]:
    users, movies = np.meshgrid(np.arange(n_users), np.arange(n_movies), indexing="ij")
    return users.ravel().astype(np.int64), movies.ravel().astype(np.int64)


@pytest.mark.parametrize("kind", KINDS)
def test_scorer_on_exported_arrays_equals_model_predict(fitted_models, kind):
    fitted = fitted_models[kind]
    config = ModelConfig(kind=kind, n_factors=8)
    arrays, head = export_arrays(fitted.model, config)
    n_users, n_movies = len(fitted.indexed.users), len(fitted.indexed.movies)
    assert arrays["user_factors"].shape == (n_users, 8)
    assert arrays["movie_factors"].shape == (n_movies, 8)
    assert ("movie_bias" in arrays) == (kind == "bias")
    assert all(a.dtype == np.float32 for a in arrays.values())
    scorer = build_scorer(
        KIND_REGISTRY[kind].scorer_family, arrays, Head.from_dict(head), np.zeros(n_users), np.zeros(n_movies)
    )

    users, movies = _all_pairs(n_users, n_movies)  # every (user, movie) pair: 4,800 predictions
    expected = fitted.model.predict(
        {"user": users.astype(np.int32), "movie": movies.astype(np.int32)}, verbose=0
    )
    got, fallback = scorer.predict(users, movies)
    assert not fallback.any()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("kind", ["dot", "bias"])
def test_unsquashed_head_is_reproduced_too(kind):
    config = ModelConfig(kind=kind, n_factors=4, squash_output=False)
    model = build_model(config, n_users=7, n_movies=9, rating_scale=(0.5, 5.0), global_mean=3.5)
    rng = np.random.default_rng(3)
    # Give the (zero-initialised) biases values so that they matter, but keep predictions inside the scale:
    # the numpy path clips to the scale, the unsquashed Keras head does not.
    for name in ("user_bias", "movie_bias") if kind == "bias" else ():
        layer = model.get_layer(name)
        layer.set_weights([rng.normal(0, 0.2, layer.get_weights()[0].shape).astype(np.float32)])
    arrays, head = export_arrays(model, config)
    assert head == {"min_rating": 0.5, "max_rating": 5.0, "offset": 3.5, "squash": False, "margin": 0.0}
    scorer = build_scorer(
        KIND_REGISTRY[kind].scorer_family, arrays, Head.from_dict(head), np.zeros(7), np.zeros(9)
    )
    users, movies = _all_pairs(7, 9)
    expected = model.predict({"user": users.astype(np.int32), "movie": movies.astype(np.int32)}, verbose=0)
    assert np.all((expected > 0.5) & (expected < 5.0))
    np.testing.assert_allclose(scorer.predict(users, movies)[0], expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_raw_catalogue_equals_raw_pairs_over_all_movies(fitted_models, kind):
    fitted = fitted_models[kind]
    scorer = fitted.scorer()
    movies = np.arange(scorer.n_movies, dtype=np.int64)
    for user in (0, scorer.n_users // 2, scorer.n_users - 1):
        catalogue = scorer.raw_catalogue(scorer.user_factors[user], float(scorer.user_bias[user]))
        pairs = scorer.raw_pairs(np.full(scorer.n_movies, user, dtype=np.int64), movies)
        assert catalogue.shape == (scorer.n_movies,)
        np.testing.assert_allclose(catalogue, pairs, rtol=0, atol=1e-5)


def _full_sort_top_k(scores: np.ndarray, k: int) -> np.ndarray:
    finite = np.flatnonzero(np.isfinite(scores))
    return finite[np.argsort(-scores[finite], kind="stable")][:k]


@pytest.mark.parametrize("k", [0, 1, 5, 37, 99, 100, 150])
def test_top_k_indices_agrees_with_a_full_sort(k):
    rng = np.random.default_rng(k)
    scores = rng.normal(size=100).astype(np.float32)  # continuous: no ties, so the order is unique
    scores[rng.choice(100, 10, replace=False)] = -np.inf  # excluded movies
    scores[rng.choice(100, 2, replace=False)] = np.nan
    top = top_k_indices(scores, k)
    assert top.dtype == np.int64
    np.testing.assert_array_equal(top, _full_sort_top_k(scores, k))
    assert len(top) == min(k, int(np.isfinite(scores).sum()))


@pytest.mark.parametrize("excluded_fraction", [0.0, 0.5, 0.97, 1.0])
@pytest.mark.parametrize("k", [1, 10, 100])
def test_top_k_indices_on_a_large_catalogue_matches_a_stable_full_sort(k, excluded_fraction):
    # Large enough for the sampled-threshold path; coarse values make ties, which must come out in index
    # order exactly like a stable full sort; heavy exclusion forces the partition fallback.
    rng = np.random.default_rng(k)
    n = 20_000
    scores = np.round(rng.normal(size=n), 2).astype(np.float32)
    scores[rng.random(n) < excluded_fraction] = -np.inf
    scores[rng.choice(n, 30, replace=False)] = np.nan
    top = top_k_indices(scores, k)
    expected = _full_sort_top_k(scores, k)
    if _top_k_above_sampled_threshold(scores, k) is not None:  # the threshold path: exact, ties included
        np.testing.assert_array_equal(top, expected)
    else:  # the partition fallback (NaN or exclusions fill the sample): the same scores, ties in any order
        np.testing.assert_array_equal(scores[top], scores[expected])
    assert len(top) == min(k, int(np.isfinite(scores).sum()))


def test_top_k_indices_of_nothing_valid_is_empty():
    assert top_k_indices(np.full(5, -np.inf, dtype=np.float32), 3).size == 0
    assert top_k_indices(np.empty(0, dtype=np.float32), 3).size == 0
