"""Property tests (hypothesis) of the core `Recommender` on the session's tiny trained bundle.

- every prediction is finite and inside the rating scale, for known and unknown ids alike;
- a batch equals the same pairs predicted one by one;
- a top-k list has no duplicates, at most k entries, scores best first, and no rated movie when excluded;
- fold-in with a known user's own ratings ranks the catalogue like that user's learned vector does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from movierec.artifacts import load_bundle
from movierec.recommender import Recommender

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)
MAX_ID = 2**53 - 1

# Fold-in vs the learned user, Spearman over the whole catalogue's raw scores. Both score vectors share the movie
# side (factors and biases) and differ only in the user part, which fold-in re-fits by ridge regression with its
# own L2 (5.0, not the trainer's per-weight penalty) on at least 80% of the user's ratings. Measured on the tiny
# bundle: with all ratings the lowest correlation over the 60 users is 0.94 (median 0.99); with a random fifth
# dropped (300 draws) the lowest is 0.91. The shared movie biases alone make two *different* users correlate at
# 0.82 (median; up to 0.98), so an absolute bound is not enough: the fold-in must also correlate better with its
# own user than with the median user (measured: its own user ranks first in the median draw, 15th at worst of 60).
FOLD_IN_MIN_SPEARMAN = 0.85


@pytest.fixture(scope="module")
def recommender(tiny_bundle_dir: Path) -> Recommender:
    bundle = load_bundle(tiny_bundle_dir)
    return Recommender(bundle, fold_in_l2=float(bundle.manifest.config.get("fold_in_l2", 5.0)))


def _ids(recommender: Recommender) -> tuple[list[int], list[int]]:
    return recommender.bundle.user_ids.ids.tolist(), recommender.bundle.movie_ids.ids.tolist()


def _id_strategy(known: list[int]) -> st.SearchStrategy[int]:
    """Mostly known ids, sometimes unknown ones anywhere in the accepted range."""
    return st.one_of(st.sampled_from(known), st.sampled_from(known), st.integers(1, MAX_ID))


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    rank_a = np.argsort(np.argsort(a, kind="stable"), kind="stable").astype(np.float64)
    rank_b = np.argsort(np.argsort(b, kind="stable"), kind="stable").astype(np.float64)
    return float(np.corrcoef(rank_a, rank_b)[0, 1])


# ---- predictions ---------------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(data=st.data())
def test_predictions_are_finite_and_inside_the_rating_scale(
    recommender: Recommender, data: st.DataObject
) -> None:
    users, movies = _ids(recommender)
    n = data.draw(st.integers(1, 40))
    user_ids = np.array(data.draw(st.lists(_id_strategy(users), min_size=n, max_size=n)), dtype=np.int64)
    movie_ids = np.array(data.draw(st.lists(_id_strategy(movies), min_size=n, max_size=n)), dtype=np.int64)
    preds = recommender.predict(user_ids, movie_ids)
    head = recommender.scorer.head
    assert preds.ratings.shape == (n,)
    assert np.isfinite(preds.ratings).all()
    assert ((preds.ratings >= head.min_rating) & (preds.ratings <= head.max_rating)).all()
    assert np.array_equal(preds.user_known, np.isin(user_ids, users))
    assert np.array_equal(preds.movie_known, np.isin(movie_ids, movies))


@PROPERTY_SETTINGS
@given(data=st.data())
def test_a_batch_equals_the_same_pairs_one_by_one(recommender: Recommender, data: st.DataObject) -> None:
    users, movies = _ids(recommender)
    pairs = data.draw(st.lists(st.tuples(_id_strategy(users), _id_strategy(movies)), min_size=1, max_size=25))
    user_ids = np.array([u for u, _ in pairs], dtype=np.int64)
    movie_ids = np.array([m for _, m in pairs], dtype=np.int64)
    batch = recommender.predict(user_ids, movie_ids)
    for i, (u, m) in enumerate(pairs):
        one = recommender.predict(np.array([u]), np.array([m]))
        assert one.ratings[0] == pytest.approx(float(batch.ratings[i]), abs=1e-5)
        assert one.user_known[0] == batch.user_known[i] and one.movie_known[0] == batch.movie_known[i]


# ---- top-k ---------------------------------------------------------------------------------------------------


def _candidates(recommender: Recommender, genres: list[str], min_ratings: int) -> np.ndarray | None:
    """The filters' meaning, from the catalogue: movies of any of `genres` rated at least `min_ratings` times."""
    if not genres and min_ratings <= 0:
        return None
    wanted = {g.lower() for g in genres}
    of_genre = np.array([not wanted or bool(wanted & {g.lower() for g in gs}) for gs in recommender.genres])
    return of_genre & (recommender.n_ratings >= min_ratings)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_top_k_has_no_duplicates_and_no_rated_movies_when_excluded(
    recommender: Recommender, data: st.DataObject
) -> None:
    users, _ = _ids(recommender)
    user_id = data.draw(_id_strategy(users))
    k = data.draw(st.integers(1, 100))
    exclude = data.draw(st.booleans())
    genres = data.draw(st.lists(st.sampled_from(recommender.genre_names), max_size=3))
    min_ratings = data.draw(st.integers(0, 60))
    ranked = recommender.recommend(user_id, k, exclude_rated=exclude, genres=genres, min_ratings=min_ratings)
    chosen = ranked.movie_index.tolist()
    assert len(chosen) == len(set(chosen)) <= k
    # Best first by what the list is ranked by (the ranker's rank score; the predicted rating without one).
    order = ranked.scores if ranked.rank_scores is None else ranked.rank_scores
    assert (np.diff(order) <= 1e-6).all(), "lists must be best first"
    head = recommender.scorer.head
    assert ((ranked.scores >= head.min_rating) & (ranked.scores <= head.max_rating)).all()
    mask = _candidates(recommender, genres, min_ratings)
    if mask is not None:
        assert mask[chosen].all()
    user_index = recommender.user_index(user_id)
    if user_index is not None and exclude:
        rated = set(recommender.bundle.user_ratings.movies_of(user_index).tolist())
        assert not rated & set(chosen)
        # Nothing eligible is left out: the list is as long as k or as the unrated candidates allow.
        eligible = np.ones(recommender.scorer.n_movies, dtype=bool) if mask is None else mask.copy()
        eligible[list(rated)] = False
        assert len(chosen) == min(k, int(eligible.sum()))


