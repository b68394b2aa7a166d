"""The `bias` model fitted by alternating least squares: closed-form sweeps instead of SGD epochs, for large data.

The model is bpmf's (`mu + b_u + b_i + p_u . q_i`, Gaussian priors, side features as each row's prior mean),
but where the sampler draws from each side's conditional posterior, ALS steps to its mode: every user's
`[p_u, b_u]` is the ridge regression on its ratings given the movies, then every movie's given the users, then
the side-feature projections are refitted to the new rows. The penalties are bpmf's prior precisions (in units
of the noise precision, which the mode does not depend on). A sweep costs what one Gibbs sweep costs (the same
sparse Gram products and batched solves, training/sparse_gram.py), and about a dozen sweeps reach the
validation optimum; at ml-25m size an Adam epoch of the Keras graph costs over ten times a sweep, and the Keras
fit needs many more of them (bench/results/scale.md).

Early stopping works as it does for epochs: validation RMSE after each sweep, stop after `patience` sweeps
without improvement, keep the best sweep's rows; a fit without validation runs a given number of sweeps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from training.bpmf import Conditionals
from training.progress import progress

F64 = NDArray[np.float64]

# Spread of the movie factors' random start. From 0.1 the first sweeps stalled on a plateau while the factors grew
# (where early stopping could end the fit); from 0.3 to 1.0 the curves were alike and fell from the first sweep.
INIT_SCALE = 0.3


@dataclass(frozen=True)
class AlsFit:
    """Factors and biases of the best sweep, and the validation curve that chose it."""

    user_factors: F64
    movie_factors: F64
    user_bias: F64
    movie_bias: F64
    global_mean: float
    sweeps: int  # the chosen sweep count (all of them without validation)
    seconds: float
    validation_rmse: list[float]  # after each sweep run (empty without validation)


def alternating_least_squares(
    user_idx: NDArray[Any],
    movie_idx: NDArray[Any],
    ratings: NDArray[Any],
    n_users: int,
    n_movies: int,
    *,
    n_factors: int,
    max_sweeps: int,
    prior_precision: float,
    bias_prior_precision: float,
    seed: int,
    side_tables: tuple[NDArray[np.float32], NDArray[np.float32]] | None = None,
    side_prior_precision: float = 1.0,
    validation: tuple[NDArray[Any], NDArray[Any], NDArray[Any]] | None = None,
    patience: int = 2,
    rating_scale: tuple[float, float] = (0.5, 5.0),
    verbose: int = 0,
) -> AlsFit:
    """Up to `max_sweeps` sweeps; with `validation`, the best of them by RMSE (stopping after `patience` worse)."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    model = Conditionals.of(
        user_idx,
        movie_idx,
        ratings,
        n_users,
        n_movies,
        n_factors=n_factors,
        prior_precision=prior_precision,
        bias_prior_precision=bias_prior_precision,
        noise_precision=1.0,  # the mode does not depend on it
        side_tables=side_tables,
        side_prior_precision=side_prior_precision,
    )
    mu = model.global_mean
    # Only the movie side needs a start: the first half-sweep solves every user from it.
    q = rng.normal(0.0, INIT_SCALE, (n_movies, n_factors))
    b_movie = np.zeros(n_movies)
    user_mean: F64 | None = None
    movie_mean: F64 | None = None
    if validation is not None:
        v_u, v_m = (np.asarray(a, dtype=np.int64) for a in validation[:2])
        v_r = np.asarray(validation[2], dtype=np.float64)
    curve: list[float] = []
    best: tuple[F64, F64, F64, F64] | None = None
    p, b_user = np.zeros((n_users, n_factors)), np.zeros(n_users)
    bar = progress(f"ALS ({len(ratings):,} ratings)", max_sweeps, unit="sweeps", enabled=verbose > 0)
    for _ in range(max_sweeps):
        rows, user_mean = model.users(None, q, b_movie, user_mean)
        p, b_user = rows[:, :-1], rows[:, -1]
        rows, movie_mean = model.movies(None, p, b_user, movie_mean)
        q, b_movie = rows[:, :-1], rows[:, -1]
        bar.update(1)
        if validation is None:
            continue
        predicted = mu + b_user[v_u] + b_movie[v_m] + np.einsum("ij,ij->i", p[v_u], q[v_m])
        curve.append(float(np.sqrt(np.mean((np.clip(predicted, *rating_scale) - v_r) ** 2))))
        if curve[-1] <= min(curve):
            best = (p, q, b_user, b_movie)
        elif len(curve) - 1 - int(np.argmin(curve)) >= patience:
            break
    bar.close()
    if best is not None:
        p, q, b_user, b_movie = best
    return AlsFit(
        user_factors=p,
        movie_factors=q,
        user_bias=b_user,
        movie_bias=b_movie,
        global_mean=mu,
        sweeps=int(np.argmin(curve)) + 1 if curve else max_sweeps,
        seconds=time.perf_counter() - started,
        validation_rmse=curve,
    )
