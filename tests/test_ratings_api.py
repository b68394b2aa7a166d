"""The /users rating endpoints through HTTP: auth, validation, pages, forget, export, immediate effect on reads,
concurrency through uvicorn, two API processes on one database, and a database outage."""

from __future__ import annotations

import random
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from postgres_server import private_postgres, why_unavailable
from servers import running_uvicorn
from store_helpers import BACKENDS, database_url

from app.main import create_app
from app.settings import Settings
from movierec.artifacts import load_bundle
from movierec.store import RatingStore

KEY = "test-api-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module", params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with database_url(request.param, tmp_path_factory.mktemp("ratings-db")) as url:
        yield url


@pytest.fixture(scope="module")
def client(tiny_bundle_dir: Path, db_url: str) -> Iterator[TestClient]:
    settings = Settings(
        model_dir=tiny_bundle_dir,
        api_key=KEY,
        admin_token="test-admin-token",
        database_url=db_url,
        device="cpu",
        max_k=50,
        user_cache_size=64,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def bundle(tiny_bundle_dir: Path):
    return load_bundle(tiny_bundle_dir)


def _error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    return body


def _busy_user(bundle, skip: int = 0) -> int:
    """The (skip+1)-th most active user who still has at least 20 unrated movies."""
    counts = np.diff(bundle.user_ratings.indptr)
    eligible = np.where(counts <= len(bundle.movie_ids) - 20, counts, -1)
    return int(bundle.user_ids.ids[np.argsort(-eligible, kind="stable")[skip]])


def _unrated_movie(bundle, user: int) -> int:
    rated = set(bundle.user_ratings.movies_of(bundle.user_ids.index(user)).tolist())
    return int(next(bundle.movie_ids.ids[i] for i in range(len(bundle.movie_ids)) if i not in rated))


# ---- auth ------------------------------------------------------------------------------------------------


def test_without_a_configured_key_the_endpoints_say_how_to_enable_them(
    tiny_bundle_dir: Path, tmp_path
) -> None:
    settings = Settings(model_dir=tiny_bundle_dir, database_url=f"sqlite:///{tmp_path}/x.db", device="cpu")
    with TestClient(create_app(settings)) as test_client:
        body = _error(
            test_client.put("/users/1/ratings/10", json={"rating": 4}, headers=AUTH), 403, "writes_disabled"
        )
        assert "MOVIEREC_API_KEY" in body["detail"]
        _error(test_client.get("/users/1/ratings"), 403, "writes_disabled")


def test_a_missing_or_wrong_key_is_401_with_a_challenge(client: TestClient) -> None:
    response = client.get("/users/1/ratings")
    _error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    wrong = client.get("/users/1/ratings", headers={"Authorization": "Bearer nope"})
    _error(wrong, 401, "unauthorized")
    assert wrong.headers["www-authenticate"] == "Bearer"
    _error(client.get("/users/1/export", headers={"Authorization": "Basic eDp5"}), 401, "unauthorized")
    # A person's ratings are never readable without the key, the admin token included.
    _error(client.delete("/users/1", headers={"Authorization": "Bearer test-admin-token"}), 403, "forbidden")


# ---- validation ------------------------------------------------------------------------------------------


def test_ratings_are_checked_against_the_scale_its_steps_and_the_catalogue(
    client: TestClient, bundle
) -> None:
    movie = int(bundle.movie_ids.ids[0])
    _error(client.put(f"/users/1/ratings/{movie}", json={"rating": 7}, headers=AUTH), 422, "invalid_request")
    _error(client.put(f"/users/1/ratings/{movie}", json={"rating": 0}, headers=AUTH), 422, "invalid_request")
    body = _error(
        client.put(f"/users/1/ratings/{movie}", json={"rating": 4.3}, headers=AUTH), 422, "invalid_request"
    )
    assert "0.5" in body["detail"]
    _error(
        client.put(f"/users/1/ratings/{movie}", json={"rating": "4"}, headers=AUTH), 422, "validation_error"
    )
    _error(client.put(f"/users/1/ratings/{movie}", json={}, headers=AUTH), 422, "validation_error")
    _error(client.put("/users/1/ratings/999999", json={"rating": 4}, headers=AUTH), 404, "unknown_movie")
    _error(client.put(f"/users/0/ratings/{movie}", json={"rating": 4}, headers=AUTH), 422, "validation_error")
    _error(client.get("/users/1/ratings?limit=51", headers=AUTH), 422, "limit_exceeded")
    _error(client.get("/users/1/ratings?cursor=%%%", headers=AUTH), 422, "validation_error")
    # Any cursor of the documented form is served (a position past everything is an empty last page).
    empty = client.get("/users/1/ratings?cursor=0_0", headers=AUTH).json()
    assert empty["items"] == [] and empty["next_cursor"] is None


# ---- the endpoints ---------------------------------------------------------------------------------------


def test_put_is_idempotent_and_pages_come_newest_first(client: TestClient, bundle) -> None:
    user = 7_000_001
    movies = [int(m) for m in bundle.movie_ids.ids[:7]]
    for movie in movies:
        response = client.put(f"/users/{user}/ratings/{movie}", json={"rating": 3.5}, headers=AUTH)
        assert response.status_code == 200, response.text
        assert response.json()["rating"] == 3.5 and response.json()["movie_id"] == movie
    again = client.put(f"/users/{user}/ratings/{movies[2]}", json={"rating": 5}, headers=AUTH)
    assert again.status_code == 200
    items, cursor = [], None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = client.get(f"/users/{user}/ratings", params=params, headers=AUTH).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [i["movie_id"] for i in items] == [movies[2], *reversed([m for m in movies if m != movies[2]])]
    assert items[0]["rating"] == 5.0 and set(items[0]) == {"movie_id", "rating", "updated_at"}
    assert client.delete(f"/users/{user}/ratings/{movies[0]}", headers=AUTH).status_code == 204
    assert client.delete(f"/users/{user}/ratings/{movies[0]}", headers=AUTH).status_code == 204  # idempotent
    export = client.get(f"/users/{user}/export", headers=AUTH).json()
    assert len(export["ratings"]) == 6 and [r["movie_id"] for r in export["removed"]] == [movies[0]]
    assert export["model_ratings"] == [] and export["forgotten_at"] is None
    receipt = client.delete(f"/users/{user}", headers=AUTH).json()
    assert receipt == {"user_id": user, "deleted_ratings": 6, "forgotten": True}
    # Gone on every read of the person (schemathesis' use-after-free check), with when it happened...
    for path in (f"/users/{user}/ratings", f"/users/{user}/export"):
        gone = client.get(path, headers=AUTH)
        assert _error(gone, 404, "user_forgotten") and "forgotten at" in gone.json()["detail"]
    # ...until they write again: a new rating makes them a known person once more.
    assert (
        client.put(f"/users/{user}/ratings/{movies[1]}", json={"rating": 3}, headers=AUTH).status_code == 200
    )
    assert [i["movie_id"] for i in client.get(f"/users/{user}/ratings", headers=AUTH).json()["items"]] == [
        movies[1]
    ]
    assert client.get(f"/users/{user}/export", headers=AUTH).json()["forgotten_at"] is not None


# ---- immediate effect ------------------------------------------------------------------------------------


def test_a_write_is_reflected_by_the_next_recommend_and_predict(client: TestClient, bundle) -> None:
    user = _busy_user(bundle)
    movie = _unrated_movie(bundle, user)
    before = client.get(f"/recommend/{user}", params={"k": 50}).json()
    assert before["user_vector"] == "trained"
    pred_before = client.post("/predict", json={"user_id": user, "movie_id": movie}).json()
    assert pred_before["user_vector"] == "trained"
    top = before["items"][0]["movie_id"]
    assert client.put(f"/users/{user}/ratings/{top}", json={"rating": 0.5}, headers=AUTH).status_code == 200
    after = client.get(f"/recommend/{user}", params={"k": 50}).json()
    assert after["user_vector"] == "fold_in" and after["strategy"] == "personalized"
    assert top not in [i["movie_id"] for i in after["items"]]  # now rated, so excluded
    pred = client.post("/predict", json={"user_id": user, "movie_id": top}).json()
    assert pred["user_vector"] == "fold_in" and pred["user_known"] and not pred["fallback"]
    # Rating it lowest pulls its prediction down; rating it highest pushes it up.
    assert client.put(f"/users/{user}/ratings/{top}", json={"rating": 5}, headers=AUTH).status_code == 200
    high = client.post("/predict", json={"user_id": user, "movie_id": top}).json()
    assert high["predicted_rating"] > pred["predicted_rating"]
    batch = client.post(
        "/predict",
        json={
            "instances": [
                {"user_id": user, "movie_id": top},
                {"user_id": _busy_user(bundle, 1), "movie_id": top},
            ]
        },
    ).json()["predictions"]
    assert [p["user_vector"] for p in batch] == ["fold_in", "trained"]
    assert batch[0]["predicted_rating"] == high["predicted_rating"]


def test_an_unknown_user_becomes_known_with_their_first_rating(client: TestClient, bundle) -> None:
    user, movie = 8_000_001, int(bundle.movie_ids.ids[3])
    cold = client.get(f"/recommend/{user}").json()
    assert cold["strategy"] == "cold_start" and cold["user_vector"] == "none"
    assert client.post("/predict", json={"user_id": user, "movie_id": movie}).json()["fallback"]
    assert client.put(f"/users/{user}/ratings/{movie}", json={"rating": 4.5}, headers=AUTH).status_code == 200
    warm = client.get(f"/recommend/{user}").json()
    assert warm["strategy"] == "personalized" and warm["user_vector"] == "fold_in"
    pred = client.post("/predict?strict=true", json={"user_id": user, "movie_id": movie}).json()
    assert pred["user_known"] and not pred["fallback"]


def test_forgetting_a_trained_user_drops_their_training_history(client: TestClient, bundle) -> None:
    user = _busy_user(bundle, 2)
    assert client.get(f"/users/{user}/export", headers=AUTH).json()["model_ratings"]
    assert client.delete(f"/users/{user}", headers=AUTH).status_code == 200
    after = client.get(f"/recommend/{user}").json()
    assert after["strategy"] == "cold_start" and after["user_vector"] == "none"
    # The export is gone with them: the training history is no longer served either...
    _error(client.get(f"/users/{user}/export", headers=AUTH), 404, "user_forgotten")
    # ...not even once they rate again: only what they wrote since is theirs.
    movie = _unrated_movie(bundle, user)
    assert client.put(f"/users/{user}/ratings/{movie}", json={"rating": 4}, headers=AUTH).status_code == 200
    export = client.get(f"/users/{user}/export", headers=AUTH).json()
    assert export["model_ratings"] == [] and [r["movie_id"] for r in export["ratings"]] == [movie]


# ---- operations and documentation ------------------------------------------------------------------------


def test_metrics_ready_and_openapi(client: TestClient) -> None:
    assert client.get("/ready").json()["database"] == "ok"
    metrics = client.get("/metrics").text
    assert 'movierec_ratings_written_total{operation="put"}' in metrics
    assert "movierec_rating_write_duration_seconds_bucket" in metrics
    assert "movierec_user_vector_cache_entries" in metrics
    document = client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["ApiKey"]["description"],
    }
    for path, method in [
        ("/users/{user_id}/ratings/{movie_id}", "put"),
        ("/users/{user_id}/ratings/{movie_id}", "delete"),
        ("/users/{user_id}/ratings", "get"),
        ("/users/{user_id}", "delete"),
        ("/users/{user_id}/export", "get"),
    ]:
        operation = document["paths"][path][method]
        assert operation["security"] == [{"ApiKey": []}]
        assert {"401", "403", "503"} <= set(operation["responses"])
    limit = next(
        p for p in document["paths"]["/users/{user_id}/ratings"]["get"]["parameters"] if p["name"] == "limit"
    )
    assert limit["schema"]["anyOf"][0]["maximum"] == 50
    put = document["paths"]["/users/{user_id}/ratings/{movie_id}"]["put"]
    assert put["requestBody"]["content"]["application/json"]["examples"]["half star"]["value"] == {
        "rating": 4.5
    }


