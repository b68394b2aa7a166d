"""Rating-error metrics and the damped-mean baselines used as fallbacks."""

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
