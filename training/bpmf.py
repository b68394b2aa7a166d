"""Bayesian biased matrix factorisation by Gibbs sampling, delivered as a Keras `bias`-form model.

SGD finds one point estimate of the factors; with ~10 ratings per movie that point is uncertain, and averaging
predictions over the posterior is worth ~0.01 held-out RMSE on ml-latest-small (bench/results/accuracy.md).
The model is `mu + b_u + b_i + p_u . q_i` with Gaussian priors on every factor and bias and Gaussian rating
noise (Salakhutdinov & Mnih 2008, with fixed prior and noise precisions chosen on a validation slice). Given
the movie side, each user's `[p_u, b_u]` has a Gaussian posterior in closed form, and vice versa, so a sweep
samples all users, then all movies: each side's Gram matrices come from sparse x dense products
(training/sparse_gram.py), its draws from batched Cholesky factors and solves. With side features
(training/side_features.py) each row's prior mean is not zero but `F W` for its feature row F, and the
projection W is sampled too, by a Bayesian linear regression on the current rows (Macau: BPMF with side
information, Simm et al. 2017).

The posterior mean prediction is an average over S samples, `mean_s(b_u^s + b_i^s + p_u^s . q_i^s)`, which
is itself a dot product of the concatenated samples; its best rank-r approximation (from the samples' Gram
matrices and an SVD of the small core) gives ordinary user and movie factors. So the artifact is a plain
Keras `bias`-form model (linear head) that `keras.saving.load_model` reads and the service scores like any
bias model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from training.progress import progress
from training.sparse_gram import RatingPattern, expand_upper, in_parallel

F64 = NDArray[np.float64]
F32 = NDArray[np.float32]


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


# Entities per batched solve: bounds each worker's (rows, width, width) temporaries (8 MB each at width 16).
_SOLVE_BLOCK = 4_096


def posterior_draw(
    rng: np.random.Generator | None,
    upper: F64,
    rhs: F64,
    prior: F64,
    noise_precision: float,
    prior_mean: F64 | None,
    workers: int,
) -> F64:
    """One draw of `[factors, bias]` for every row entity from its Gram matrix (upper triangle) and rhs.

    Posterior precision `P = noise * (X^T X + D)` with `D = diag(prior)`, mean `(X^T X + D)^-1 (X^T t + D m)`
    for the prior mean m (zero, or each row's side-feature prediction). With `P = L L^T` and z standard
    normal, `P^-1 (noise * rhs + L z)` is the mean plus `L^-T z`, whose covariance is `P^-1`: one Cholesky
    and one solve per entity, in float64, in row blocks on `workers` threads. Without `rng` it returns the
    mean itself (the conditional mode that alternating least squares steps to, training/als.py).
    """
    n_rows, width = rhs.shape
    if prior_mean is not None:
        rhs = rhs + prior * prior_mean
    standard = None if rng is None else rng.normal(size=(n_rows, width, 1))
    draw = np.empty((n_rows, width))

    def block(start: int, end: int) -> None:
        precision = expand_upper(upper[start:end], width)
        precision += np.diag(prior)
        precision *= noise_precision
        shifted = noise_precision * rhs[start:end, :, None]
        if standard is not None:
            shifted += np.linalg.cholesky(precision) @ standard[start:end]
        draw[start:end] = np.linalg.solve(precision, shifted)[..., 0]

    in_parallel(block, range(0, n_rows + _SOLVE_BLOCK, _SOLVE_BLOCK), workers)
    return draw


@dataclass(frozen=True)
class SideTable:
    """One side's feature table in float64 with its Gram matrix, computed once per run, not per sweep."""

    features: F64
    gram: F64

    @classmethod
    def of(cls, table: NDArray[np.float32]) -> SideTable:
        features = np.asarray(table, dtype=np.float64)
        return cls(features, features.T @ features)


def side_prior_mean(
    rng: np.random.Generator | None,
    side: SideTable,
    draw: F64,
    prior: F64,
    noise_precision: float,
    projection_precision: float,
) -> F64:
    """Draw the projection W of `draw ~ N(F W, (noise * diag(prior))^-1)` and return the new prior mean F W.

    Bayesian linear regression per column (the columns are independent given the rows), with an isotropic
    Gaussian prior of precision `projection_precision` on W (Macau: BPMF with side information). Without
    `rng`, W is the posterior mean (the ridge regression that alternating least squares takes).
    """
    f, width = side.features, side.features.shape[1]
    projection = np.empty((width, draw.shape[1]))
    for column in range(draw.shape[1]):
        weight = noise_precision * prior[column]
        precision = weight * side.gram + projection_precision * np.eye(width)
        chol = np.linalg.cholesky(precision)
        mean = np.linalg.solve(precision, weight * (f.T @ draw[:, column]))
        projection[:, column] = mean
        if rng is not None:
            projection[:, column] += np.linalg.solve(chol.T, rng.normal(size=width))
    mean_rows: F64 = f @ projection
    return mean_rows


@dataclass(frozen=True)
class Conditionals:
    """One fit's ratings (less their mean) by user and by movie, with the priors: each side's Gaussian
    conditional given the other, which the sampler draws from and ALS (training/als.py) steps to the mode of."""

    global_mean: float
    by_user: RatingPattern
    by_movie: RatingPattern
    prior: F64  # precision of each row's `[factors, bias]`, in units of the noise precision
    noise_precision: float
    side_prior_precision: float
    user_table: SideTable | None
    movie_table: SideTable | None

    @classmethod
    def of(
        cls,
        user_idx: NDArray[Any],
        movie_idx: NDArray[Any],
        ratings: NDArray[Any],
        n_users: int,
        n_movies: int,
        *,
        n_factors: int,
        prior_precision: float,
        bias_prior_precision: float,
        noise_precision: float,
        side_tables: tuple[NDArray[np.float32], NDArray[np.float32]] | None,
        side_prior_precision: float,
    ) -> Conditionals:
        mu = float(np.mean(ratings, dtype=np.float64)) if len(ratings) else 0.0
        by_user, by_movie = RatingPattern.pair(
            user_idx, movie_idx, np.subtract(ratings, mu, dtype=np.float64), n_users, n_movies
        )
        user_table, movie_table = (
            (SideTable.of(side_tables[0]), SideTable.of(side_tables[1]))
            if side_tables is not None
            else (None, None)
        )
        prior = np.r_[np.full(n_factors, prior_precision), bias_prior_precision]
        return cls(
            mu, by_user, by_movie, prior, noise_precision, side_prior_precision, user_table, movie_table
        )

    def users(
        self, rng: np.random.Generator | None, q: F64, b_movie: F64, prior_mean: F64 | None
    ) -> tuple[F64, F64 | None]:
        """Every user's `[p_u, b_u]` given the movies (a draw, or the mode without `rng`), and its next prior mean."""
        return self._side(rng, self.by_user, self.user_table, q, b_movie, prior_mean)

    def movies(
        self, rng: np.random.Generator | None, p: F64, b_user: F64, prior_mean: F64 | None
    ) -> tuple[F64, F64 | None]:
        """Every movie's `[q_i, b_i]` given the users, and its next prior mean."""
        return self._side(rng, self.by_movie, self.movie_table, p, b_user, prior_mean)

    def _side(
        self,
        rng: np.random.Generator | None,
        pattern: RatingPattern,
        table: SideTable | None,
        other: F64,
        other_bias: F64,
        prior_mean: F64 | None,
    ) -> tuple[F64, F64 | None]:
        """One side's rows given the other's, and the prior mean its side features now predict (None without)."""
        features = np.hstack([other, np.ones((len(other), 1))])
        upper, rhs = pattern.gram_and_rhs(features, other_bias)
        rows = posterior_draw(rng, upper, rhs, self.prior, self.noise_precision, prior_mean, pattern.workers)
        if table is None:
            return rows, None
        return rows, side_prior_mean(
            rng, table, rows, self.prior, self.noise_precision, self.side_prior_precision
        )


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
    model = Conditionals.of(
        user_idx,
        movie_idx,
        ratings,
        n_users,
        n_movies,
        n_factors=n_factors,
        prior_precision=prior_precision,
        bias_prior_precision=bias_prior_precision,
        noise_precision=noise_precision,
        side_tables=side_tables,
        side_prior_precision=side_prior_precision,
    )
    mu = model.global_mean
    p = rng.normal(0.0, 0.1, (n_users, n_factors))
    q = rng.normal(0.0, 0.1, (n_movies, n_factors))
    b_user, b_movie = np.zeros(n_users), np.zeros(n_movies)
    # Kept samples in float32 (their rounding is far below the posterior spread): at ml-25m size 120 of them
    # are 1.6 GB instead of 3.2 GB, and the reduction below reads them in float64 row blocks.
    kept_p: list[F32] = []
    kept_q: list[F32] = []
    sum_bu, sum_bi = np.zeros(n_users), np.zeros(n_movies)
    val_sum: F64 | None = None
    val_rmse: list[float] = []
    if validation is not None:
        v_u, v_m = (np.asarray(a, dtype=np.int64) for a in validation[:2])
        v_r = np.asarray(validation[2], dtype=np.float64)
    user_mean: F64 | None = None
    movie_mean: F64 | None = None
    bar = progress(f"Gibbs sampling ({len(ratings):,} ratings)", sweeps, unit="sweeps", enabled=verbose > 0)
    for sweep in range(sweeps):
        draw, user_mean = model.users(rng, q, b_movie, user_mean)
        p, b_user = draw[:, :-1], draw[:, -1]
        draw, movie_mean = model.movies(rng, p, b_user, movie_mean)
        q, b_movie = draw[:, :-1], draw[:, -1]
        bar.update(1)
        if sweep < burn_in:
            continue
        kept_p.append(p.astype(np.float32))
        kept_q.append(q.astype(np.float32))
        sum_bu += b_user
        sum_bi += b_movie
        if validation is not None:
            # From the kept (float32) samples, so that the exported reduction reproduces these figures.
            factors = np.einsum("ij,ij->i", kept_p[-1][v_u].astype(np.float64), kept_q[-1][v_m])
            pred = mu + b_user[v_u] + b_movie[v_m] + factors
            val_sum = pred if val_sum is None else val_sum + pred
            mean_pred = np.clip(val_sum / len(kept_p), *rating_scale)
            val_rmse.append(float(np.sqrt(np.mean((mean_pred - v_r) ** 2))))
    bar.close()
    n_kept = len(kept_p)
    user_factors, movie_factors = _reduce_mean_product(kept_p, kept_q, rank)
    return PosteriorMean(
        user_factors=user_factors,
        movie_factors=movie_factors,
        user_bias=sum_bu / n_kept,
        movie_bias=sum_bi / n_kept,
        global_mean=mu,
        sweeps=sweeps,
        seconds=time.perf_counter() - started,
        validation_rmse=val_rmse,
    )


# Rows per float64 block when reading the kept samples: 4,096 x 1,800 columns (120 samples of 15) is 59 MB.
_ROW_BLOCK = 4_096


def _stacked_rows(samples: list[F32], start: int) -> F64:
    """Rows `start:start + _ROW_BLOCK` of `[s^1 .. s^S]` (the samples side by side), in float64."""
    block: F64 = np.concatenate([s[start : start + _ROW_BLOCK] for s in samples], axis=1, dtype=np.float64)
    return block


def _column_space(samples: list[F32]) -> tuple[F64, F64]:
    """(V, sigma): right singular vectors and values of `[s^1 .. s^S]`, from its Gram matrix built blockwise.

    Directions with sigma below 1e-6 of the largest carry nothing the float32 samples can resolve and are
    dropped (they are the null space when there are fewer rows than stacked columns).
    """
    width = sum(s.shape[1] for s in samples)
    gram = np.zeros((width, width))
    for start in range(0, len(samples[0]), _ROW_BLOCK):
        block = _stacked_rows(samples, start)
        gram += block.T @ block
    eigenvalues, vectors = np.linalg.eigh(gram)
    keep = eigenvalues > max(eigenvalues[-1], 0.0) * 1e-12
    if not keep.any():  # all-zero samples: one zero direction keeps the shapes valid
        keep[-1] = True
        eigenvalues[-1] = 1.0
    return vectors[:, keep], np.sqrt(eigenvalues[keep])


def _times(samples: list[F32], matrix: F64) -> F64:
    """`[s^1 .. s^S] @ matrix` in row blocks."""
    rows = len(samples[0])
    out = np.empty((rows, matrix.shape[1]))
    for start in range(0, rows, _ROW_BLOCK):
        out[start : start + _ROW_BLOCK] = _stacked_rows(samples, start) @ matrix
    return out


def _reduce_mean_product(kept_p: list[F32], kept_q: list[F32], rank: int) -> tuple[F64, F64]:
    """User and movie factors whose product is the best rank-`rank` approximation of `mean_s p^s q^s^T`.

    With P = [p^1 .. p^S] = U_P S_P V_P^T (and Q alike), the mean is `U_P K U_Q^T` for the small core
    `K = S_P V_P^T V_Q S_Q / S`; the SVD `K = L s R^T` gives the factors `P V_P S_P^-1 L_r s_r^1/2` and
    `Q V_Q S_Q^-1 R_r s_r^1/2` (exact in Frobenius norm) without forming the n_users x n_movies matrix, and
    without a QR of the stacked samples: their Gram matrices and two products are read in row blocks.
    """
    user_vectors, user_sigma = _column_space(kept_p)
    movie_vectors, movie_sigma = _column_space(kept_q)
    core = user_sigma[:, None] * (user_vectors.T @ movie_vectors) * movie_sigma[None, :] / len(kept_p)
    left, singular, right_t = np.linalg.svd(core, full_matrices=False)
    r = min(rank, singular.size)
    scale = np.sqrt(singular[:r])
    user_factors = _times(kept_p, (user_vectors / user_sigma) @ (left[:, :r] * scale))
    movie_factors = _times(kept_q, (movie_vectors / movie_sigma) @ (right_t[:r].T * scale))
    return user_factors, movie_factors
