"""How top-N lists are ordered: the artifact's item ranker (low-rank EASE^R) blended with the rating model.

A rating model answers "what would user U rate movie M?"; ranked by that alone, lists fill with well-rated
rarities nobody watches. The ranker answers "which movies will U pick?": an EASE^R item-item model (Steck
2019) in low-rank form, trained by `training/ranker.py`. A list is ordered by

    rank_score = max(E, floor) * sigmoid((predicted_rating - like_threshold) / like_temperature)

the ranker's propensity E times the rating model's probability that U likes the movie, so the list holds
movies U is likely to pick *and* to rate well. The floor orders movies the ranker has no evidence for by the
rating model alone instead of leaving them tied at zero.

Low-rank EASE: with the thin SVD X = U S V^T of the binary user x movie matrix and c = 1/(s^2 + l2) - 1/l2,
P = (X^T X + l2 I)^-1 = I/l2 + V diag(c) V^T and d = diag(P). EASE's B = I - P diag(1/d), so for a user who
rated the movies S the score of an unrated movie j is (sum_{i in S} V_i * -c) . (V_j / d_j); a rated movie adds
its self weight 1 - 1/(l2 d_j). Scoring is a factor model: one (r,) vector per user against (n_movies, r).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from movierec.scoring.base import F32

# The manifest's `ranker.kind` of this ranker, and the scoring arrays it reads (written by training/ranker.py).
RANKER_KIND = "ease_lowrank"
RANKER_ARRAYS = ("ranker_factors", "ranker_scale", "ranker_diag", "ranker_prior")
# Propensity floor: movies the ranker gives no positive evidence are ordered by the rating model alone.
PROPENSITY_FLOOR = np.float32(1e-6)


@dataclass(frozen=True)
class ItemRanker:
    """The serving side of the low-rank EASE ranker."""

    name: str
    history_factors: F32  # V, (n_movies, r): a user's vector is the scaled sum of their movies' rows
    scale: F32  # -c, (r,)
    item_factors_t: F32  # (V / d)^T, (r, n_movies), transposed for the (1, r) @ (r, n) product
    self_weight: F32  # (n_movies,): what a movie adds to its own score when the user rated it
    prior: F32  # (n_movies,): the scores for the average history, the list of a user with none
    like_threshold: float
    like_temperature: float

    @classmethod
    def from_arrays(cls, arrays: dict[str, NDArray[Any]], settings: dict[str, Any]) -> ItemRanker:
        """Build from the artifact's `ranker_*` arrays (checked by `ranker_array_problems` at load) and the
        manifest's `ranker` entry."""
        factors = np.ascontiguousarray(arrays["ranker_factors"], dtype=np.float32)
        diag = np.asarray(arrays["ranker_diag"], dtype=np.float64)
        l2 = float(settings["l2"])
        return cls(
            name=str(settings.get("kind", RANKER_KIND)),
            history_factors=factors,
            scale=np.asarray(arrays["ranker_scale"], dtype=np.float32),
            item_factors_t=np.ascontiguousarray((factors / diag[:, None].astype(np.float32)).T),
            self_weight=(1.0 - 1.0 / (l2 * diag)).astype(np.float32),
            prior=np.asarray(arrays["ranker_prior"], dtype=np.float32),
            like_threshold=float(settings["like_threshold"]),
            like_temperature=float(settings["like_temperature"]),
        )

    def history_vector(self, rated: NDArray[Any]) -> F32:
        """The (r,) vector of a user who rated `rated` (movie indices): the scaled sum of their movies' rows."""
        vector: F32 = self.history_factors[rated].sum(axis=0) * self.scale
        return vector

    def propensity(self, rated: NDArray[Any], *, include_rated: bool = False) -> F32:
        """EASE scores of every movie for a user who rated `rated` (movie indices); a fresh array."""
        return self.propensity_block([rated], [include_rated])[0]

    def propensity_block(
        self,
        rated: Sequence[NDArray[Any]],
        include_rated: Sequence[bool],
        vectors: Sequence[F32 | None] | None = None,
    ) -> F32:
        """EASE scores of every movie for several users at once, (users, n_movies): one matrix product, which
        reads the (r, n_movies) item side once for all of them (what micro-batching buys on large catalogues).
        `vectors[i]`, when given, is user i's `history_vector` computed before (`HistoryVectors`)."""
        given = vectors if vectors is not None else [None] * len(rated)
        users = np.stack(
            [self.history_vector(r) if v is None else v for r, v in zip(rated, given, strict=True)]
        )
        scores: F32 = users @ self.item_factors_t
        for row, (movies, include) in enumerate(zip(rated, include_rated, strict=True)):
            if include and len(movies):
                scores[row, movies] += self.self_weight[movies]
        return scores

    def rank_scores(self, propensity: F32, ratings: F32) -> F32:
        """The list order of one user's (or the prior's) propensities and predicted ratings."""
        return blend(propensity, ratings, self.like_threshold, self.like_temperature)

    def rank_score_bounds(self, propensity: F32) -> F32:
        """Upper bounds of the rank scores from the propensities alone (the probability of liking is at most
        1), in place: lets a list score ratings only for the movies that can still reach its top k."""
        return np.maximum(propensity, PROPENSITY_FLOOR, out=propensity)

    def rank_scores_within_bounds(self, bounds: F32, ratings: F32) -> F32:
        """`rank_scores` of movies whose `rank_score_bounds` are given: the same numbers, one step fewer."""
        return (bounds * like_probability(ratings, self.like_threshold, self.like_temperature)).astype(
            np.float32
        )


