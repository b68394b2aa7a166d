"""What every scorer family offers, and the parts they share (array loading, predict, fallback, neighbours).

A family is one forward pass over exported arrays (`movierec.export.export_arrays`); several model kinds may
share one (every `b_u + b_i + p_u . q_i` model is a `factor`). Each family has a numpy implementation and a
device (keras.ops) one behind this interface, chosen at load time by `movierec.scoring.build_scorer`.
Raw scores are pre-head values; the rating head is monotonic, so rankings are computed on raw scores and the
head is applied only to what is returned.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from movierec.errors import ArtifactError, UnsupportedOperationError
from movierec.scoring.head import Head

F32 = NDArray[np.float32]
I64 = NDArray[np.int64]


class Scorer(ABC):
    """Scores (user, movie) index pairs and whole catalogues for one trained model.

    Args:
        arrays: exported arrays (see `movierec.export.export_arrays`); `user_bias`/`movie_bias` are optional
            in every family (zeros when absent, and then `has_bias` is False).
        head: rating head parameters.
        baseline_user_bias, baseline_movie_bias: damped-mean offsets (rating units) computed from the training
            data; the fallback for models without learned biases.
    """

    name: ClassVar[str]
    """The family's name, as recorded in the manifest (`scorer`) and keyed in `SCORER_FAMILIES`."""
    fold_in_is_iterative: ClassVar[bool] = False
    """True when `fold_in` runs an optimiser (milliseconds) rather than a closed-form solve (microseconds):
    the service then folds in off the event loop."""

    def __init__(
        self,
        arrays: dict[str, NDArray[Any]],
        head: Head,
        baseline_user_bias: NDArray[Any],
        baseline_movie_bias: NDArray[Any],
    ) -> None:
        self.head = head
        try:
            self.user_factors = np.ascontiguousarray(arrays["user_factors"], dtype=np.float32)
            self.movie_factors = np.ascontiguousarray(arrays["movie_factors"], dtype=np.float32)
            self.has_bias = "movie_bias" in arrays
            n_users, n_movies = self.user_factors.shape[0], self.movie_factors.shape[0]
            self.user_bias = np.asarray(arrays.get("user_bias", np.zeros(n_users)), dtype=np.float32)
            self.movie_bias = np.asarray(arrays.get("movie_bias", np.zeros(n_movies)), dtype=np.float32)
            self._prepare(arrays)
        except KeyError as exc:
            raise ArtifactError(
                f"scoring arrays lack {exc.args[0]!r}, which the {self.name!r} scorer needs"
            ) from exc
        if self.user_factors.shape[1] != self.movie_factors.shape[1]:
            raise ArtifactError("user and movie factor widths differ")
        self.baseline_user_bias = np.asarray(baseline_user_bias, dtype=np.float32)
        self.baseline_movie_bias = np.asarray(baseline_movie_bias, dtype=np.float32)
        norms = np.linalg.norm(self.movie_factors, axis=1, keepdims=True)
        self.movie_unit_factors = self.movie_factors / np.maximum(norms, 1e-12)

    @abstractmethod
    def _prepare(self, arrays: dict[str, NDArray[Any]]) -> None:
        """Read the family's own arrays and precompute what its hot path needs (a missing key raises KeyError)."""

    @classmethod
    def array_problems(cls, arrays: dict[str, NDArray[Any]], n_users: int, n_movies: int) -> list[str]:
        """What is wrong with `arrays` for this family given the id maps' sizes (empty when they fit).

        Artifact loading asks the family, so each family states its own array contract. These are the checks
        every family shares (factor rows, optional bias shapes); families add their own.
        """
        problems: list[str] = []
        for name, rows in (("user_factors", n_users), ("movie_factors", n_movies)):
            arr = arrays.get(name)
            if arr is None or arr.ndim != 2 or arr.shape[0] != rows:
                shape = None if arr is None else arr.shape
                problems.append(f"{name} has shape {shape}, expected {rows} rows to match the id map")
        for name, rows in (("user_bias", n_users), ("movie_bias", n_movies)):
            if name in arrays and arrays[name].shape != (rows,):
                problems.append(f"{name} has shape {arrays[name].shape}, expected ({rows},)")
        return problems

    @property
    def n_users(self) -> int:
        return int(self.user_factors.shape[0])

    @property
    def n_movies(self) -> int:
        return int(self.movie_factors.shape[0])

    # ---- raw scores -------------------------------------------------------------------------------------

    def raw_pairs(self, user_idx: I64, movie_idx: I64) -> F32:
        """Raw scores of known (user, movie) index pairs."""
        return self.raw_pairs_from_vectors(self.user_factors[user_idx], self.user_bias[user_idx], movie_idx)

    @abstractmethod
    def raw_pairs_from_vectors(self, user_vecs: F32, user_bias: F32, movie_idx: I64) -> F32:
        """Raw scores of user vectors (one per pair) against movies."""

    @abstractmethod
    def raw_catalogue(self, user_vec: F32, user_bias: float = 0.0) -> F32:
        """Raw scores of one user vector against every movie, in one vectorised step.

        Returns a fresh array the caller may write to (ranking adds its filters in place).
        """

    def vector_ratings(self, user_vec: F32, user_bias: float, movie_idx: I64) -> F32:
        """Ratings of one user vector and bias (re-solved or folded in) for known movies (embedding rows)."""
        return self.head.apply(self.raw_vector(user_vec, user_bias, movie_idx))

    def raw_vector(self, user_vec: F32, user_bias: float, movie_idx: I64) -> F32:
        """Raw scores of one user vector and bias against some movies (a list's candidates)."""
        n = len(movie_idx)
        vecs = np.broadcast_to(user_vec, (n, len(user_vec)))
        return self.raw_pairs_from_vectors(vecs, np.full(n, user_bias, np.float32), movie_idx)

    def raw_catalogue_block(self, user_vecs: F32, user_bias: F32) -> F32:
        """Raw scores of several user vectors (b, k) with their biases (b,) against every movie: (b, n_movies).

        Micro-batched lists are scored this way (one matrix product instead of b); a fresh array. The default
        scores row by row, for families whose catalogue scoring is not one product.
        """
        return np.stack(
            [self.raw_catalogue(vec, float(b)) for vec, b in zip(user_vecs, user_bias, strict=True)]
        )

    # ---- ratings ----------------------------------------------------------------------------------------

    def predict(self, user_idx: I64, movie_idx: I64) -> tuple[F32, NDArray[np.bool_]]:
        """Ratings for index pairs where -1 marks an unknown id; returns (ratings, fallback flags).

        Fallback (documented in the README): global mean plus whatever bias is known. With learned biases that
        is the head applied to the known learned biases; without, the training data's damped-mean offsets.
        """
        user_idx = np.asarray(user_idx, dtype=np.int64)
        movie_idx = np.asarray(movie_idx, dtype=np.int64)
        known = (user_idx >= 0) & (movie_idx >= 0)
        if known.all():
            # The common case, and all of a single-pair request: no masked copies in and out.
            return self.head.apply(self.raw_pairs(user_idx, movie_idx)), ~known
        out = np.empty(user_idx.shape, dtype=np.float32)
        if known.any():
            out[known] = self.head.apply(self.raw_pairs(user_idx[known], movie_idx[known]))
        fallback = ~known
        if fallback.any():
            out[fallback] = self.fallback(user_idx[fallback], movie_idx[fallback])
        return out, fallback

    def fallback(self, user_idx: I64, movie_idx: I64) -> F32:
        """Predictions for pairs with at least one unknown id (-1)."""
        u_known, m_known = user_idx >= 0, movie_idx >= 0
        safe_u, safe_m = np.where(u_known, user_idx, 0), np.where(m_known, movie_idx, 0)
        if self.has_bias:
            raw = np.where(u_known, self.user_bias[safe_u], 0.0) + np.where(
                m_known, self.movie_bias[safe_m], 0.0
            )
            return self.head.apply(raw)
        offsets = np.where(u_known, self.baseline_user_bias[safe_u], 0.0) + np.where(
            m_known, self.baseline_movie_bias[safe_m], 0.0
        )
        return np.clip(self.head.offset + offsets, self.head.min_rating, self.head.max_rating).astype(
            np.float32
        )

    # ---- fold-in ----------------------------------------------------------------------------------------

    @abstractmethod
    def fold_in(self, movie_idx: I64, ratings: F32, l2: float, steps: int = 200) -> tuple[F32, float]:
        """A user vector and bias fitted to `ratings` of known movies, with the movie side frozen.

        `l2` penalises the fitted user side; `steps` bounds iterative solvers (ignored by closed-form ones).
        """

    # ---- neighbours -------------------------------------------------------------------------------------

    def similar(self, movie_idx: int) -> F32:
        """Cosine similarity of one movie's embedding to every movie's."""
        return self.movie_unit_factors @ self.movie_unit_factors[movie_idx]

    def require_bias(self, kind: str | None = None) -> None:
        """Raise when the model has no learned movie biases; `kind` names the model in the message."""
        if not self.has_bias:
            raise UnsupportedOperationError(
                f"a {kind or self.name!r} model has no learned biases; train a 'bias' model for this analysis"
            )
