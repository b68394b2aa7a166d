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


def _assert_same_lists(got, expected) -> None:  # type: ignore[no-untyped-def]
    """Equal lists up to float32 rounding: the same movies, where a near-tie may swap two neighbours."""
    assert len(got.movie_index) == len(expected.movie_index)
    np.testing.assert_allclose(got.rank_scores, expected.rank_scores, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got.scores, expected.scores, rtol=1e-4, atol=1e-4)
    for position, (a, b) in enumerate(zip(got.movie_index, expected.movie_index, strict=True)):
        if a != b:  # only where the two scores tie within rounding
            assert got.rank_scores[position] == pytest.approx(expected.rank_scores[position], rel=1e-4)


def test_the_device_list_path_ranks_a_batch_like_the_pruned_cpu_path(tiny_bundle_dir: Path) -> None:
    """Propensities, ratings, blend, filters, exclusions and top-k for a batch on the device: the CPU's lists."""
    bundle = load_bundle(tiny_bundle_dir)
    cpu, gpu = Recommender(bundle), Recommender(bundle, device="gpu")
    assert gpu.ranker is not None and gpu.device_lists is not None and cpu.device_lists is None
    genre = cpu.genre_names[0]
    asks = [
        dict(
            user=int(u),
            k=3 + n % 6,
            exclude_rated=n % 3 != 0,
            genres=[genre] if n % 4 == 1 else None,
            min_ratings=2 if n % 5 == 2 else 0,
        )
        for n, u in enumerate(bundle.user_ids.ids[:16])
    ]
    queries = [gpu.list_query(a.pop("user"), a.pop("k"), **a) for a in [dict(x) for x in asks]]
    expected = cpu.rank_lists(queries)  # the numpy path, pruned
    for got, want in zip(gpu.rank_lists(queries), expected, strict=True):
        _assert_same_lists(got, want)
        assert got.ranking == want.ranking and got.strategy == want.strategy
    # A lone list and a fold-in list take the same path.
    user = int(bundle.user_ids.ids[3])
    _assert_same_lists(gpu.recommend(user, 7), cpu.recommend(user, 7))
    movies, ratings = bundle.movie_ids.ids[:4], np.array([5.0, 4.0, 1.0, 2.5])
    _assert_same_lists(
        gpu.recommend_for_ratings(movies, ratings, 5), cpu.recommend_for_ratings(movies, ratings, 5)
    )
