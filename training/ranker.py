"""The top-N ranker: a low-rank EASE^R item-item model (Steck 2019), fitted next to the rating model in every run.

A rating model is trained for squared error on the ratings people gave, which is not what a top-N list needs: it
must put first the movies a user will watch and like, and an error-trained model floats up obscure movies with a
few high ratings. EASE learns to reconstruct who-watched-what from the rest of each user's history, so it ranks
well (held-out NDCG@10 0.29 on ml-latest-small, seed 42); the service multiplies its score by a soft gate on the
predicted rating (RankerConfig), 0.32 with bpmf's predictions.

EASE's closed form needs P = (XᵀX + λI)⁻¹ over all movies (n_movies² memory, n_movies³ time). With the thin SVD
X = U S Vᵀ, P = (1/λ) I + V diag(c) Vᵀ with c = 1/(s² + λ) − 1/λ, exactly when V holds every non-zero singular
direction; keeping the top `rank` directions approximates it at n_movies x rank cost. With d = diag(P), EASE's
B = I − P diag(1/d), and a user with rated set S scores an unrated movie j as
E_j = (Σ_{i∈S} V_i ⊙ (−c)) · V_j / d_j, a rated one with an added self weight 1 − 1/(λ d_j).

The artifact stores (float32) `ranker_factors` V, `ranker_scale` −c, `ranker_diag` d and `ranker_prior`, the
scores of the average history (column means of X): the user-independent list for users with no ratings.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.sparse.linalg import svds

from movierec.ranking import RANKER_ARRAYS, RANKER_KIND, blend
from movierec.scoring import Scorer
from training.config import RankerConfig
from training.fitted import Indexed, Validation
from training.metrics import ranking_at_k

__all__ = [
    "RANKER_ARRAYS",
    "RANKER_KIND",
    "EaseWeights",
    "RankerRun",
    "RankingReport",
    "Spectrum",
    "choose_l2",
    "fit_ease_ranker",
    "fit_run_ranker",
    "interactions",
    "rank_users",
    "top_singular",
]

RELEVANT_RATING = 4.0  # bench/accuracy.py's threshold: a held-out (or validation) rating this high is a hit
TOP_K = 10
# Up to this many users or movies on the smaller side the spectrum comes from that side's Gram matrix (512 MB in
# float64, an eigendecomposition of seconds); beyond, from ARPACK.
GRAM_MAX_SIDE = 8000
# Squared singular values below this share of the largest are null directions (rank deficiency, rounding).
_NULL_DIRECTION = 1e-12
# Score rows computed at once: bounds the evaluation's memory (160 MB of float64) on large catalogues.
_BATCH_CELLS = 20_000_000


def interactions(
    user_idx: NDArray[Any], movie_idx: NDArray[Any], n_users: int, n_movies: int
) -> sp.csr_matrix:
    """The binary user x movie matrix X (1 where rated, whatever the rating): what EASE reconstructs."""
    x = sp.csr_matrix(
        (np.ones(len(user_idx)), (np.asarray(user_idx), np.asarray(movie_idx))), shape=(n_users, n_movies)
    )
    x.sum_duplicates()
    x.data[:] = 1.0
    return x


@dataclass(frozen=True)
class Spectrum:
    """The top singular values `s` (descending) of X and its right singular vectors `factors` (V, movies x r)."""

    s: NDArray[np.float64]
    factors: NDArray[np.float64]


def top_singular(x: sp.csr_matrix, rank: int) -> Spectrum:
    """The top `rank` singular triplets of X (at most min(X.shape)), in float64.

    While one side is small enough (GRAM_MAX_SIDE), from the eigendecomposition of the Gram matrix of that side:
    exact (the whole spectrum for a full-rank fit) and ~20x faster than a dense SVD of X (0.1 s against 2 s on
    ml-latest-small). A user-side Gram gives V = Xᵀ U / s, so directions with s ≈ 0 are dropped (they carry no
    weight: c = −s² / (λ (s² + λ))). Larger data goes to `svds` with PROPACK (at most min(X.shape) - 1 triplets).
    """
    n_users, n_movies = x.shape
    if min(n_users, n_movies) <= GRAM_MAX_SIDE:
        users_side = n_users < n_movies
        gram = (x @ x.T if users_side else x.T @ x).toarray()
        values, vectors = np.linalg.eigh(gram)
        order = np.argsort(values)[::-1][: min(rank, len(values))]
        s2, vectors = np.clip(values[order], 0.0, None), vectors[:, order]
        if users_side:
            keep = s2 > _NULL_DIRECTION * max(float(s2.max(initial=0.0)), 1.0)
            s2, vectors = s2[keep], vectors[:, keep]
            vectors = np.asarray(x.T @ vectors) / np.sqrt(s2)
        return Spectrum(np.sqrt(s2), np.ascontiguousarray(vectors))
    # PROPACK, not the default ARPACK: for 256 triplets of a 20,000 x 62,000 matrix with 1.5M ratings it took
    # 22 s against more than 15 minutes, with the same singular values.
    _, s, vt = svds(
        x.astype(np.float64),
        k=min(rank, min(x.shape) - 1),
        solver="propack",
        rng=np.random.default_rng(0),
    )
    order = np.argsort(-s)
    return Spectrum(s[order], np.ascontiguousarray(vt[order].T))


@dataclass(frozen=True)
class EaseWeights:
    """Low-rank EASE at one L2 (float64): P ≈ (1/l2) I + V diag(−scale) Vᵀ and diag = diag(P)."""

    factors: NDArray[np.float64]
    scale: NDArray[np.float64]
    diag: NDArray[np.float64]
    l2: float

    @classmethod
    def from_spectrum(cls, spectrum: Spectrum, l2: float) -> EaseWeights:
        # −c = 1/λ − 1/(s² + λ) = s² / (λ (s² + λ)): positive, and written so for precision when s² ≪ λ.
        s2 = spectrum.s**2
        scale = s2 / (l2 * (s2 + l2))
        diag = 1.0 / l2 - (spectrum.factors**2) @ scale
        return cls(spectrum.factors, scale, diag, float(l2))

    def unrated_scores(self, history: sp.spmatrix | NDArray[Any]) -> NDArray[np.float64]:
        """EASE scores of every movie for each history row (a 0/1 or fractional row over movies), as if unrated."""
        user_side = np.asarray(history @ self.factors) * self.scale
        return np.asarray(user_side @ (self.factors / self.diag[:, None]).T)

    def scores(self, history: sp.spmatrix | NDArray[Any]) -> NDArray[np.float64]:
        """Dense EASE's `X @ B` for 0/1 history rows: rated movies get their self weight 1 − 1/(λ d) added."""
        rated = history.toarray() if isinstance(history, sp.spmatrix | sp.sparray) else np.asarray(history)
        return self.unrated_scores(history) + rated * (1.0 - 1.0 / (self.l2 * self.diag))

    def arrays(self, mean_history: NDArray[Any]) -> dict[str, NDArray[np.float32]]:
        """The artifact's float32 ranker arrays; `mean_history` (X's column means) gives the cold-start prior."""
        prior = self.unrated_scores(np.asarray(mean_history, dtype=np.float64)[None, :])[0]
        return {
            "ranker_factors": self.factors.astype(np.float32),
            "ranker_scale": self.scale.astype(np.float32),
            "ranker_diag": self.diag.astype(np.float32),
            "ranker_prior": prior.astype(np.float32),
        }


