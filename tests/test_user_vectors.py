"""app/user_vectors.py: which ratings a re-solved vector is built from, the version check, the LRU bound."""

from __future__ import annotations

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


def test_the_cache_stays_within_its_bound_under_a_write_storm(tiny_bundle_dir: Path, tmp_path: Path) -> None:
    """120 users each write and read: at most `user_cache_size` vectors are ever held."""
    bound = 16
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
        sizes = []
        for user in range(9_500_001, 9_500_121):
            for movie in movies[: 1 + user % 3]:
                assert (
                    client.put(f"/users/{user}/ratings/{movie}", json={"rating": 4}, headers=AUTH).status_code
                    == 200
                )
            assert client.get(f"/recommend/{user}").json()["user_vector"] == "fold_in"
            sizes.append(len(cache))
        assert max(sizes) == bound == sizes[-1]
        assert f"movierec_user_vector_cache_entries {float(bound)}" in client.get("/metrics").text
        held = cache.nbytes()
        # An entry is its vector and rated-movie indices (plus Python object overhead, not counted here).
        assert 0 < held <= bound * (8 * 4 + 3 * 8), held
