"""The benchmark's ranking and popularity metrics on a frame small enough to check by hand."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "accuracy.py"


@pytest.fixture(scope="module")
def accuracy() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_accuracy", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _frame(rows: list[tuple[int, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "movie_id", "rating"])


# Train: movie 10 rated by users 1-3 and 40 by users 3-5 (3 ratings each); 20 and 30 once each.
TRAIN = _frame(
    [
        (1, 10, 4.0),
        (1, 20, 3.0),
        (2, 10, 5.0),
        (2, 30, 2.0),
        (3, 10, 3.0),
        (3, 40, 4.0),
        (4, 40, 5.0),
        (5, 40, 1.0),
    ]
)
# Held-out: user 1 likes 30 (not 40); user 2 likes 20 and 40; user 3 has no relevant movie (rating < 4).
HELDOUT = _frame([(1, 30, 5.0), (1, 40, 2.0), (2, 20, 4.0), (2, 40, 4.5), (3, 20, 3.0)])
USERS = np.array([1, 2, 3, 4, 5])
MOVIES = np.array([10, 20, 30, 40])


def test_ranking_metrics_by_hand(accuracy: ModuleType) -> None:
    scores = {
        0: np.array([9.0, 8.0, 1.0, 5.0]),  # user 1: 10, 20 rated -> list [40, 30]: hit at rank 2
        1: np.array([0.0, 3.0, 0.0, 2.0]),  # user 2: 10, 30 rated -> list [20, 40]: both relevant
    }
    m = accuracy.ranking_metrics(
        lambda u: scores.get(u, np.zeros(4)), USERS, MOVIES, TRAIN, HELDOUT, k=2, long_tail=2
    )
    assert m["n_users"] == 2  # user 3 has nothing relevant
    assert m["precision@2"] == pytest.approx((1 / 2 + 1) / 2)
    assert m["recall@2"] == pytest.approx(1.0)
    # user 1: one hit at rank 2 over an ideal hit at rank 1; user 2: ideal.
    assert m["ndcg@2"] == pytest.approx((1 / np.log2(3) + 1.0) / 2)
    assert m["coverage"] == 3  # 40, 30, 20
    # Listed: 40, 30, 20, 40 with 3, 1, 1, 3 train ratings: half have fewer than 2.
    assert m["long_tail_share"] == pytest.approx(0.5)
    assert m["top_movie"] == 40
    assert m["top_movie_share"] == pytest.approx(1.0)


def test_popularity_baseline(accuracy: ModuleType) -> None:
    pop = accuracy.popularity_scores(TRAIN, MOVIES)
    np.testing.assert_array_equal(pop, [3, 1, 1, 3])
    m = accuracy.ranking_metrics(lambda u: pop, USERS, MOVIES, TRAIN, HELDOUT, k=1)
    # Both users get 40 (their most-rated candidate): a miss for user 1, one of two relevant for user 2.
    assert m["precision@1"] == pytest.approx(0.5)
    assert m["recall@1"] == pytest.approx(0.25)
    assert m["ndcg@1"] == pytest.approx(0.5)
    assert (m["coverage"], m["top_movie"], m["top_movie_share"]) == (1, 40, 1.0)
    assert m["long_tail_share"] == pytest.approx(1.0)  # 3 train ratings < 20


def test_parse_split(accuracy: ModuleType) -> None:
    assert accuracy.parse_split("random:7") == ("random", 7)
    assert accuracy.parse_split("temporal") == ("temporal", 42)


def test_ease_matches_the_dense_closed_form(accuracy: ModuleType) -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((6, 9)) < 0.4).astype(np.float64)  # fewer users than movies: G = XᵀX is singular
    l2 = 2.5
    model = accuracy.Ease.fit(x, l2)
    b = model.weights()
    np.testing.assert_allclose(np.diag(b), 0.0, atol=1e-12)
    # Column j of B = -P e_j / P_jj (diagonal zeroed), P e_j by a direct solve of (G + λI) p = e_j.
    g = x.T @ x + l2 * np.eye(9)
    for j in (0, 4):
        p = np.linalg.solve(g, np.eye(9)[:, j])
        expected = -p / p[j]
        expected[j] = 0.0
        np.testing.assert_allclose(b[:, j], expected, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(model.scores(x)[:, j], x @ expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.diag_p, np.diag(np.linalg.inv(g)), rtol=1e-10)
    # One decomposition shared across λ gives the same model.
    gram = accuracy.ease_gram(x)
    np.testing.assert_allclose(accuracy.Ease.fit(x, 7.0, gram).weights(), accuracy.Ease.fit(x, 7.0).weights())


def test_list_ranking_metrics_shares_ranking_metrics(accuracy: ModuleType) -> None:
    scores = {0: np.array([9.0, 8.0, 1.0, 5.0]), 1: np.array([0.0, 3.0, 0.0, 2.0])}
    by_score = accuracy.ranking_metrics(
        lambda u: scores.get(u, np.zeros(4)), USERS, MOVIES, TRAIN, HELDOUT, k=2, long_tail=2
    )
    lists = {0: [3, 2, 0], 1: [1, 3]}  # the same top-2 lists, as positions in MOVIES (extra entries cut)
    by_list = accuracy.list_ranking_metrics(
        lambda u: np.array(lists[u]), USERS, MOVIES, TRAIN, HELDOUT, k=2, long_tail=2
    )
    assert by_list == by_score