# ---- outage ----------------------------------------------------------------------------------------------


def test_database_down_writes_503_reads_serve_and_writes_recover(
    tiny_bundle_dir: Path, tmp_path, bundle
) -> None:
    """SQLite stand-in for an outage: the database directory disappears and pooled connections drop."""
    directory = tmp_path / "db"
    settings = Settings(
        model_dir=tiny_bundle_dir, api_key=KEY, database_url=f"sqlite:///{directory}/m.db", device="cpu"
    )
    user, movie = _busy_user(bundle), int(bundle.movie_ids.ids[1])
    with TestClient(create_app(settings)) as test_client:
        assert (
            test_client.put(f"/users/{user}/ratings/{movie}", json={"rating": 4}, headers=AUTH).status_code
            == 200
        )
        store: RatingStore = test_client.app.state.store
        shutil.move(directory, tmp_path / "away")
        store.engine.dispose()
        down = test_client.put(f"/users/{user}/ratings/{movie}", json={"rating": 3}, headers=AUTH)
        body = _error(down, 503, "database_unavailable")
        assert "retry" in body["detail"] and down.headers["retry-after"] == "5"
        _error(test_client.get(f"/users/{user}/ratings", headers=AUTH), 503, "database_unavailable")
        reads = test_client.get(f"/recommend/{user}")
        assert reads.status_code == 200 and reads.json()["user_vector"] == "trained"
        assert test_client.post("/predict", json={"user_id": user, "movie_id": movie}).status_code == 200
        ready = test_client.get("/ready")
        assert ready.status_code == 200 and ready.json()["database"] == "unavailable"
        shutil.move(tmp_path / "away", directory)
        back = test_client.put(f"/users/{user}/ratings/{movie}", json={"rating": 3}, headers=AUTH)
        assert back.status_code == 200, back.text
        assert test_client.get(f"/recommend/{user}").json()["user_vector"] == "fold_in"
        assert test_client.get("/ready").json()["database"] == "ok"


