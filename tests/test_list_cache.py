"""The list cache (app/list_cache.py): bounded, and never an answer that differs from a freshly computed one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.list_cache import ENTRY_OVERHEAD_BYTES, ListCache, ListKey
from app.main import create_app
from app.settings import Settings
from movierec.artifacts import load_bundle
from movierec.recommender import Recommender

KEY = "list-cache-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def _key(user: int, version: int = -1, k: int = 10) -> ListKey:
    return ListKey.of(user, version, k, True, None, 0)


def test_the_cache_is_an_lru_bounded_in_bytes() -> None:
    body = b"x" * 600
    cache = ListCache(max_bytes=3 * (len(body) + ENTRY_OVERHEAD_BYTES))
    assert cache.get("run", _key(1)) is None  # the first lookup for a run adopts it
    for user in (1, 2, 3):
        cache.put("run", _key(user), body)
    assert cache.get("run", _key(1)) == body  # 1 is now the most recently used
    cache.put("run", _key(4), body)
    assert len(cache) == 3 and cache.nbytes <= cache.max_bytes
    assert cache.get("run", _key(2)) is None and cache.get("run", _key(1)) == body
    cache.put("run", _key(5), b"y" * cache.max_bytes)  # could never fit: not stored, nothing evicted
    assert len(cache) == 3


def test_a_new_run_drops_the_old_entries_and_late_answers_of_the_old_run_are_not_kept() -> None:
    cache = ListCache(max_bytes=1 << 20)
    cache.get("old", _key(1))
    cache.put("old", _key(1), b"old list")
    assert cache.get("new", _key(1)) is None and len(cache) == 0
    cache.put("old", _key(1), b"old list, finished after the swap")
    assert cache.get("new", _key(1)) is None and len(cache) == 0


def test_a_filter_in_another_order_or_with_repeats_is_the_same_list() -> None:
    assert ListKey.of(1, 3, 5, True, ["Drama", "Comedy", "Drama"], 0) == ListKey.of(
        1, 3, 5, True, ["Comedy", "Drama"], 0
    )
    assert ListKey.of(1, 3, 5, True, [], 0) == ListKey.of(1, 3, 5, True, None, 0)
    assert ListKey.of(1, 3, 5, True, None, 0) != ListKey.of(1, 4, 5, True, None, 0)


@pytest.fixture(scope="module")
def clients(
    tiny_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, TestClient]]:
    """Two services on one ratings database and model: one caching lists, one computing every list afresh."""
    url = f"sqlite:///{tmp_path_factory.mktemp('list-cache') / 'ratings.db'}"

    def app(cache_mb: float) -> TestClient:
        return TestClient(
            create_app(
                Settings(
                    model_dir=tiny_bundle_dir,
                    api_key=KEY,
                    database_url=url,
                    device="cpu",
                    list_cache_mb=cache_mb,
                )
            )
        )

    with app(8) as cached, app(0) as fresh:
        yield cached, fresh


@pytest.fixture(scope="module")
def catalogue(tiny_bundle_dir: Path) -> tuple[list[int], list[int], list[str]]:
    bundle = load_bundle(tiny_bundle_dir)
    users = [int(u) for u in bundle.user_ids.ids[:6]] + [7_700_001, 7_700_002]  # trained and new people
    movies = [int(m) for m in bundle.movie_ids.ids[:40]]
    return users, movies, Recommender(bundle).genre_names[:5]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_cached_list_equals_the_freshly_computed_one(
    clients: tuple[TestClient, TestClient],
    catalogue: tuple[list[int], list[int], list[str]],
    data: st.DataObject,
) -> None:
    """Over users, filters and writes (through either service): what the caching service answers, the first
    time and again, is what a service without the cache computes for the same model, version and query."""
    cached, fresh = clients
    users, movies, genres = catalogue
    user = data.draw(st.sampled_from(users))
    write = data.draw(st.sampled_from(["none", "put", "delete"]))
    writer = data.draw(st.sampled_from([cached, fresh]))
    movie = data.draw(st.sampled_from(movies))
    if write == "put":
        rating = data.draw(st.sampled_from([0.5, 2.0, 3.5, 5.0]))
        assert (
            writer.put(f"/users/{user}/ratings/{movie}", json={"rating": rating}, headers=AUTH).status_code
            == 200
        )
    elif write == "delete":
        assert writer.delete(f"/users/{user}/ratings/{movie}", headers=AUTH).status_code in (204, 404)
    params: dict[str, object] = {
        "k": data.draw(st.integers(1, 20)),
        "exclude_rated": data.draw(st.booleans()),
        "min_ratings": data.draw(st.sampled_from([0, 0, 3])),
    }
    chosen = data.draw(st.lists(st.sampled_from(genres), max_size=3))
    if chosen:
        params["genre"] = chosen
    first = cached.get(f"/recommend/{user}", params=params)
    again = cached.get(f"/recommend/{user}", params=params)
    expected = fresh.get(f"/recommend/{user}", params=params)
    assert first.status_code == again.status_code == expected.status_code == 200
    assert first.json() == again.json() == expected.json()


def test_repeat_lists_are_hits_and_a_write_is_a_miss(
    clients: tuple[TestClient, TestClient], catalogue
) -> None:
    cached, fresh = clients
    users, movies, _ = catalogue
    user, cache = users[1], cached.app.state.list_cache  # type: ignore[attr-defined]
    cached.get(f"/recommend/{user}?k=7")
    hits, misses = cache.hits, cache.misses
    assert cached.get(f"/recommend/{user}?k=7").status_code == 200
    assert (cache.hits, cache.misses) == (hits + 1, misses)
    assert (
        fresh.put(f"/users/{user}/ratings/{movies[5]}", json={"rating": 5}, headers=AUTH).status_code == 200
    )
    after = cached.get(f"/recommend/{user}?k=7")  # written through the other process: a new version, a miss
    assert (cache.hits, cache.misses) == (hits + 1, misses + 1)
    assert after.json() == fresh.get(f"/recommend/{user}?k=7").json()
    metrics = cached.get("/metrics").text
    assert f'movierec_list_cache{{measure="hits"}} {float(cache.hits)}' in metrics
    assert 'movierec_list_cache{measure="bytes"}' in metrics


def test_nothing_is_kept_while_the_database_cannot_say_the_version(tiny_bundle_dir: Path) -> None:
    unreachable = "postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=1"
    settings_ = Settings(model_dir=tiny_bundle_dir, device="cpu", database_url=unreachable)  # type: ignore[arg-type]
    with TestClient(create_app(settings_)) as client:
        user = int(load_bundle(tiny_bundle_dir).user_ids.ids[0])
        for _ in range(2):
            assert client.get(f"/recommend/{user}").json()["user_vector"] == "trained"
        assert len(client.app.state.list_cache) == 0  # type: ignore[attr-defined]
