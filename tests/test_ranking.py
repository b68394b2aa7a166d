"""The serving side of the item ranker: scores equal dense EASE^R's, and every list kind uses the same order."""

from __future__ import annotations

import numpy as np
import pytest

from movierec.ranking import ItemRanker

L2 = 3.0


def _dense_ease(x: np.ndarray, l2: float) -> np.ndarray:
    """EASE^R's closed form (Steck 2019): B = I - P / diag(P), P = (X^T X + l2 I)^-1, zero diagonal."""
    p = np.linalg.inv(x.T @ x + l2 * np.eye(x.shape[1]))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b


@pytest.fixture(scope="module")
def small() -> tuple[np.ndarray, ItemRanker]:
    from training.ranker import fit_ease_ranker

    rng = np.random.default_rng(3)
    x = (rng.random((40, 25)) < 0.3).astype(np.float64)
    users, movies = np.nonzero(x)
    arrays = fit_ease_ranker(users, movies, x.shape[0], x.shape[1], rank=25, l2=L2)
    settings = {"kind": "ease_lowrank", "l2": L2, "like_threshold": 3.5, "like_temperature": 0.6}
    return x, ItemRanker.from_arrays(arrays, settings)


def test_propensity_equals_dense_ease_for_every_user(small) -> None:
    x, ranker = small
    expected = x @ _dense_ease(x, L2)
    for u in range(x.shape[0]):
        rated = np.flatnonzero(x[u])
        got = ranker.propensity(rated)
        unrated = x[u] == 0
        np.testing.assert_allclose(got[unrated], expected[u, unrated], rtol=1e-4, atol=1e-5)
        with_rated = ranker.propensity(rated, include_rated=True)
        np.testing.assert_allclose(with_rated, expected[u], rtol=1e-4, atol=1e-5)


def test_prior_is_the_propensity_of_the_average_history(small) -> None:
    x, ranker = small
    mean_history = x.mean(axis=0)
    expected = (mean_history @ _dense_ease(x, L2))[mean_history == 0] if (mean_history == 0).any() else None
    vec = (mean_history @ ranker.history_factors) * ranker.scale
    np.testing.assert_allclose(ranker.prior, vec @ ranker.item_factors_t, rtol=1e-4, atol=1e-6)
    if expected is not None:
        np.testing.assert_allclose(ranker.prior[mean_history == 0], expected, rtol=1e-4, atol=1e-5)


def test_rank_scores_grow_with_propensity_and_with_predicted_rating(small) -> None:
    _, ranker = small
    propensity = np.array([0.1, 0.2, 0.2, -0.5, -0.1], dtype=np.float32)
    ratings = np.array([4.0, 4.0, 2.0, 5.0, 4.0], dtype=np.float32)
    scores = ranker.rank_scores(propensity, ratings)
    assert scores[1] > scores[0]  # same rating, more propensity
    assert scores[1] > scores[2]  # same propensity, better rating
    # No positive evidence: floored, then ordered by the rating model alone (never tied at zero).
    assert scores[3] > scores[4] > 0
    assert scores[0] > scores[3]


# ---- lists from a trained artifact (the tiny session bundle carries a ranker by default) -------------------


@pytest.fixture(scope="module")
def recommender(tiny_bundle_dir):
    from movierec.artifacts import load_bundle
    from movierec.recommender import Recommender

    return Recommender(load_bundle(tiny_bundle_dir))


def _lightest_user(recommender) -> int:
    """The user with the fewest ratings (in the tiny data the first users rated every movie)."""
    return int(np.argmin(np.diff(recommender.bundle.user_ratings.indptr)))


def test_the_default_artifact_ranks_lists_with_its_ranker(recommender) -> None:
    assert recommender.ranker is not None and recommender.ranking == "ease_lowrank*p_like"
    user = int(recommender.bundle.user_ids.ids[_lightest_user(recommender)])
    ranked = recommender.recommend(user, 10)
    assert len(ranked.movie_index) == 10
    assert ranked.ranking == recommender.ranking and ranked.rank_scores is not None
    assert np.all(np.diff(ranked.rank_scores) <= 0)
    # The order is the ranker's blend of propensity and predicted rating, recomputed here from its parts.
    u = recommender.user_index(user)
    rated = recommender.bundle.user_ratings.movies_of(u)
    scorer = recommender.scorer
    ratings = scorer.head.apply(scorer.raw_catalogue(scorer.user_factors[u], float(scorer.user_bias[u])))
    expected = recommender.ranker.rank_scores(recommender.ranker.propensity(rated), ratings)
    expected[rated] = -np.inf
    np.testing.assert_allclose(ranked.rank_scores, np.sort(expected)[::-1][:10], rtol=1e-5)
    np.testing.assert_allclose(ranked.scores, ratings[ranked.movie_index], rtol=1e-6)