@pytest.mark.slow
def test_a_real_postgresql_outage_through_uvicorn(tiny_bundle_dir: Path, bundle) -> None:
    """A private PostgreSQL server (stopping it cannot hurt other tests) behind a uvicorn API: stopped, writes
    answer 503 at once while the model keeps serving; started again, the next write succeeds and counts, with
    no restart of the API."""
    reason = why_unavailable()
    if reason is not None:
        pytest.skip(reason)
    user = _busy_user(bundle, 5)
    with private_postgres() as server:
        env = {
            "MOVIEREC_MODEL_DIR": str(tiny_bundle_dir),
            "MOVIEREC_API_KEY": KEY,
            "MOVIEREC_DATABASE_URL": server.url,
        }
        with running_uvicorn(env, ready_timeout=90) as base, httpx.Client(base_url=base, timeout=60) as http:
            first = http.get(f"/recommend/{user}", params={"k": 5}).json()["items"][0]["movie_id"]
            assert (
                http.put(f"/users/{user}/ratings/{first}", json={"rating": 4}, headers=AUTH).status_code
                == 200
            )
            assert http.get("/ready").json()["database"] == "ok"

            server.stop("fast")
            started = time.perf_counter()
            down = http.put(f"/users/{user}/ratings/{first}", json={"rating": 1}, headers=AUTH)
            took = time.perf_counter() - started
            body = _error(down, 503, "database_unavailable")
            assert "retry in" in body["detail"] and down.headers["retry-after"] == "5"
            assert took < 3, f"a write took {took:.1f} s to fail with the database down"
            _error(http.get(f"/users/{user}/ratings", headers=AUTH), 503, "database_unavailable")
            listed = http.get(f"/recommend/{user}")
            assert listed.status_code == 200 and listed.json()["user_vector"] == "trained"
            predicted = http.post("/predict", json={"user_id": user, "movie_id": first})
            assert predicted.status_code == 200 and predicted.json()["user_vector"] == "trained"
            started = time.perf_counter()
            ready = http.get("/ready")
            assert ready.status_code == 200 and ready.json()["database"] == "unavailable"
            assert time.perf_counter() - started < 3

            server.start()
            listed = http.get(f"/recommend/{user}", params={"k": 5}).json()
            assert listed["user_vector"] == "fold_in"  # the write before the outage counts again
            later = listed["items"][0]["movie_id"]
            back = http.put(f"/users/{user}/ratings/{later}", json={"rating": 5}, headers=AUTH)
            assert back.status_code == 200, back.text
            after = http.get(f"/recommend/{user}", params={"k": 50}).json()
            assert after["user_vector"] == "fold_in" and later not in [i["movie_id"] for i in after["items"]]
            stored = http.get(f"/users/{user}/ratings", headers=AUTH).json()["items"]
            # The write refused during the outage left nothing behind: `first` keeps its rating of 4.
            assert {(i["movie_id"], i["rating"]) for i in stored} == {(first, 4.0), (later, 5.0)}
            assert http.get("/ready").json()["database"] == "ok"


