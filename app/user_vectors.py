"""User vectors of people with stored ratings: re-solved by fold-in, cached per process, fresh across processes.

A user who wrote through the API gets a vector and bias solved from all of their ratings: the model's training
ratings, minus the pairs they deleted (and all of them once they asked to be forgotten), with every stored
rating replacing the training rating of the same movie. Solved vectors sit in a bounded LRU keyed by
(served run id, user id); each request reads the user's version from the database (one primary-key row) and
uses the cached vector only when it was built from that version, so a write through any process is seen on the
next request, never after a timeout. Users who never wrote have no version row and keep their trained vector.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from fastapi import Request
from numpy.typing import NDArray

from app.database import get_store, run_read
from app.offload import HeavyWork
from movierec.errors import UnknownMovieError, UnknownUserError
from movierec.recommender import ListQuery, Predictions, Ranked, Recommender
from movierec.store import RatingStore, StoreUnavailableError, UserHistory, UserStateRow

log = logging.getLogger(__name__)

Source = Literal["trained", "fold_in", "none"]


@dataclass(frozen=True)
class UserVector:
    """A user's re-solved vector; `vector` None when no rating is left (served like an unknown user)."""

    vector: NDArray[np.float32] | None
    bias: float
    rated: NDArray[np.int64]
    version: int

    @property
    def source(self) -> Source:
        return "none" if self.vector is None else "fold_in"


class UserVectorCache:
    """A thread-safe LRU of user vectors, at most `max_entries` of them (evicting the least recently used)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, int], UserVector] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, run_id: str, user_id: int, version: int) -> UserVector | None:
        key = (run_id, user_id)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.version != version:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def put(self, run_id: str, user_id: int, entry: UserVector) -> None:
        key = (run_id, user_id)
        with self._lock:
            current = self._entries.get(key)
            if current is not None and current.version > entry.version:
                return  # a concurrent request already cached a newer one
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def nbytes(self) -> int:
        """Bytes of the arrays held (vectors and rated-movie indices): what the bound caps."""
        with self._lock:
            return sum(
                (0 if e.vector is None else e.vector.nbytes) + e.rated.nbytes for e in self._entries.values()
            )

    def invalidate(self, user_id: int) -> None:
        """Drop every cached vector of a user (whatever run it was solved for)."""
        with self._lock:
            for key in [key for key in self._entries if key[1] == user_id]:
                del self._entries[key]


def solve(recommender: Recommender, user_id: int, history: UserHistory) -> UserVector:
    """The user's vector from their merged ratings, exactly as POST /recommend folds in."""
    movie_ids = recommender.bundle.movie_ids
    merged: dict[int, float] = {}
    u = recommender.user_index(user_id)
    if u is not None and history.forgotten_at is None:
        merged = dict(
            zip(
                recommender.bundle.user_ratings.movies_of(u).tolist(),
                recommender.bundle.user_ratings.ratings_of(u).tolist(),
                strict=True,
            )
        )
    for movie, _ in history.removed:
        idx = movie_ids.index(movie)
        if idx is not None:
            merged.pop(idx, None)
    for stored in history.ratings:
        idx = movie_ids.index(stored.movie_id)
        if idx is not None:  # a movie this model does not know cannot inform the fold-in
            merged[idx] = stored.rating
    if not merged:
        return UserVector(None, 0.0, np.empty(0, dtype=np.int64), history.version)
    rated = np.fromiter(merged.keys(), dtype=np.int64, count=len(merged))
    ratings = np.fromiter(merged.values(), dtype=np.float32, count=len(merged))
    vector, bias = recommender.scorer.fold_in(rated, ratings, recommender.fold_in_l2)
    return UserVector(vector, bias, rated, history.version)


def get_cache(request: Request) -> UserVectorCache:
    cache: UserVectorCache = request.app.state.user_vectors
    return cache


async def read_state(request: Request, user_id: int) -> UserStateRow | None:
    """The user's version row (None: they never wrote). From PostgreSQL's version mirror while it follows
    (movierec/store/versions.py), inline on SQLite (a few µs, `run_read`), else in a thread; raises
    `StoreUnavailableError` when the database cannot answer."""
    store = get_store(request)
    mirrored = store.mirrored_user_states([user_id])  # PostgreSQL's version mirror: no round trip
    if mirrored is not None:
        return mirrored.get(user_id)
    return await run_read(store, lambda: store.user_state(user_id))