def fit_ease_ranker(
    user_idx: NDArray[Any], movie_idx: NDArray[Any], n_users: int, n_movies: int, rank: int, l2: float
) -> dict[str, NDArray[np.float32]]:
    """Fit low-rank EASE on the (user, movie) pairs rated and return the artifact's four ranker arrays."""
    x = interactions(user_idx, movie_idx, n_users, n_movies)
    weights = EaseWeights.from_spectrum(top_singular(x, rank), l2)
    return weights.arrays(np.asarray(x.mean(axis=0)).ravel())


@dataclass(frozen=True)
class RankingReport:
    """Means over the ranked users (those with a relevant candidate) and their top-k lists, best first."""

    ndcg: float
    recall: float
    n_users: int
    lists: NDArray[np.int64]


def rank_users(
    score_rows: Callable[[NDArray[np.int64]], NDArray[Any]],
    x_fit: sp.csr_matrix,
    target: Validation,
    k: int = TOP_K,
    max_users: int | None = None,
) -> RankingReport:
    """NDCG@k and recall@k of `score_rows(users) -> (users x movies)` against target ratings, bench's protocol.

    Candidates: movies rated by someone in `x_fit` that the user did not rate there. Relevant: target pairs
    rated >= RELEVANT_RATING that are candidates (index -1, an id unknown to the fit, is dropped). Users: those
    with at least one relevant candidate; beyond `max_users` of them, a fixed random sample of that many (the
    same for every caller, so candidates compare on the same users).
    """
    t_users, t_movies, t_ratings = (np.asarray(a) for a in target)
    known = (t_users >= 0) & (t_movies >= 0) & (t_ratings >= RELEVANT_RATING)
    t_users, t_movies = t_users[known].astype(np.int64), t_movies[known].astype(np.int64)
    seen = np.asarray(x_fit.sum(axis=0)).ravel() > 0
    n_movies = x_fit.shape[1]
    fit_rows = np.repeat(np.arange(x_fit.shape[0], dtype=np.int64), np.diff(x_fit.indptr))
    rated_in_fit = np.isin(t_users * n_movies + t_movies, fit_rows * n_movies + x_fit.indices)
    keep = seen[t_movies] & ~rated_in_fit
    relevant = sp.csr_matrix(
        (np.ones(int(keep.sum()), dtype=bool), (t_users[keep], t_movies[keep])), shape=x_fit.shape
    )
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    if max_users is not None and len(users) > max_users:
        users = np.sort(np.random.default_rng(0).choice(users, max_users, replace=False))
    batch = max(1, _BATCH_CELLS // max(n_movies, 1))
    ndcg, recall, lists = [], [], []
    for start in range(0, len(users), batch):
        chunk = users[start : start + batch]
        scores = np.array(score_rows(chunk), dtype=np.float64)
        scores[x_fit[chunk].toarray() > 0] = -np.inf
        scores[:, ~seen] = -np.inf
        n, r, top = ranking_at_k(scores, relevant[chunk].toarray(), k)
        ndcg.append(n)
        recall.append(r)
        lists.append(top)
    if not lists:
        return RankingReport(0.0, 0.0, 0, np.empty((0, k), np.int64))
    return RankingReport(
        float(np.mean(np.concatenate(ndcg))),
        float(np.mean(np.concatenate(recall))),
        len(users),
        np.concatenate(lists),
    )


def _history_scores(
    weights: EaseWeights, x: sp.csr_matrix
) -> Callable[[NDArray[np.int64]], NDArray[np.float64]]:
    """`users -> EASE scores of their histories in x`, bound to these weights (safe to build in a loop)."""
    return lambda users: weights.unrated_scores(x[users])


def choose_l2(
    user_idx: NDArray[Any],
    movie_idx: NDArray[Any],
    n_users: int,
    n_movies: int,
    validation: Validation,
    rank: int,
    grid: tuple[float, ...],
    max_users: int | None = None,
) -> tuple[float, dict[float, float]]:
    """The L2 of `grid` with the best EASE NDCG@10 on `validation`, fitted on the given pairs; and every score.

    One SVD serves the whole grid (only the diagonal scaling depends on L2), so the grid costs a few products.
    """
    x = interactions(user_idx, movie_idx, n_users, n_movies)
    spectrum = top_singular(x, rank)
    results: dict[float, float] = {}
    for l2 in grid:
        weights = EaseWeights.from_spectrum(spectrum, l2)
        results[float(l2)] = rank_users(_history_scores(weights, x), x, validation, max_users=max_users).ndcg
    best = max(results, key=lambda l2: (results[l2], -l2))
    return best, results


@dataclass
class RankerRun:
    """A run's ranker: the served arrays, the manifest's `ranker` entry and held-out figures for `metrics`."""

    arrays: dict[str, NDArray[np.float32]]
    info: dict[str, Any]
    metrics: dict[str, Any]
    seconds: float


def fit_run_ranker(
    config: RankerConfig,
    fit_part: Indexed,
    validation: Validation,
    train_all: Indexed,
    served: Indexed,
    heldout: pd.DataFrame,
    rating_scorer: Scorer,
) -> RankerRun:
    """L2 chosen on the validation slice, an evaluated ranker on the train split, the served one on `served`.

    Held-out figures describe the evaluated ranker blended with the evaluated rating model (`rating_scorer`)
    exactly as the service ranks (`movierec.ranking.blend`); the EASE-only NDCG is recorded beside them. Held-out rows take no part in any choice.
    """
    started = time.perf_counter()
    n_users, n_movies = len(train_all.users), len(train_all.movies)
    l2, validation_ndcg = choose_l2(
        fit_part.user_idx,
        fit_part.movie_idx,
        n_users,
        n_movies,
        validation,
        config.rank,
        config.l2_grid,
        config.max_ranked_users,
    )
    x_train = interactions(train_all.user_idx, train_all.movie_idx, n_users, n_movies)
    evaluated = EaseWeights.from_spectrum(top_singular(x_train, config.rank), l2)
    target = (
        train_all.users.index_of(heldout["user_id"].to_numpy()),
        train_all.movies.index_of(heldout["movie_id"].to_numpy()),
        heldout["rating"].to_numpy(np.float32),
    )
    ease_only = rank_users(
        _history_scores(evaluated, x_train), x_train, target, max_users=config.max_ranked_users
    )

    def blended(users: NDArray[np.int64]) -> NDArray[np.float32]:
        ease = evaluated.unrated_scores(x_train[users])
        # The service's catalogue scoring (one product for the block of users), not a pair per cell.
        raw = rating_scorer.raw_catalogue_block(
            rating_scorer.user_factors[users], rating_scorer.user_bias[users]
        )
        ratings = rating_scorer.head.apply(raw)
        return blend(ease, ratings, config.like_threshold, config.like_temperature)

    ranked = rank_users(blended, x_train, target, max_users=config.max_ranked_users)
    served_started = time.perf_counter()
    if served is train_all:
        weights, x_served = evaluated, x_train
    else:
        x_served = interactions(served.user_idx, served.movie_idx, len(served.users), len(served.movies))
        weights = EaseWeights.from_spectrum(top_singular(x_served, config.rank), l2)
    arrays = weights.arrays(np.asarray(x_served.mean(axis=0)).ravel())
    seconds = time.perf_counter() - started
    info = {
        "kind": RANKER_KIND,
        "l2": l2,
        "rank": int(weights.factors.shape[1]),
        "like_threshold": config.like_threshold,
        "like_temperature": config.like_temperature,
        "chosen_on": f"EASE NDCG@{TOP_K} on the validation slice of train (relevant: rating >= {RELEVANT_RATING:g})",
        "validation": {f"{key:g}": round(value, 5) for key, value in validation_ndcg.items()},
        "fitted_on": "train split (no refit)" if served is train_all else "all ratings (refit)",
        "n_ratings": int(x_served.nnz),
        "seconds": round(seconds, 3),
        "served_fit_seconds": round(time.perf_counter() - served_started, 3),
        "heldout_ease_ndcg@10": round(ease_only.ndcg, 5),
    }
    metrics = {
        f"ndcg@{TOP_K}": ranked.ndcg,
        f"recall@{TOP_K}": ranked.recall,
        "n_ranked_users": ranked.n_users,
    }
    return RankerRun(arrays, info, metrics, seconds)
