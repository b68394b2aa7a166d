"""Rating-error and top-N ranking metrics, and the damped-mean baselines used as fallbacks."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray


def rmse(predicted: NDArray[Any], actual: NDArray[Any]) -> float:
    """Root mean squared error."""
    diff = np.asarray(predicted, dtype=np.float64) - np.asarray(actual, dtype=np.float64)
    return float(np.sqrt(np.mean(diff**2)))


def mae(predicted: NDArray[Any], actual: NDArray[Any]) -> float:
    """Mean absolute error."""
    diff = np.asarray(predicted, dtype=np.float64) - np.asarray(actual, dtype=np.float64)
    return float(np.mean(np.abs(diff)))


def damped_baselines(
    user_idx: NDArray[Any],
    movie_idx: NDArray[Any],
    ratings: NDArray[Any],
    n_users: int,
    n_movies: int,
    damping: float = 10.0,
) -> tuple[float, NDArray[np.float32], NDArray[np.float32]]:
    """Global mean and damped user / movie offsets (rating units), movies first then users on the residual.

    `b_i = sum(r - mu) / (n_i + damping)`, `b_u = sum(r - mu - b_i) / (n_u + damping)`: rarely rated movies
    shrink towards the global mean, which is what a fallback for a barely known id should do.
    """
    ratings = np.asarray(ratings, dtype=np.float64)
    mu = float(ratings.mean()) if ratings.size else 0.0
    resid = ratings - mu
    b_i = np.bincount(movie_idx, resid, n_movies) / (np.bincount(movie_idx, minlength=n_movies) + damping)
    resid = resid - b_i[movie_idx]
    b_u = np.bincount(user_idx, resid, n_users) / (np.bincount(user_idx, minlength=n_users) + damping)
    return mu, b_u.astype(np.float32), b_i.astype(np.float32)


def ranking_at_k(
    scores: NDArray[Any], relevant: NDArray[np.bool_], k: int = 10
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """Per-user NDCG@k and recall@k of a batch of score rows, and each row's top k (best first).

    `scores` (users x movies) must already hold -inf for non-candidates (e.g. movies the user rated in train);
    `relevant` marks the relevant candidates. One vectorised pass per batch (argpartition, then a sort of only
    k columns), so choosing a hyper-parameter over every validation user costs a few matrix products. The
    definitions are bench/accuracy.py's: recall = hits / relevant, NDCG's ideal has min(relevant, k) hits;
    rows without a relevant movie get NaN.
    """
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(part, order, axis=1).astype(np.int64)
    hits = np.take_along_axis(relevant, top, axis=1) & np.isfinite(np.take_along_axis(scores, top, axis=1))
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    n_relevant = relevant.sum(axis=1)
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[np.minimum(n_relevant, k)]
    with np.errstate(invalid="ignore", divide="ignore"):
        ndcg = np.where(n_relevant > 0, (hits * discounts).sum(axis=1) / ideal, np.nan)
        recall = np.where(n_relevant > 0, hits.sum(axis=1) / n_relevant, np.nan)
    return ndcg, recall, top
