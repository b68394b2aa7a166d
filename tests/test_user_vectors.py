"""app/user_vectors.py: which ratings a re-solved vector is built from, the version check, the LRU bound."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.user_vectors import UserVector, UserVectorCache, solve
from movierec.artifacts import load_bundle
from movierec.recommender import Recommender
from movierec.store import RatingStore, upgrade_to_head

KEY = "vector-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def recommender(tiny_bundle_dir: Path) -> Recommender:
    return Recommender(load_bundle(tiny_bundle_dir), fold_in_l2=5.0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RatingStore]:
    url = f"sqlite:///{tmp_path}/vectors.db"
    upgrade_to_head(url)
    store = RatingStore(url)
    yield store
    store.close()


def _user_with_ratings(recommender: Recommender) -> tuple[int, np.ndarray, np.ndarray]:
    counts = np.diff(recommender.bundle.user_ratings.indptr)
    u = int(np.argmax(np.where(counts < recommender.scorer.n_movies - 5, counts, -1)))
    ratings = recommender.bundle.user_ratings
    return int(recommender.bundle.user_ids.ids[u]), ratings.movies_of(u).copy(), ratings.ratings_of(u).copy()


def test_stored_ratings_replace_training_ones_and_removed_ones_drop_out(
    recommender: Recommender, store: RatingStore
) -> None:
    user, movies, ratings = _user_with_ratings(recommender)
    ids = recommender.bundle.movie_ids.ids
    unrated = next(i for i in range(recommender.scorer.n_movies) if i not in set(movies.tolist()))
    store.put_rating(user, int(ids[movies[0]]), 0.5)  # replaces a training rating
    store.put_rating(user, int(ids[unrated]), 5.0)  # a new one
    store.put_rating(user, 999_999, 3.0)  # unknown to this model: ignored, never an error
    store.delete_rating(user, int(ids[movies[1]]))  # removes a training rating
    entry = solve(recommender, user, store.user_history(user))
    expected = dict(zip(movies.tolist(), ratings.tolist(), strict=True))
    expected[int(movies[0])] = 0.5
    expected[unrated] = 5.0
    del expected[int(movies[1])]
    assert sorted(entry.rated.tolist()) == sorted(expected)
    order = np.array(sorted(expected), dtype=np.int64)
    vector, bias = recommender.scorer.fold_in(
        order, np.array([expected[i] for i in order], np.float32), recommender.fold_in_l2
    )
    assert entry.source == "fold_in" and entry.vector is not None
    np.testing.assert_allclose(entry.vector, vector, rtol=1e-4, atol=1e-5)
    assert entry.bias == pytest.approx(bias, abs=1e-5)
    assert entry.version == store.user_state(user).version == 4


def test_a_forgotten_user_keeps_only_what_they_rate_afterwards(
    recommender: Recommender, store: RatingStore
) -> None:
    user, _, _ = _user_with_ratings(recommender)
    store.forget_user(user)
    assert solve(recommender, user, store.user_history(user)).source == "none"
    movie = int(recommender.bundle.movie_ids.ids[0])
    store.put_rating(user, movie, 4.0)
    entry = solve(recommender, user, store.user_history(user))
    assert entry.rated.tolist() == [0] and entry.source == "fold_in"


def test_the_cache_is_keyed_by_run_and_checked_against_the_version() -> None:
    cache = UserVectorCache(max_entries=2)
    entry = UserVector(np.zeros(3, np.float32), 0.0, np.empty(0, np.int64), version=3)
    cache.put("run-a", 1, entry)
    assert cache.get("run-a", 1, 3) is entry
    assert cache.get("run-a", 1, 4) is None  # written since (here or in another process)
    assert cache.get("run-b", 1, 3) is None  # another model serves: solved again
    cache.put("run-a", 1, UserVector(None, 0.0, np.empty(0, np.int64), version=2))  # older: ignored
    assert cache.get("run-a", 1, 3) is entry
    cache.put("run-a", 2, entry)
    cache.put("run-a", 3, entry)
    assert len(cache) == 2 and cache.get("run-a", 1, 3) is None  # least recently used went first
    cache.invalidate(3)
    assert len(cache) == 1


def _held_by_the_cache() -> int:
    """Bytes traced by tracemalloc and still allocated from code in app/user_vectors.py (any recorded frame),
    less the store's reads it calls (the sqlite3 driver keeps up to 200 cursor weakrefs per connection): the
    cache's entries, their arrays, keys and LRU links. What a request solves and drops is freed by then."""
    mine = tracemalloc.take_snapshot().filter_traces(
        [
            tracemalloc.Filter(True, "*app/user_vectors.py", all_frames=True),
            tracemalloc.Filter(False, "*movierec/store/*", all_frames=True),
        ]
    )
    return sum(stat.size for stat in mine.statistics("filename"))