# ---- through uvicorn -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_64_concurrent_clients_through_uvicorn_leave_exactly_the_right_rows(
    tiny_bundle_dir: Path, db_url: str, bundle
) -> None:
    """64 client threads, 10,000 PUTs over 400 pairs in 10 rounds: one row per pair holding the value of the last
    round that wrote it, and each user's version equal to the number of their writes.

    Within a round every write of a pair carries that round's value, so many clients write the same pair at once
    (the upsert race) and the final value is still known; the rounds (a barrier between them) make replacing
    values part of the race too, not only first inserts.
    """
    rounds, per_round, clients = 10, 1_000, 64
    rng = random.Random(1)
    movies = [int(m) for m in bundle.movie_ids.ids[:20]]
    users = list(range(9_100_001, 9_100_021))
    plan = [[(rng.choice(users), rng.choice(movies)) for _ in range(per_round)] for _ in range(rounds)]

    def value(user: int, movie: int, round_: int) -> float:
        return 0.5 + ((user + movie * 3 + round_ * 7) % 10) * 0.5

    env = {
        "MOVIEREC_MODEL_DIR": str(tiny_bundle_dir),
        "MOVIEREC_API_KEY": KEY,
        "MOVIEREC_DATABASE_URL": db_url,
    }
    errors: list[str] = []
    barrier = threading.Barrier(clients)
    with running_uvicorn(env, ready_timeout=90) as base:

        def client_thread(i: int) -> None:
            try:
                with httpx.Client(base_url=base, headers=AUTH, timeout=60) as http:
                    for round_, writes in enumerate(plan):
                        for user, movie in writes[i::clients]:
                            response = http.put(
                                f"/users/{user}/ratings/{movie}", json={"rating": value(user, movie, round_)}
                            )
                            if response.status_code != 200:
                                errors.append(f"{response.status_code} {response.text}")
                        barrier.wait(timeout=120)
            except Exception as exc:  # a failed client must fail the test, not leave the others waiting
                errors.append(repr(exc))
                barrier.abort()

        threads = [threading.Thread(target=client_thread, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        metrics = httpx.get(f"{base}/metrics").text
    assert not errors, errors[:3]
    assert f'movierec_ratings_written_total{{operation="put"}} {float(rounds * per_round)}' in metrics
    final = {(u, m): value(u, m, r) for r, writes in enumerate(plan) for u, m in writes}
    store = RatingStore(db_url)
    try:
        rows = [(u, m, r) for u, m, r, _ in store.all_ratings() if u in set(users)]
        assert len(rows) == len(final)  # none lost, none duplicated
        assert {(u, m): r for u, m, r in rows} == final
        per_user = Counter(u for writes in plan for u, _ in writes)
        assert sum(per_user.values()) == rounds * per_round
        assert {u: store.user_state(u).version for u in per_user} == dict(per_user)
    finally:
        store.close()


@pytest.mark.slow
def test_a_write_through_one_process_is_read_by_another_at_once(
    tiny_bundle_dir: Path, db_url: str, bundle
) -> None:
    user = _busy_user(bundle, 3)
    movie = _unrated_movie(bundle, user)
    env = {
        "MOVIEREC_MODEL_DIR": str(tiny_bundle_dir),
        "MOVIEREC_API_KEY": KEY,
        "MOVIEREC_DATABASE_URL": db_url,
    }
    with running_uvicorn(env, ready_timeout=90) as writer, running_uvicorn(env, ready_timeout=90) as reader:
        pair = {"user_id": user, "movie_id": movie}
        first = httpx.post(f"{reader}/predict", json=pair).json()
        assert first["user_vector"] == "trained"
        for rating in (0.5, 5.0, 0.5):
            put = httpx.put(f"{writer}/users/{user}/ratings/{movie}", json={"rating": rating}, headers=AUTH)
            assert put.status_code == 200
            # The reader cached this user's vector at the previous version: its next request must see the write.
            seen = httpx.post(f"{reader}/predict", json=pair).json()
            assert seen["user_vector"] == "fold_in"
            own = httpx.post(f"{writer}/predict", json=pair).json()
            assert seen["predicted_rating"] == own["predicted_rating"]
            listed = httpx.get(f"{reader}/recommend/{user}", params={"k": 50}).json()
            assert movie not in [i["movie_id"] for i in listed["items"]]
        assert httpx.delete(f"{reader}/users/{user}", headers=AUTH).status_code == 200
        assert httpx.get(f"{writer}/recommend/{user}").json()["strategy"] == "cold_start"


def test_a_postgresql_statement_held_past_the_timeout_answers_503(
    tiny_bundle_dir: Path, tmp_path, bundle
) -> None:
    """A server that accepts connections but does not answer (here: another session holds an exclusive lock on
    the ratings table) fails the write with 503 after MOVIEREC_DATABASE_STATEMENT_TIMEOUT_MS, instead of holding
    the request; released, the next write succeeds."""
    import psycopg

    with database_url("postgresql", tmp_path) as url:
        settings = Settings(
            model_dir=tiny_bundle_dir,
            api_key=KEY,
            database_url=url,
            device="cpu",
            database_statement_timeout_ms=300,
        )
        user, movie = _busy_user(bundle, 7), int(bundle.movie_ids.ids[2])
        with TestClient(create_app(settings)) as test_client:
            path = f"/users/{user}/ratings/{movie}"
            assert test_client.put(path, json={"rating": 4}, headers=AUTH).status_code == 200
            with psycopg.connect(url) as blocker:
                blocker.execute("LOCK TABLE ratings IN ACCESS EXCLUSIVE MODE")
                started = time.perf_counter()
                held = test_client.put(path, json={"rating": 2}, headers=AUTH)
                waited = time.perf_counter() - started
                _error(held, 503, "database_unavailable")
                assert 0.3 <= waited < 5, waited  # it waited for the timeout, and no longer
                assert test_client.get(f"/recommend/{user}").status_code == 200
            # The blocker's transaction ended with its connection: the lock is gone.
            assert test_client.put(path, json={"rating": 2}, headers=AUTH).status_code == 200
            page = test_client.get(f"/users/{user}/ratings", headers=AUTH).json()
            assert [(item["movie_id"], item["rating"]) for item in page["items"]] == [(movie, 2.0)]


def test_a_strict_batch_names_the_unknown_instance_among_users_with_stored_ratings(
    client: TestClient, bundle
) -> None:
    """Users with stored ratings are resolved apart from the others; the 404 still names the right index."""
    writer, movie = 8_000_101, int(bundle.movie_ids.ids[4])
    assert client.put(f"/users/{writer}/ratings/{movie}", json={"rating": 4}, headers=AUTH).status_code == 200
    instances = [
        {"user_id": writer, "movie_id": movie},
        {"user_id": int(bundle.user_ids.ids[0]), "movie_id": movie},
        {"user_id": 9_999_999, "movie_id": movie},
    ]
    body = _error(client.post("/predict?strict=true", json={"instances": instances}), 404, "unknown_user")
    assert "instances[2]" in body["detail"] and "9999999" in body["detail"], body
