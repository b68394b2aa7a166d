"""Scoring movies the served model was not trained on: a prior from what a movie is, then its ratings.

A movie added after training (`PUT /movies/{id}`) has no embedding row. Until a retrain learns one, its row and
bias are estimated in two steps, both in the model's own raw-score space:

1. **Prior from genres and release year.** A ridge regression from movie features (one-hot genres over the
   model's genres, one-hot release-year bins, an intercept; `movierec.movie_features`, the definition the
   trainer's side features use) to every trained movie's embedding row and bias, each movie weighted by its
   support, min(ratings, `SUPPORT_CAP`), so that noisy rare movies count less. The trainer folds its own
   feature map into the tables before export, so the artifact holds no feature->embedding map: this refits
   one from the tables, which is what the trained rows look like on average for movies of those genres and
   years.
2. **Its ratings, folded in on the movie side.** The user fold-in with the roles swapped: a ridge solve for the
   movie's row and bias from the ratings it received from users the model has vectors for (targets through
   the inverted head, minus each user's bias), shrunk toward the prior instead of toward zero, with the
   fold-in's L2 and its solver (`movierec.scoring.factor.ridge_solve`).

What each scorer family gets:
- `factor` (dot, bias, svdpp, bpmf): both steps. Without learned biases (dot) only the row is solved; the bias
  used for unknown users is the prior of the damped-mean baseline offsets.
- `mlp` (nn): the prior only (step 1, fitted to the movie half of the hidden layer, which is linear in the
  movie row): the network is not linear in the movie row, so ratings are not folded in until a retrain.
- any other family: the model's fallback for an unknown movie.

Predicted ratings go through the scorer's head, so they always lie inside the rating scale. No I/O here: the
service reads the movie and its ratings (app/new_movies.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from movierec.movie_features import genre_one_hot, title_year, year_one_hot
from movierec.per_model import per_model
from movierec.recommender import Recommender
from movierec.scoring import FactorScorer, MlpScorer, Scorer
from movierec.scoring.factor import ridge_solve

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

# A trained movie's weight in the prior's regression: its rating count, capped (beyond this, a row is as
# well determined as the model can make it).
SUPPORT_CAP = 50
# L2 of the prior's regression coefficients (the intercept is not penalised), in units of weighted movies.
PRIOR_L2 = 1.0


@dataclass(frozen=True, eq=False)
class Raters:
    """Ratings a new movie received from users the model has vectors for: one row per rating."""

    vectors: F32  # (n, k) user vectors (trained, or re-solved from stored ratings)
    biases: F32  # (n,) user biases (zeros for models without biases)
    ratings: F32  # (n,)

    @classmethod
    def none(cls, width: int) -> Raters:
        return cls(np.zeros((0, width), np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32))

    def __len__(self) -> int:
        return len(self.ratings)


@dataclass(frozen=True, eq=False)
class MovieEstimate:
    """A new movie's estimated side: `row` (a factor row, or the movie half of the mlp's hidden layer), `bias`
    (a learned bias, or a baseline offset in rating units for families without learned biases), and how many
    ratings were folded in (0: the prior alone)."""

    row: F64
    bias: float
    n_folded: int


class NewMovieScorer:
    """Predictions for movies added after training, for one served model (see the module docstring).

    Args:
        scorer: the served model's scorer.
        genres: each trained movie's genres (embedding-row order).
        years: each trained movie's release year (None where unknown).
        n_ratings: each trained movie's rating count (its support).
        genre_names: the genre vocabulary (the model's genres); others count for nothing.
        l2: L2 of the movie-side solve toward the prior (the service passes the user fold-in's).
    """

    def __init__(
        self,
        scorer: Scorer,
        genres: Sequence[Sequence[str]],
        years: Sequence[int | None],
        n_ratings: NDArray[np.integer],
        genre_names: Sequence[str],
        *,
        l2: float,
        prior_l2: float = PRIOR_L2,
        support_cap: int = SUPPORT_CAP,
    ) -> None:
        self.scorer = scorer
        self.genre_names = list(genre_names)
        self.l2 = l2
        self.family = (
            "factor" if isinstance(scorer, FactorScorer) else "mlp" if isinstance(scorer, MlpScorer) else None
        )
        self.folds_in_ratings = self.family == "factor"
        rows = self._movie_rows()
        bias = scorer.movie_bias if scorer.has_bias else scorer.baseline_movie_bias
        targets = np.hstack([rows.astype(np.float64), np.asarray(bias, np.float64)[:, None]])
        weights = np.minimum(np.asarray(n_ratings, np.float64), support_cap)
        self.coefficients = fit_prior(self.features(genres, years), targets, weights, prior_l2)

    @classmethod
    def from_recommender(cls, recommender: Recommender) -> NewMovieScorer:
        """The scorer for a loaded model: its catalogue's genres, years ("(1995)" in titles) and counts."""
        return cls(
            recommender.scorer,
            recommender.genres,
            [title_year(title) for title in recommender.titles],
            recommender.n_ratings,
            recommender.genre_names,
            l2=recommender.fold_in_l2,
        )

    def _movie_rows(self) -> F32:
        if self.family == "mlp":
            assert isinstance(self.scorer, MlpScorer)
            return self.scorer.movie_hidden
        return self.scorer.movie_factors

    def features(self, genres: Sequence[Sequence[str]], years: Sequence[int | None]) -> F64:
        """Feature rows: one-hot genres over the model's genres, one-hot year bins, an intercept."""
        year_values = np.array([np.nan if y is None else float(y) for y in years], dtype=np.float64)
        return np.hstack(
            [
                genre_one_hot(genres, self.genre_names),
                year_one_hot(year_values),
                np.ones((len(years), 1)),
            ]
        )

    # ---- estimates ------------------------------------------------------------------------------------

    def prior(self, genres: Sequence[str], year: int | None) -> MovieEstimate:
        """What the trained movies of these genres and release year look like: the estimate with no ratings."""
        predicted = self.features([genres], [year])[0] @ self.coefficients
        return MovieEstimate(predicted[:-1], float(predicted[-1]), 0)

    def estimate(
        self, genres: Sequence[str], year: int | None, raters: Raters | None = None
    ) -> MovieEstimate:
        """The prior, with `raters`' ratings folded in on the movie side where the family can (`factor`)."""
        prior = self.prior(genres, year)
        if raters is None or not len(raters) or not self.folds_in_ratings:
            return prior
        return self.fold_in(prior, raters)

    def fold_in(self, prior: MovieEstimate, raters: Raters) -> MovieEstimate:
        """MAP of the movie's row (and bias, with learned biases) from its ratings, shrunk toward `prior`.

        The user fold-in's ridge solve (`FactorScorer.fold_in`) with users as rows: raw targets are the inverted
        head minus each user's bias, the unknowns are the movie's row and bias. Substituting w = prior + d
        turns "shrink toward the prior" into the same zero-centred ridge problem for d.
        """
        head = self.scorer.head
        targets = head.invert(raters.ratings).astype(np.float64) - raters.biases.astype(np.float64)
        x = raters.vectors.astype(np.float64)
        start = prior.row
        if self.scorer.has_bias:
            x = np.hstack([x, np.ones((x.shape[0], 1))])
            start = np.append(prior.row, prior.bias)
        w = start + ridge_solve(x, targets - x @ start, self.l2)
        if self.scorer.has_bias:
            return MovieEstimate(w[:-1], float(w[-1]), len(raters))
        return MovieEstimate(w, prior.bias, len(raters))

    # ---- ratings ---------------------------------------------------------------------------------------

    def ratings(self, estimate: MovieEstimate, vectors: F32, biases: F32, known: NDArray[np.bool_]) -> F32:
        """Predicted ratings of the movie for users given by vector and bias; rows where `known` is False
        stand for users with no vector (unknown to the model) and get the fallback with the movie's bias."""
        n = len(known)
        out = np.empty(n, dtype=np.float32)
        head = self.scorer.head
        if known.any():
            vecs = np.asarray(vectors, dtype=np.float64)[known]
            out[known] = head.apply(self._raw(estimate, vecs, np.asarray(biases, np.float64)[known]))
        if not known.all():
            missing = int((~known).sum())
            if self.scorer.has_bias:
                out[~known] = head.apply(np.full(missing, estimate.bias, np.float32))
            else:
                # The unknown-user fallback of a model without learned biases: the mean plus the movie's offset.
                value = min(max(head.offset + estimate.bias, head.min_rating), head.max_rating)
                out[~known] = np.float32(value)
        return out

    def rating(self, estimate: MovieEstimate, vector: F32 | None, bias: float) -> float:
        """`ratings` for one user (`vector` None: a user the model has no vector for)."""
        width = self.scorer.user_factors.shape[1]
        vecs = np.zeros((1, width), np.float32) if vector is None else np.asarray(vector, np.float32)[None, :]
        known = np.array([vector is not None])
        return float(self.ratings(estimate, vecs, np.array([bias], np.float32), known)[0])

    def _raw(self, estimate: MovieEstimate, vecs: F64, biases: F64) -> F64:
        scorer = self.scorer
        if self.family == "factor":
            movie_bias = estimate.bias if scorer.has_bias else 0.0
            raw: F64 = vecs @ estimate.row + biases + movie_bias
            return raw
        if self.family == "mlp":
            assert isinstance(scorer, MlpScorer)
            hidden = np.maximum(vecs @ scorer.hidden_user_kernel + estimate.row, 0.0)
            return np.asarray(hidden @ scorer.output_kernel + scorer.output_bias, dtype=np.float64)
        # A family this module does not know: the raw score of the model's unknown-movie fallback.
        return biases


@per_model
def new_movie_scorer(recommender: Recommender) -> NewMovieScorer:
    """The served model's new-movie scorer: fitted once per model (the service does it at load) and dropped with
    the model."""
    return NewMovieScorer.from_recommender(recommender)


def fit_prior(features: F64, targets: F64, weights: F64, l2: float) -> F64:
    """Weighted ridge regression `features @ B ~ targets`, the last feature an unpenalised intercept.

    Returns B, (n_features, n_targets). Rows of weight 0 do not count; with no weight at all, every row counts
    equally.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if not np.any(weights > 0):
        weights = np.ones_like(weights)
    weighted = features * weights[:, None]
    penalty = np.full(features.shape[1], l2)
    penalty[-1] = 0.0
    gram = features.T @ weighted + np.diag(penalty)
    return np.asarray(np.linalg.solve(gram, weighted.T @ targets), dtype=np.float64)
