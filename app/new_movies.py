"""Movies added after training, as the service sees them: found in the database on a catalogue miss, scored
through movierec/new_movies.py from what is known of them and the ratings they have received.

Nothing about an added movie is held per process except the served model's prior (`movierec.new_movies.new_movie_scorer`): on every
request for an id the model does not know, the movie is looked up by primary key, so a movie added through
one API process is known to every other at its next request. Its estimate folds in its newest
`MAX_FOLDED_RATINGS` ratings from users with a vector: a user's re-solved vector when they have stored ratings
(app/user_vectors.py, cached by version), else their trained one; a rater with no vector (no rating of a movie
the model knows) counts only after a retrain. The work runs off the event loop (`off_loop`). With the database
down, an id the model does not know is served as before (the fallback).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio.to_thread
import numpy as np
from fastapi import Request
from numpy.typing import NDArray

from app.database import get_store
from app.user_vectors import Source, UserVector, UserVectorCache, get_cache, resolve_users_now, source_of
from movierec.errors import UnknownUserError
from movierec.new_movies import MovieEstimate, Raters, new_movie_scorer
from movierec.recommender import Recommender
from movierec.store import AddedMovieRow, RatingStore, StoreUnavailableError

log = logging.getLogger(__name__)
T = TypeVar("T")

# The newest ratings of a new movie that its estimate folds in: an indexed read, one small solve, and the raters'
# vectors (cached by version; at worst one re-solve per rater after a restart, as their own next request costs).
# 200 ratings already outweigh the prior many times over.
MAX_FOLDED_RATINGS = 200


def is_trained(recommender: Recommender, movie_id: int) -> bool:
    return recommender.bundle.movie_ids.index(movie_id) is not None


def estimate_now(
    store: RatingStore, cache: UserVectorCache, recommender: Recommender, movie: AddedMovieRow
) -> MovieEstimate:
    """The movie's estimate from its genres, year and newest ratings (in the calling thread)."""
    scorer = new_movie_scorer(recommender)
    received = store.movie_ratings(movie.movie_id, MAX_FOLDED_RATINGS)
    if not received or not scorer.folds_in_ratings:
        return scorer.estimate(movie.genres, movie.year)
    resolved = resolve_users_now(store, cache, recommender, [r.user_id for r in received])
    vectors, biases, ratings = [], [], []
    for rating in received:
        vector, bias = user_side(recommender, rating.user_id, resolved.get(rating.user_id))
        if vector is not None:
            vectors.append(vector)
            biases.append(bias)
            ratings.append(rating.rating)
    if not ratings:
        return scorer.estimate(movie.genres, movie.year)
    raters = Raters(
        np.asarray(vectors, dtype=np.float32),
        np.asarray(biases, dtype=np.float32),
        np.asarray(ratings, dtype=np.float32),
    )
    return scorer.estimate(movie.genres, movie.year, raters)


def user_side(
    recommender: Recommender, user_id: int, resolved: UserVector | None
) -> tuple[NDArray[np.float32] | None, float]:
    """A user's vector and bias as /predict uses them: re-solved from stored ratings, else trained, else None."""
    if resolved is not None:
        return resolved.vector, resolved.bias
    u = recommender.user_index(user_id)
    if u is None:
        return None, 0.0
    scorer = recommender.scorer
    return scorer.user_factors[u], float(scorer.user_bias[u])


# ---- what the routes call ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewMovieEntry:
    """What GET /movies/{id} says of an added movie."""

    movie: AddedMovieRow
    n_ratings: int
    mean_rating: float | None
    bias: float | None


async def new_movie_entry(request: Request, recommender: Recommender, movie_id: int) -> NewMovieEntry | None:
    """GET /movies/{id} for an id the model does not know: the added movie with its ratings and estimated bias,
    None when no movie of that id was added."""
    store, cache = get_store(request), get_cache(request)

    def work() -> NewMovieEntry | None:
        movie = store.added_movie(movie_id)
        if movie is None:
            return None
        count, mean = store.movie_rating_summary(movie_id)
        estimate = estimate_now(store, cache, recommender, movie)
        bias = estimate.bias if recommender.scorer.has_bias else None
        return NewMovieEntry(movie, count, mean, bias)

    return await off_loop(work)


