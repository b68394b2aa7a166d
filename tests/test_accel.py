"""The device (keras.ops) scorers give the numpy scorers' answers; here they run on the CPU backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from movierec.artifacts import load_bundle
from movierec.recommender import Recommender
from movierec.scoring import Head, Scorer, build_scorer, top_k_indices

pytest.importorskip("keras")

HEAD = Head(min_rating=0.5, max_rating=5.0, offset=3.5, squash=True)


def _arrays(family: str, n_users: int = 6, n_movies: int = 40, k: int = 4, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {
        "user_factors": rng.normal(0, 0.5, (n_users, k)).astype(np.float32),
        "movie_factors": rng.normal(0, 0.5, (n_movies, k)).astype(np.float32),
    }
    if family == "factor":
        arrays["user_bias"] = rng.normal(0, 0.5, n_users).astype(np.float32)
        arrays["movie_bias"] = rng.normal(0, 0.5, n_movies).astype(np.float32)
    else:
        arrays.update(
            hidden_kernel=rng.normal(0, 0.5, (2 * k, 5)).astype(np.float32),
            hidden_bias=rng.normal(0, 0.5, 5).astype(np.float32),
            output_kernel=rng.normal(0, 0.5, 5).astype(np.float32),
            output_bias=np.array([0.1], dtype=np.float32),
        )
    return arrays


def _assert_device_matches_numpy(cpu: Scorer, device: Scorer) -> None:
    users = np.arange(min(5, cpu.n_users), dtype=np.int64)
    expected = [cpu.raw_catalogue(cpu.user_factors[u], float(cpu.user_bias[u])) for u in users]
    _, indices = device.top_k_users(users, k=5)  # type: ignore[attr-defined]
    for row, u in enumerate(users):
        got = device.raw_catalogue(cpu.user_factors[u], float(cpu.user_bias[u]))
        assert got.dtype == np.float32 and got.flags.writeable
        np.testing.assert_allclose(got, expected[row], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(indices[row], top_k_indices(expected[row], 5))


@pytest.mark.parametrize("family", ["factor", "mlp"])
def test_device_scorer_matches_the_numpy_scorer(family: str) -> None:
    arrays = _arrays(family)
    baselines = (np.zeros(6, np.float32), np.zeros(40, np.float32))
    cpu = build_scorer(family, arrays, HEAD, *baselines)
    device = build_scorer(family, arrays, HEAD, *baselines, device="gpu")
    assert isinstance(device, type(cpu)) and type(device) is not type(cpu)
    _assert_device_matches_numpy(cpu, device)
    # Pair scoring and fold-in are the inherited numpy code: identical results.
    users, movies = np.array([0, 1, 5]), np.array([3, 39, 0])
    np.testing.assert_array_equal(device.predict(users, movies)[0], cpu.predict(users, movies)[0])
    ratings = np.array([4.5, 1.0, 3.0], dtype=np.float32)
    np.testing.assert_array_equal(
        device.fold_in(movies, ratings, 5.0)[0], cpu.fold_in(movies, ratings, 5.0)[0]
    )


def test_device_scorer_on_a_trained_bundle_matches_numpy(tiny_bundle_dir: Path) -> None:
    bundle = load_bundle(tiny_bundle_dir)
    _assert_device_matches_numpy(Recommender(bundle).scorer, Recommender(bundle, device="gpu").scorer)


def test_recommender_on_the_device_path_recommends_like_numpy(tiny_bundle_dir: Path) -> None:
    bundle = load_bundle(tiny_bundle_dir)
    cpu, gpu = Recommender(bundle), Recommender(bundle, device="gpu")
    user = int(bundle.user_ids.ids[0])
    np.testing.assert_array_equal(gpu.recommend(user, 5).movie_index, cpu.recommend(user, 5).movie_index)
    # Filters write into the device path's scores in place; fold-in scores the catalogue there too.
    genre = cpu.genre_names[0]
    np.testing.assert_array_equal(
        gpu.recommend(user, 5, genres=[genre]).movie_index, cpu.recommend(user, 5, genres=[genre]).movie_index
    )
    movies, ratings = bundle.movie_ids.ids[:4], np.array([5.0, 4.0, 1.0, 2.5])
    np.testing.assert_array_equal(
        gpu.recommend_for_ratings(movies, ratings, 5).movie_index,
        cpu.recommend_for_ratings(movies, ratings, 5).movie_index,
    )
