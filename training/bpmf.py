"""Bayesian biased matrix factorisation by Gibbs sampling, delivered as a Keras `bias`-form model.

SGD finds one point estimate of the factors; with ~10 ratings per movie that point is uncertain, and averaging
predictions over the posterior is worth ~0.01 held-out RMSE on ml-latest-small (bench/results/accuracy.md).
The model is `mu + b_u + b_i + p_u . q_i` with Gaussian priors on every factor and bias and Gaussian rating
noise (Salakhutdinov & Mnih 2008, with fixed prior and noise precisions chosen on a validation slice). Given
the movie side, each user's `[p_u, b_u]` has a Gaussian posterior in closed form, and vice versa, so a sweep
samples all users, then all movies, each in one batched solve. With side features (training/side_features.py)
each row's prior mean is not zero but `F W` for its feature row F, and the projection W is sampled too, by a
Bayesian linear regression on the current rows (Macau: BPMF with side information, Simm et al. 2017).

The posterior mean prediction is an average over S samples, `mean_s(b_u^s + b_i^s + p_u^s . q_i^s)`, which
is itself a dot product of the concatenated samples; its best rank-r approximation (QR + SVD of the small
core) gives ordinary user and movie factors. So the artifact is a plain Keras `bias`-form model (linear head)
that `keras.saving.load_model` reads and the service scores like any bias model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from training.progress import progress

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class PosteriorMean:
    """Posterior-mean factors (rank-reduced) and biases of a Gibbs run."""

    user_factors: F64
    movie_factors: F64
    user_bias: F64
    movie_bias: F64
    global_mean: float
    sweeps: int
    seconds: float
    validation_rmse: list[float]  # of the running posterior mean after each retained sweep (empty without)

    def predict(self, user_idx: NDArray[Any], movie_idx: NDArray[Any]) -> F64:
        """Unclipped posterior-mean predictions (through the rank-reduced factors) for index pairs."""
        factors = np.einsum("ij,ij->i", self.user_factors[user_idx], self.movie_factors[movie_idx])
        predicted: F64 = self.global_mean + self.user_bias[user_idx] + self.movie_bias[movie_idx] + factors
        return predicted


def _posterior_sample(
    rng: np.random.Generator,
    rows: NDArray[np.int64],
    features: F64,
    targets: F64,
    n_rows: int,
    prior: F64,
    noise_precision: float,
    prior_mean: F64 | None,
) -> F64:
    """One draw of `[factors, bias]` for every row entity, given the other side's `[factors, 1]` per rating.

    Posterior precision `noise * (X^T X + D)` with `D = diag(prior)`, mean `(X^T X + D)^-1 (X^T t + D m)` for
    the prior mean m (zero, or each row's side-feature prediction): the Gram matrices of all entities come from
    one bincount per matrix entry (no Python loop over entities).
    """
    width = features.shape[1]
    gram = np.empty((n_rows, width, width))
    for a in range(width):
        for b in range(a, width):
            gram[:, a, b] = gram[:, b, a] = np.bincount(
                rows, weights=features[:, a] * features[:, b], minlength=n_rows
            )
    rhs: F64 = np.stack(
        [np.bincount(rows, weights=features[:, a] * targets, minlength=n_rows) for a in range(width)], axis=1
    ).astype(np.float64)
    if prior_mean is not None:
        rhs = rhs + prior * prior_mean
    precision = noise_precision * (gram + np.diag(prior))
    mean = np.linalg.solve(precision, noise_precision * rhs[..., None])[..., 0]
    # x = mean + L^-T z with precision = L L^T has covariance precision^-1.
    chol = np.linalg.cholesky(precision)
    noise = np.linalg.solve(np.swapaxes(chol, 1, 2), rng.normal(size=(n_rows, width, 1)))[..., 0]
    draw: F64 = mean + noise
    return draw


@dataclass(frozen=True)
class _SideTable:
    """One side's feature table in float64 with its Gram matrix, computed once per run, not per sweep."""

    features: F64
    gram: F64

    @classmethod
    def of(cls, table: NDArray[np.float32]) -> _SideTable:
        features = np.asarray(table, dtype=np.float64)
        return cls(features, features.T @ features)


def _side_prior_mean(
    rng: np.random.Generator,
    side: _SideTable,
    draw: F64,
    prior: F64,
    noise_precision: float,
    projection_precision: float,
) -> F64:
    """Draw the projection W of `draw ~ N(F W, (noise * diag(prior))^-1)` and return the new prior mean F W.

    Bayesian linear regression per column (the columns are independent given the rows), with an isotropic
    Gaussian prior of precision `projection_precision` on W (Macau: BPMF with side information).
    """
    f, width = side.features, side.features.shape[1]
    projection = np.empty((width, draw.shape[1]))
    for column in range(draw.shape[1]):
        weight = noise_precision * prior[column]
        precision = weight * side.gram + projection_precision * np.eye(width)
        chol = np.linalg.cholesky(precision)
        mean = np.linalg.solve(precision, weight * (f.T @ draw[:, column]))
        projection[:, column] = mean + np.linalg.solve(chol.T, rng.normal(size=width))
    mean_rows: F64 = f @ projection
    return mean_rows


def gibbs_posterior_mean(
    user_idx: NDArray[Any],
    movie_idx: NDArray[Any],
    ratings: NDArray[Any],
    n_users: int,
    n_movies: int,
    *,
    n_factors: int,
    sweeps: int,
    burn_in: int,
    prior_precision: float,
    bias_prior_precision: float,
    noise_precision: float,
    rank: int,
    seed: int,
    side_tables: tuple[NDArray[np.float32], NDArray[np.float32]] | None = None,
    side_prior_precision: float = 1.0,
    validation: tuple[NDArray[Any], NDArray[Any], NDArray[Any]] | None = None,
    rating_scale: tuple[float, float] = (0.5, 5.0),
    verbose: int = 0,
) -> PosteriorMean:
    """Sample `sweeps` times, average the samples after `burn_in`, and reduce the average to rank `rank`.

    With `side_tables` (user and movie feature tables), each row's prior mean is a linear function of its
    features, sampled along with everything else; without, it is zero. `verbose` > 0 reports the sweeps on
    standard error (a bar on a terminal, lines in a log: training/progress.py).
    """
    if sweeps <= burn_in:
        raise ValueError(f"sweeps ({sweeps}) must exceed burn_in ({burn_in}) to keep any sample")
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    users = np.asarray(user_idx, dtype=np.int64)
    movies = np.asarray(movie_idx, dtype=np.int64)
    y = np.asarray(ratings, dtype=np.float64)
    mu = float(y.mean())
    p = rng.normal(0.0, 0.1, (n_users, n_factors))
    q = rng.normal(0.0, 0.1, (n_movies, n_factors))
    b_user, b_movie = np.zeros(n_users), np.zeros(n_movies)
    prior = np.r_[np.full(n_factors, prior_precision), bias_prior_precision]
    ones = np.ones((len(y), 1))
    kept_p: list[F64] = []
    kept_q: list[F64] = []
    sum_bu, sum_bi = np.zeros(n_users), np.zeros(n_movies)
    val_sum: F64 | None = None
    val_rmse: list[float] = []
    if validation is not None:
        v_u, v_m = (np.asarray(a, dtype=np.int64) for a in validation[:2])
        v_r = np.asarray(validation[2], dtype=np.float64)
    user_table, movie_table = (
        (_SideTable.of(side_tables[0]), _SideTable.of(side_tables[1]))
        if side_tables is not None
        else (None, None)
    )

    def sample(
        rows: NDArray[np.int64],
        other: F64,
        offset: F64,
        n_rows: int,
        prior_mean: F64 | None,
        table: _SideTable | None,
    ) -> tuple[F64, F64 | None]:
        """One side's `[factors, bias]` draw, and its next prior mean (None without side features)."""
        draw = _posterior_sample(
            rng, rows, np.hstack([other, ones]), y - mu - offset, n_rows, prior, noise_precision, prior_mean
        )
        if table is None:
            return draw, None
        return draw, _side_prior_mean(rng, table, draw, prior, noise_precision, side_prior_precision)

    user_mean: F64 | None = None
    movie_mean: F64 | None = None
    bar = progress(f"Gibbs sampling ({len(y):,} ratings)", sweeps, unit="sweeps", enabled=verbose > 0)
    for sweep in range(sweeps):
        draw, user_mean = sample(users, q[movies], b_movie[movies], n_users, user_mean, user_table)
        p, b_user = draw[:, :-1], draw[:, -1]
        draw, movie_mean = sample(movies, p[users], b_user[users], n_movies, movie_mean, movie_table)
        q, b_movie = draw[:, :-1], draw[:, -1]
        bar.update(1)
        if sweep < burn_in:
            continue
        kept_p.append(p)
        kept_q.append(q)
        sum_bu += b_user
        sum_bi += b_movie
        if validation is not None:
            pred = mu + b_user[v_u] + b_movie[v_m] + np.einsum("ij,ij->i", p[v_u], q[v_m])
            val_sum = pred if val_sum is None else val_sum + pred
            mean_pred = np.clip(val_sum / len(kept_p), *rating_scale)
            val_rmse.append(float(np.sqrt(np.mean((mean_pred - v_r) ** 2))))
    bar.close()
    n_kept = len(kept_p)
    # mean_s p^s . q^s = [p^1 .. p^S]/sqrt(S) . [q^1 .. q^S]/sqrt(S): reduce that product to rank r exactly
    # (best approximation in Frobenius norm) without forming the n_users x n_movies matrix.
    user_basis, user_core = np.linalg.qr(np.hstack(kept_p) / np.sqrt(n_kept))
    movie_basis, movie_core = np.linalg.qr(np.hstack(kept_q) / np.sqrt(n_kept))
    left, singular, right_t = np.linalg.svd(user_core @ movie_core.T)
    r = min(rank, singular.size)
    scale = np.sqrt(singular[:r])
    return PosteriorMean(
        user_factors=user_basis @ (left[:, :r] * scale),
        movie_factors=movie_basis @ (right_t[:r].T * scale),
        user_bias=sum_bu / n_kept,
        movie_bias=sum_bi / n_kept,
        global_mean=mu,
        sweeps=sweeps,
        seconds=time.perf_counter() - started,
        validation_rmse=val_rmse,
    )