async def predict_new_pair(
    request: Request, recommender: Recommender, user_id: int, movie_id: int, *, strict: bool
) -> tuple[float, bool, Source] | None:
    """POST /predict, one pair whose movie the model does not know: (rating, user known, where the user's
    vector came from) when it is an added movie, None otherwise (the usual fallback path answers)."""
    store, cache = get_store(request), get_cache(request)

    def work() -> tuple[float, bool, Source] | None:
        movie = store.added_movie(movie_id)
        if movie is None:
            return None
        resolved = resolve_users_now(store, cache, recommender, [user_id]).get(user_id)
        vector, bias = user_side(recommender, user_id, resolved)
        if strict and vector is None:
            raise UnknownUserError(user_id)
        estimate = estimate_now(store, cache, recommender, movie)
        rating = new_movie_scorer(recommender).rating(estimate, vector, bias)
        return rating, vector is not None, source_of(recommender, user_id, resolved)

    try:
        return await off_loop(work)
    except StoreUnavailableError as exc:
        log.warning("movie %d served as unknown: %s", movie_id, exc)
        return None


async def predict_new_batch(
    request: Request,
    recommender: Recommender,
    users: NDArray[np.int64],
    movies: NDArray[np.int64],
    resolved: dict[int, UserVector],
) -> NewMoviePredictions | None:
    """`predict_new_batch_now` for a batch answered on the event loop (None at once without catalogue misses)."""
    if not (recommender.bundle.movie_ids.index_of(movies) < 0).any():
        return None
    store, cache = get_store(request), get_cache(request)
    return await off_loop(lambda: predict_new_batch_now(store, cache, recommender, users, movies, resolved))


async def off_loop(work: Callable[[], T]) -> T:
    """Work on added movies runs in a worker thread, on SQLite too (unlike `app.database.run_read`): a new
    movie's first estimate after a start re-solves up to `MAX_FOLDED_RATINGS` raters' vectors (measured: 350 ms
    for 200 raters on ml-latest-small), which must not stall the event loop. Catalogue misses only: trained
    movies never come here."""
    return await anyio.to_thread.run_sync(work)


@dataclass(frozen=True)
class NewMoviePredictions:
    """The rows of a /predict batch whose movie is an added one, and their ratings."""

    rows: NDArray[np.bool_]
    ratings: NDArray[np.float32]


def predict_new_batch_now(
    store: RatingStore,
    cache: UserVectorCache,
    recommender: Recommender,
    users: NDArray[np.int64],
    movies: NDArray[np.int64],
    resolved: dict[int, UserVector],
) -> NewMoviePredictions | None:
    """The ratings of a batch's pairs with added movies (None when it has none), in the calling thread.

    `resolved` are the batch's users with stored ratings (`resolve_users_now`); the rest use trained vectors.
    """
    unknown = recommender.bundle.movie_ids.index_of(movies) < 0
    if not unknown.any():
        return None
    try:
        added = store.added_movies(sorted(set(movies[unknown].tolist())))
        if not added:
            return None
        rows = unknown & np.isin(movies, np.fromiter(added, dtype=np.int64, count=len(added)))
        scorer = new_movie_scorer(recommender)
        ratings = np.empty(len(movies), dtype=np.float32)
        for movie_id, movie in added.items():
            at = np.flatnonzero(rows & (movies == movie_id))
            estimate = estimate_now(store, cache, recommender, movie)
            sides = [user_side(recommender, u, resolved.get(u)) for u in users[at].tolist()]
            known = np.array([v is not None for v, _ in sides], dtype=np.bool_)
            width = recommender.scorer.user_factors.shape[1]
            vectors = np.stack([np.zeros(width, np.float32) if v is None else v for v, _ in sides])
            biases = np.array([b for _, b in sides], dtype=np.float32)
            ratings[at] = scorer.ratings(estimate, vectors, biases, known)
    except StoreUnavailableError as exc:
        log.warning("a batch's unknown movies served as unknown: %s", exc)
        return None
    return NewMoviePredictions(rows, ratings[rows])


def placeholder_movies(
    recommender: Recommender, movies: NDArray[np.int64], new: NewMoviePredictions | None
) -> NDArray[np.int64]:
    """`movies` with the added ones replaced by a trained movie, so that the model's own path (and its strict
    check, which must not 404 an added movie) runs on every row with the rows' positions unchanged."""
    if new is None:
        return movies
    return np.where(new.rows, np.int64(recommender.bundle.movie_ids.ids[0]), movies)