def test_the_cache_stays_within_its_bound_under_a_write_storm(tiny_bundle_dir: Path, tmp_path: Path) -> None:
    """160 users (10x the bound) each write and read: at most `user_cache_size` vectors are ever held, and the
    memory the cache holds, measured with tracemalloc over the storm's last two windows of 20 users, is that
    of `bound` entries after each window: it does not grow with the users who wrote."""
    bound, window, users = 16, 20, list(range(9_500_001, 9_500_161))
    settings = Settings(
        model_dir=tiny_bundle_dir,
        api_key=KEY,
        database_url=f"sqlite:///{tmp_path}/storm.db",
        device="cpu",
        user_cache_size=bound,
    )
    movies = [int(m) for m in load_bundle(tiny_bundle_dir).movie_ids.ids[:3]]
    with TestClient(create_app(settings)) as client:
        cache: UserVectorCache = client.app.state.user_vectors
        sizes, held = [], []

        def storm(some: list[int]) -> None:
            for user in some:
                for movie in movies[: 1 + user % 3]:
                    put = client.put(f"/users/{user}/ratings/{movie}", json={"rating": 4}, headers=AUTH)
                    assert put.status_code == 200
                assert client.get(f"/recommend/{user}").json()["user_vector"] == "fold_in"
                sizes.append(len(cache))

        storm(users[: -2 * window])
        # Traced only at the end (tracing every allocation of the whole storm costs minutes): entries solved
        # before tracing started are evicted within the first window, so each figure counts live entries only.
        tracemalloc.start(4)  # deep enough to reach solve() from numpy's allocations in the scorer's fold-in
        try:
            storm(users[-2 * window : -window])
            held.append(_held_by_the_cache())
            storm(users[-window:])
            held.append(_held_by_the_cache())
        finally:
            tracemalloc.stop()
        assert max(sizes) == bound == sizes[-1]
        assert f"movierec_user_vector_cache_entries {float(bound)}" in client.get("/metrics").text
        arrays = cache.nbytes()
        # An entry's arrays are its vector and rated-movie indices (plus Python object overhead, not counted here).
        assert 0 < arrays <= bound * (8 * 4 + 3 * 8), arrays
        # With Python's overhead an entry of the tiny model is well under 2 KB. An unbounded cache would hold
        # `window` entries after the first window and twice that after the second; a bounded one holds `bound`
        # both times (small objects reused from CPython's free lists are not traced, hence a slack of 2 entries).
        assert arrays < held[0] <= bound * 2048, held
        assert abs(held[1] - held[0]) <= 2 * held[0] // bound, held


def test_history_reads_and_solves_run_off_the_event_loop(
    tiny_bundle_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache miss reads the user's history (which may wait on the database) and solves their vector (200
    optimiser steps for `nn`): both in a worker thread, for one user and for a batch, never on the loop."""
    import asyncio

    from app import user_vectors

    on_loop: list[tuple[str, bool]] = []
    real_solve, real_history = user_vectors.solve, RatingStore.user_history

    def spy_solve(*args, **kwargs):  # type: ignore[no-untyped-def]
        on_loop.append(("solve", asyncio._get_running_loop() is not None))
        return real_solve(*args, **kwargs)

    def spy_history(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        on_loop.append(("history", asyncio._get_running_loop() is not None))
        return real_history(self, *args, **kwargs)

    monkeypatch.setattr(user_vectors, "solve", spy_solve)
    monkeypatch.setattr(RatingStore, "user_history", spy_history)
    settings = Settings(
        model_dir=tiny_bundle_dir, api_key=KEY, database_url=f"sqlite:///{tmp_path}/loop.db", device="cpu"
    )
    movie = int(load_bundle(tiny_bundle_dir).movie_ids.ids[0])
    with TestClient(create_app(settings)) as client:
        for user in (9_600_001, 9_600_002):
            assert (
                client.put(f"/users/{user}/ratings/{movie}", json={"rating": 4}, headers=AUTH).status_code
                == 200
            )
        assert client.get("/recommend/9600001").json()["user_vector"] == "fold_in"
        instances = [{"user_id": 9_600_002, "movie_id": movie}, {"user_id": 9_600_001, "movie_id": movie}]
        assert client.post("/predict", json={"instances": instances}).status_code == 200
    assert {what for what, _ in on_loop} == {"solve", "history"}, on_loop
    assert not any(loop for _, loop in on_loop), on_loop