@PROPERTY_SETTINGS
@given(data=st.data())
def test_fold_in_top_k_has_no_duplicates_and_excludes_the_rated_movies(
    recommender: Recommender, data: st.DataObject
) -> None:
    _, movies = _ids(recommender)
    rated = data.draw(st.lists(st.sampled_from(movies), min_size=1, max_size=30, unique=True))
    head = recommender.scorer.head
    ratings = data.draw(
        st.lists(
            st.floats(head.min_rating, head.max_rating, allow_nan=False),
            min_size=len(rated),
            max_size=len(rated),
        )
    )
    k = data.draw(st.integers(1, 100))
    ranked = recommender.recommend_for_ratings(
        np.array(rated, dtype=np.int64), np.array(ratings, dtype=np.float32), k
    )
    chosen = [recommender.movie_id(i) for i in ranked.movie_index.tolist()]
    assert len(chosen) == len(set(chosen)) == min(k, len(movies) - len(rated))
    assert not set(rated) & set(chosen)
    assert np.isfinite(ranked.scores).all()


# ---- fold-in against the learned user vector -----------------------------------------------------------------


def _learned_scores(recommender: Recommender) -> np.ndarray:
    """Raw catalogue scores of every known user's learned vector, one row per user index."""
    scorer = recommender.scorer
    return (
        scorer.user_factors @ scorer.movie_factors.T + scorer.user_bias[:, None] + scorer.movie_bias[None, :]
    )


def _eligible_users(recommender: Recommender) -> list[int]:
    counts = np.diff(recommender.bundle.user_ratings.indptr)
    return [int(u) for u in np.flatnonzero(counts >= 10)]


@PROPERTY_SETTINGS
@given(data=st.data())
def test_fold_in_of_a_known_users_ratings_ranks_like_that_user(
    recommender: Recommender, data: st.DataObject
) -> None:
    user = data.draw(st.sampled_from(_eligible_users(recommender)))
    movies = recommender.bundle.user_ratings.movies_of(user).astype(np.int64)
    ratings = recommender.bundle.user_ratings.ratings_of(user)
    keep = data.draw(st.lists(st.booleans(), min_size=len(movies), max_size=len(movies)))
    keep_mask = np.array(keep, dtype=bool)
    # At least 80% of the user's ratings: drop at most a fifth.
    drop = np.flatnonzero(~keep_mask)[: len(movies) // 5]
    keep_mask = np.ones(len(movies), dtype=bool)
    keep_mask[drop] = False
    scorer = recommender.scorer
    vec, bias = scorer.fold_in(movies[keep_mask], ratings[keep_mask], recommender.fold_in_l2)
    folded = scorer.raw_catalogue(vec, bias)
    correlations = np.array([_spearman(folded, learned) for learned in _learned_scores(recommender)])
    assert correlations[user] >= FOLD_IN_MIN_SPEARMAN
    assert correlations[user] > np.median(correlations)

    # The same through the public path: the fold-in list equals the ranking of the folded scores (with the
    # artifact's ranker: its order for the kept movies, blended with the folded predicted ratings).
    movie_ids = recommender.bundle.movie_ids.ids[movies[keep_mask]]
    ranked = recommender.recommend_for_ratings(movie_ids, ratings[keep_mask], 10)
    order = folded
    if recommender.ranker is not None:
        propensity = recommender.ranker.propensity(movies[keep_mask])
        order = recommender.ranker.rank_scores(propensity, scorer.head.apply(folded))
    expected = np.where(np.isin(np.arange(scorer.n_movies), movies[keep_mask]), -np.inf, order)
    assert np.allclose(
        np.sort(expected)[::-1][: len(ranked.movie_index)], order[ranked.movie_index], atol=1e-4
    )


def test_fold_in_of_every_users_full_ratings_passes_the_bound(recommender: Recommender) -> None:
    """Deterministic companion of the property: every eligible user, all their ratings."""
    scorer = recommender.scorer
    learned = _learned_scores(recommender)
    for user in _eligible_users(recommender):
        movies = recommender.bundle.user_ratings.movies_of(user).astype(np.int64)
        vec, bias = scorer.fold_in(
            movies, recommender.bundle.user_ratings.ratings_of(user), recommender.fold_in_l2
        )
        assert _spearman(learned[user], scorer.raw_catalogue(vec, bias)) >= FOLD_IN_MIN_SPEARMAN, user