async def resolve_state(
    request: Request, recommender: Recommender, user_id: int, state: UserStateRow
) -> UserVector | None:
    """The vector of a user whose version row is `state`: from the cache when it was built from that version,
    else their history read and their vector solved in a worker thread, bounded like all costly work
    (app/offload.py): a history read may wait on the database, and an `nn` fold-in takes 200 optimiser steps.
    Raises `StoreUnavailableError` when the database cannot answer."""
    cache = get_cache(request)
    cached = cache.get(recommender.run_id, user_id, state.version)
    if cached is not None:
        return cached
    store = get_store(request)
    heavy: HeavyWork = request.app.state.heavy_work
    return await heavy.run(lambda: _solve_and_cache(store, cache, recommender, user_id))


async def resolve_user(request: Request, recommender: Recommender, user_id: int) -> UserVector | None:
    """The user's re-solved vector, or None to use the trained one (no stored ratings, or database down)."""
    try:
        state = await read_state(request, user_id)
        return None if state is None else await resolve_state(request, recommender, user_id, state)
    except StoreUnavailableError as exc:
        log.warning("serving user %d from the trained model: %s", user_id, exc)
        return None


def _solve_and_cache(
    store: RatingStore, cache: UserVectorCache, recommender: Recommender, user_id: int
) -> UserVector | None:
    history = store.user_history(user_id)
    if history is None:
        return None
    entry = solve(recommender, user_id, history)
    cache.put(recommender.run_id, user_id, entry)
    return entry


async def resolve_users(
    request: Request, recommender: Recommender, user_ids: Sequence[int]
) -> dict[int, UserVector]:
    """`resolve_user` for the distinct users of a batch: one query for all versions (inline where that is
    cheap, as for one user), then the cache misses' solves together in one hop off the event loop."""
    store, cache = get_store(request), get_cache(request)
    try:
        distinct = sorted(set(user_ids))
        states = store.mirrored_user_states(distinct)
        if states is None:
            states = await run_read(store, lambda: store.user_states(distinct))
        found, missing = _cached(cache, recommender, states)
        if missing:
            heavy: HeavyWork = request.app.state.heavy_work
            found |= await heavy.run(lambda: _solve_all(store, cache, recommender, missing))
    except StoreUnavailableError as exc:
        log.warning("serving a batch from the trained model: %s", exc)
        return {}
    return found


def resolve_users_now(
    store: RatingStore, cache: UserVectorCache, recommender: Recommender, user_ids: Sequence[int]
) -> dict[int, UserVector]:
    """`resolve_users` in the calling thread (a request already running off the event loop)."""
    try:
        found, missing = _cached(cache, recommender, store.user_states(sorted(set(user_ids))))
        return found | _solve_all(store, cache, recommender, missing)
    except StoreUnavailableError as exc:
        log.warning("serving a batch from the trained model: %s", exc)
        return {}


def _cached(
    cache: UserVectorCache, recommender: Recommender, states: dict[int, UserStateRow]
) -> tuple[dict[int, UserVector], list[int]]:
    """The users whose cached vector is of their current version, and the users left to solve."""
    found: dict[int, UserVector] = {}
    missing: list[int] = []
    for user, state in states.items():
        entry = cache.get(recommender.run_id, user, state.version)
        if entry is None:
            missing.append(user)
        else:
            found[user] = entry
    return found, missing


def _solve_all(
    store: RatingStore, cache: UserVectorCache, recommender: Recommender, user_ids: Sequence[int]
) -> dict[int, UserVector]:
    solved = {user: _solve_and_cache(store, cache, recommender, user) for user in user_ids}
    return {user: entry for user, entry in solved.items() if entry is not None}


def source_of(recommender: Recommender, user_id: int, resolved: UserVector | None) -> Source:
    """What a response's `user_vector` says: where this user's vector came from."""
    if resolved is not None:
        return resolved.source
    return "trained" if recommender.user_index(user_id) is not None else "none"


# ---- what the read routes call -----------------------------------------------------------------------------


async def try_read_state(request: Request, user_id: int) -> tuple[UserStateRow | None, bool]:
    """(the user's version row, whether the database answered): a list is served either way, from the
    trained vector when it did not."""
    try:
        return await read_state(request, user_id), True
    except StoreUnavailableError as exc:
        log.warning("serving user %d from the trained model: %s", user_id, exc)
        return None, False


