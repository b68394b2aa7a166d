"""An anonymous user described only by ratings: the folded-in user, its predictions and "because you rated".

A browser session keeps its ratings itself and sends them with each question, so nothing is stored server-side:
the ratings are folded in against the frozen movie side (as `Recommender.recommend_for_ratings` does) and the
folded user answers predictions for any movies. Explanations use the model's movie embedding: the rated movies
whose learned vectors point the same way as a recommended movie's are the ones the model groups with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from movierec.recommender import Recommender


@dataclass(frozen=True)
class SessionRatings:
    """The usable part of an anonymous user's ratings.

    `movie_index` and `ratings` are the rated movies the model knows (embedding rows) and their ratings;
    `ignored` the rated movie ids it does not know, which can inform nothing.
    """

    movie_index: NDArray[np.int64]
    ratings: NDArray[np.float32]
    ignored: list[int]


def session_ratings(
    recommender: Recommender, movie_ids: NDArray[np.int64], ratings: NDArray[np.floating[Any]]
) -> SessionRatings:
    """Ratings by raw movie id, read by the same policy as `Recommender.recommend_for_ratings`
    (`Recommender.known_ratings`: off-scale ratings raise InvalidRequestError, a repeated movie keeps its last
    rating, unknown movies are set aside), so every anonymous-user endpoint treats the same ratings alike."""
    movie_index, values, ignored = recommender.known_ratings(movie_ids, ratings)
    return SessionRatings(movie_index.astype(np.int64), values.astype(np.float32), ignored)


def predict_for_ratings(
    recommender: Recommender, rated: SessionRatings, movie_index: NDArray[np.int64]
) -> NDArray[np.float32]:
    """Predicted ratings of movies (embedding rows) for the user the ratings describe, on the rating scale.

    The user is folded in as `Recommender.recommend_for_ratings` folds them. With no known rated movie the model
    knows nothing of the user, so each movie gets the fallback for an unknown user (its learned bias or damped
    mean), as the cold-start list does.
    """
    movie_index = np.asarray(movie_index, dtype=np.int64)
    scorer = recommender.scorer
    if not len(rated.movie_index):
        return scorer.fallback(np.full(len(movie_index), -1, dtype=np.int64), movie_index)
    vector, bias = scorer.fold_in(rated.movie_index, rated.ratings, recommender.fold_in_l2)
    return scorer.vector_ratings(vector, bias, movie_index)


@dataclass(frozen=True)
class Reason:
    """A rated movie (embedding row), the user's rating of it and its cosine similarity to the explained movie."""

    movie_index: int
    rating: float
    similarity: float


def because_you_rated(
    recommender: Recommender, rated: SessionRatings, movie_index: NDArray[np.int64], n: int
) -> list[list[Reason]]:
    """For each movie, up to `n` rated movies closest to it in the learned movie embedding, closest first.

    Only rated movies with a positive cosine similarity count (one pointing away is no reason), and a movie is
    never its own reason.
    """
    unit = recommender.scorer.movie_unit_factors
    targets = np.asarray(movie_index, dtype=np.int64)
    sims = unit[targets] @ unit[rated.movie_index].T  # (targets, rated)
    sims[targets[:, None] == rated.movie_index[None, :]] = -np.inf
    reasons: list[list[Reason]] = []
    for row in sims:
        top = np.argsort(-row, kind="stable")[:n]
        reasons.append(
            [
                Reason(int(rated.movie_index[j]), float(rated.ratings[j]), float(row[j]))
                for j in top
                if row[j] > 0
            ]
        )
    return reasons