class HistoryVectors:
    """Trained users' `history_vector`s, each computed at the user's first list and kept: a trained history is
    fixed by the artifact, and the sum over a history's rows cost a quarter of a list's scoring under load.

    One (n_users, r) float32 array reserved at load and filled row by row: zero-filled pages are not resident
    until written, so memory follows the users served, at most n_users x r x 4 bytes (83 MB for ml-25m's
    162,541 users at rank 128). Safe across threads: two that fill the same row write the same numbers.
    """

    def __init__(self, ranker: ItemRanker, n_users: int, movies_of: Callable[[int], NDArray[Any]]) -> None:
        self._ranker = ranker
        self._movies_of = movies_of
        self._rows = np.zeros((n_users, ranker.scale.size), dtype=np.float32)
        self._filled = np.zeros(n_users, dtype=np.bool_)

    def get(self, user: int) -> F32:
        """Trained user `user`'s (index) vector: a read-only view callers never write to."""
        if not self._filled[user]:
            self._rows[user] = self._ranker.history_vector(self._movies_of(user))
            self._filled[user] = True
        row: F32 = self._rows[user]
        return row

    @property
    def filled(self) -> int:
        return int(self._filled.sum())


def blend(
    propensity: NDArray[Any], ratings: NDArray[Any], like_threshold: float, like_temperature: float
) -> F32:
    """The rank score: propensity (floored) times the probability of liking, from predicted ratings.

    The one definition of the list order, for the service's lists and the trainer's held-out figures alike;
    elementwise, so it takes one user's catalogue or a users x movies block.
    """
    like = like_probability(ratings, like_threshold, like_temperature)
    return (np.maximum(propensity, PROPENSITY_FLOOR) * like).astype(np.float32)


def like_probability(ratings: NDArray[Any], like_threshold: float, like_temperature: float) -> NDArray[Any]:
    """The probability that a user likes a movie, from its predicted rating (a logistic around the threshold)."""
    return 1.0 / (1.0 + np.exp(-(ratings - like_threshold) / like_temperature))


def ranker_array_problems(
    ranker: dict[str, Any], arrays: dict[str, NDArray[Any]], n_movies: int
) -> list[str]:
    """What keeps the manifest's ranker from being served: its four arrays must exist and match its rank."""
    rank = ranker.get("rank")
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        return [f"the manifest's ranker has rank {rank!r}, expected a positive integer"]
    expected = dict(zip(RANKER_ARRAYS, ((n_movies, rank), (rank,), (n_movies,), (n_movies,)), strict=True))
    problems = []
    for name, shape in expected.items():
        if name not in arrays:
            problems.append(f"the manifest declares a ranker but scoring.npz lacks {name}")
        elif arrays[name].shape != shape:
            problems.append(
                f"{name} has shape {arrays[name].shape}, expected {shape} (ranker rank {rank}, {n_movies} movies)"
            )
    return problems