async def user_list_query(
    request: Request,
    recommender: Recommender,
    user_id: int,
    state: UserStateRow | None,
    k: int,
    *,
    exclude_rated: bool = True,
    genres: list[str] | None = None,
    min_ratings: int = 0,
) -> tuple[ListQuery | Ranked, Source, bool]:
    """GET /recommend/{user_id}'s list query for a user whose version row is `state`: from the re-solved vector
    when they have stored ratings, else as trained (or the finished cold-start list); where the user's vector
    came from; and whether the list is that of `state` (False: the history could not be read, the trained
    vector stood in)."""
    resolved, of_state = None, True
    if state is not None:
        try:
            resolved = await resolve_state(request, recommender, user_id, state)
        except StoreUnavailableError as exc:
            log.warning("serving user %d from the trained model: %s", user_id, exc)
            of_state = False
    query = (
        recommender.list_query(
            user_id, k, exclude_rated=exclude_rated, genres=genres, min_ratings=min_ratings
        )
        if resolved is None
        else recommender.vector_query(
            resolved.vector,
            resolved.bias,
            resolved.rated,
            k,
            exclude_rated=exclude_rated,
            genres=genres,
            min_ratings=min_ratings,
        )
    )
    return query, source_of(recommender, user_id, resolved), of_state


async def predict_pair(
    request: Request, recommender: Recommender, user_id: int, movie_id: int, *, strict: bool
) -> tuple[float, bool, bool, Source]:
    """POST /predict, one pair: (rating, user known, movie known, where the user's vector came from)."""
    resolved = await resolve_user(request, recommender, user_id)
    if resolved is None:
        rating, user_known, movie_known = recommender.predict_one(user_id, movie_id, strict=strict)
        return rating, user_known, movie_known, source_of(recommender, user_id, None)
    preds = recommender.predict_with_vector(
        resolved.vector, resolved.bias, np.array([movie_id], dtype=np.int64), strict=strict, user_id=user_id
    )
    return (
        float(preds.ratings[0]),
        bool(preds.user_known[0]),
        bool(preds.movie_known[0]),
        resolved.source,
    )


def _check_known(
    recommender: Recommender,
    users: NDArray[np.int64],
    movies: NDArray[np.int64],
    resolved: dict[int, UserVector],
) -> None:
    """A strict batch's 404 for its first unknown user (else movie), named `instances[i]` by request order."""
    user_known = recommender.bundle.user_ids.index_of(users) >= 0
    for user, entry in resolved.items():
        user_known[users == user] = entry.vector is not None
    if not user_known.all():
        first = int(np.flatnonzero(~user_known)[0])
        raise UnknownUserError(int(users[first]), f"instances[{first}]: ")
    movie_known = recommender.bundle.movie_ids.index_of(movies) >= 0
    if not movie_known.all():
        first = int(np.flatnonzero(~movie_known)[0])
        raise UnknownMovieError(int(movies[first]), f"instances[{first}]: ")


def predict_resolved(
    recommender: Recommender,
    users: NDArray[np.int64],
    movies: NDArray[np.int64],
    resolved: dict[int, UserVector],
    *,
    strict: bool,
) -> tuple[Predictions, list[Source]]:
    """POST /predict, a batch, once its users with stored ratings are resolved (`resolve_users`): the trained
    predictions with those users' pairs replaced. Plain computation, no database, so it may run in a thread."""
    if strict and resolved:
        # Checked over the whole batch first, so that the 404 names the pair's position in the request, not
        # in one of the subsets below.
        _check_known(recommender, users, movies, resolved)
    if not resolved:
        preds = recommender.predict(users, movies, strict=strict)
        known = preds.user_known.tolist()
        return preds, ["trained" if k else "none" for k in known]
    ratings = np.empty(len(users), dtype=np.float32)
    user_known = np.empty(len(users), dtype=np.bool_)
    movie_known = np.empty(len(users), dtype=np.bool_)
    sources: list[Source] = ["none"] * len(users)
    trained = ~np.isin(users, np.fromiter(resolved, dtype=np.int64, count=len(resolved)))
    if trained.any():
        base = recommender.predict(users[trained], movies[trained], strict=strict)
        ratings[trained], user_known[trained], movie_known[trained] = (
            base.ratings,
            base.user_known,
            base.movie_known,
        )
        for position, known in zip(np.flatnonzero(trained).tolist(), base.user_known.tolist(), strict=True):
            sources[position] = "trained" if known else "none"
    for user, entry in resolved.items():
        rows = np.flatnonzero(users == user)
        own = recommender.predict_with_vector(
            entry.vector, entry.bias, movies[rows], strict=strict, user_id=user
        )
        ratings[rows], user_known[rows], movie_known[rows] = own.ratings, own.user_known, own.movie_known
        for position in rows.tolist():
            sources[position] = entry.source
    return Predictions(ratings, user_known, movie_known), sources