@pytest.mark.parametrize(
    ("k", "genres", "min_ratings", "both_paths"),
    [(3, None, 0, True), (5, None, 0, False), (3, ["Drama"], 5, False)],
)
def test_pruned_lists_are_the_whole_catalogue_lists(
    recommender, monkeypatch, k, genres, min_ratings, both_paths
) -> None:
    """Rating only the movies whose propensity bound can reach the top k gives the very list that rating every
    movie gives, for every user; the whole-catalogue fallback is taken where the bound cannot decide."""
    import movierec.recommender as module

    scorer, ranker = recommender.scorer, recommender.ranker
    whole_catalogue = 0
    original = scorer.raw_catalogue

    def counted(*args, **kwargs):
        nonlocal whole_catalogue
        whole_catalogue += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(scorer, "raw_catalogue", counted)
    # A small candidate pool, so that this 80-movie catalogue exercises the pruned path and the fallback (its
    # flat propensities rarely let the bound decide for longer or filtered lists: those check the fallback).
    monkeypatch.setattr(module, "_PRUNED_CANDIDATES", 8)
    users = recommender.bundle.user_ids.ids
    for u, user in enumerate(users):
        ranked = recommender.recommend(int(user), k, genres=genres, min_ratings=min_ratings)
        rated = recommender.bundle.user_ratings.movies_of(u)
        ratings = scorer.head.apply(original(scorer.user_factors[u], float(scorer.user_bias[u])))
        expected = ranker.rank_scores(ranker.propensity(rated), ratings)
        penalty = recommender.candidate_penalty(genres, min_ratings)
        if penalty is not None:
            expected += penalty
        expected[rated] = -np.inf
        order = np.argsort(-expected, kind="stable")
        order = order[np.isfinite(expected[order])][:k]
        np.testing.assert_array_equal(np.sort(ranked.movie_index), np.sort(order), err_msg=f"user {user}")
        np.testing.assert_allclose(ranked.rank_scores, expected[order], rtol=1e-5)
        np.testing.assert_allclose(ranked.scores, ratings[ranked.movie_index], rtol=1e-5)
    assert 0 < whole_catalogue < len(users) if both_paths else whole_catalogue > 0


def test_fold_in_lists_use_the_same_ranker_on_the_given_ratings(recommender) -> None:
    u = _lightest_user(recommender)
    rated = recommender.bundle.user_ratings.movies_of(u)
    ratings = recommender.bundle.user_ratings.ratings_of(u)
    movie_ids = recommender.bundle.movie_ids.ids[rated]
    folded = recommender.recommend_for_ratings(movie_ids, ratings.astype(np.float64), 10)
    assert len(folded.movie_index) == 10
    assert folded.strategy == "fold_in" and folded.ranking == recommender.ranking
    # Same rated movies, so the same propensity; only the folded-in rating vector differs from the trained one.
    vec, bias = recommender.scorer.fold_in(rated, ratings, recommender.fold_in_l2)
    predicted = recommender.scorer.head.apply(recommender.scorer.raw_catalogue(vec, bias))
    expected = recommender.ranker.rank_scores(recommender.ranker.propensity(rated), predicted)
    expected[rated] = -np.inf
    np.testing.assert_array_equal(folded.movie_index, np.argsort(-expected, kind="stable")[:10])


def test_cold_start_lists_are_the_rankers_prior(recommender) -> None:
    cold = recommender.recommend(987_654_321, 10)
    assert cold.strategy == "cold_start" and cold.ranking == recommender.ranking
    expected = recommender.ranker.rank_scores(recommender.ranker.prior, recommender._cold_start_ratings)
    np.testing.assert_array_equal(cold.movie_index, np.argsort(-expected, kind="stable")[:10])


def test_kept_history_vectors_give_the_propensities_computed_afresh(small) -> None:
    from movierec.ranking import HistoryVectors

    x, ranker = small
    histories = [np.flatnonzero(x[u]) for u in range(x.shape[0])]
    kept = HistoryVectors(ranker, x.shape[0], histories.__getitem__)
    users = [0, 5, 5, 17]  # a user asked twice is computed once
    vectors = [kept.get(u) for u in users]
    assert kept.filled == 3
    afresh = ranker.propensity_block([histories[u] for u in users], [False, True, False, False])
    with_kept = ranker.propensity_block([histories[u] for u in users], [False, True, False, False], vectors)
    np.testing.assert_array_equal(with_kept, afresh)  # the same sum, the same product: the same bits
