"""The service through FastAPI's test client: every endpoint, its happy path and its basic client errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from movierec.artifacts import load_bundle

TOKEN = "test-admin-token"


@pytest.fixture(scope="module")
def client(tiny_bundle_dir: Path) -> Iterator[TestClient]:
    settings = Settings(model_dir=tiny_bundle_dir, admin_token=TOKEN, max_k=50, max_batch=100, device="cpu")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def bundle(tiny_bundle_dir: Path):
    return load_bundle(tiny_bundle_dir)


def _known_user(bundle) -> int:
    # A well-trained user (many ratings) who still has at least 20 unrated movies to recommend.
    counts = np.diff(bundle.user_ratings.indptr)
    eligible = np.where(counts <= len(bundle.movie_ids) - 20, counts, -1)
    return int(bundle.user_ids.ids[int(np.argmax(eligible))])


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail", "code"}, body
    assert body["code"] == code, body
    return body


# ---- /predict --------------------------------------------------------------------------------------------


def test_predict_single_pair_is_in_scale_and_marked_known(client: TestClient, bundle) -> None:
    user, movie = int(bundle.user_ids.ids[0]), int(bundle.movie_ids.ids[0])
    body = client.post("/predict", json={"user_id": user, "movie_id": movie}).json()
    assert body["user_id"] == user and body["movie_id"] == movie
    assert 0.5 <= body["predicted_rating"] <= 5.0
    assert body["user_known"] and body["movie_known"] and not body["fallback"]


def test_predict_batch_matches_single_predictions(client: TestClient, bundle) -> None:
    pairs = [
        {"user_id": int(u), "movie_id": int(m)}
        for u, m in zip(bundle.user_ids.ids[:5], bundle.movie_ids.ids[:5], strict=True)
    ]
    batch = client.post("/predict", json={"instances": pairs}).json()["predictions"]
    singles = [client.post("/predict", json=p).json() for p in pairs]
    assert [b["predicted_rating"] for b in batch] == [s["predicted_rating"] for s in singles]


def test_predict_unknown_ids_fall_back_and_are_flagged(client: TestClient, bundle) -> None:
    movie = int(bundle.movie_ids.ids[0])
    body = client.post("/predict", json={"user_id": 999_999, "movie_id": movie}).json()
    assert body["fallback"] and not body["user_known"] and body["movie_known"]
    assert 0.5 <= body["predicted_rating"] <= 5.0


def test_predict_strict_turns_unknown_ids_into_404(client: TestClient, bundle) -> None:
    movie = int(bundle.movie_ids.ids[0])
    body = _error(
        client.post("/predict?strict=true", json={"user_id": 999_999, "movie_id": movie}), 404, "unknown_user"
    )
    assert "999999" in body["detail"]
    user = int(bundle.user_ids.ids[0])
    _error(
        client.post("/predict", json={"user_id": user, "movie_id": 888_888, "strict": True}),
        404,
        "unknown_movie",
    )


def test_predict_oversized_batch_is_422(client: TestClient) -> None:
    pairs = [{"user_id": 1, "movie_id": 1}] * 101
    body = _error(client.post("/predict", json={"instances": pairs}), 422, "limit_exceeded")
    assert "instances" in body["detail"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"user_id": "one", "movie_id": 1}, "user_id"),
        ({"user_id": -3, "movie_id": 1}, "user_id"),
        ({"user_id": 1}, "body"),
        ({"instances": []}, "instances"),
        ({"user_id": 1, "movie_id": 10**30}, "movie_id"),
    ],
)
def test_predict_malformed_payload_is_422_naming_the_field(
    client: TestClient, payload: dict, field: str
) -> None:
    body = _error(client.post("/predict", json=payload), 422, "validation_error")
    assert field in body["detail"]


# ---- /recommend --------------------------------------------------------------------------------------------


def test_recommend_known_user_is_personalized_and_excludes_rated(client: TestClient, bundle) -> None:
    user = _known_user(bundle)
    body = client.get(f"/recommend/{user}?k=5").json()
    assert body["strategy"] == "personalized" and len(body["items"]) == 5
    rated = set(bundle.movie_ids.id_of(bundle.user_ratings.movies_of(bundle.user_ids.index(user))).tolist())
    ids = [item["movie_id"] for item in body["items"]]
    assert not rated & set(ids) and len(set(ids)) == 5
    # Lists are ordered by what they were ranked by; with the default item ranker the predicted ratings
    # need not fall down the list (issue 13), without one the two orders are the same.
    rank_scores = [item["rank_score"] for item in body["items"]]
    assert rank_scores == sorted(rank_scores, reverse=True)
    if body["ranking"] == "predicted_rating":
        ratings = [item["predicted_rating"] for item in body["items"]]
        assert ratings == sorted(ratings, reverse=True)
    assert all(item["title"] for item in body["items"])


def test_recommend_include_rated_can_return_rated_movies(client: TestClient, bundle) -> None:
    user = _known_user(bundle)
    rated = set(bundle.movie_ids.id_of(bundle.user_ratings.movies_of(bundle.user_ids.index(user))).tolist())
    body = client.get(f"/recommend/{user}?k=50&exclude_rated=false").json()
    assert rated & {item["movie_id"] for item in body["items"]}


def test_recommend_differs_between_users(client: TestClient, bundle) -> None:
    lists = {
        tuple(i["movie_id"] for i in client.get(f"/recommend/{int(u)}?k=5").json()["items"])
        for u in bundle.user_ids.ids[:6]
    }
    assert len(lists) > 1


def test_recommend_unknown_user_gets_cold_start_list(client: TestClient) -> None:
    body = client.get("/recommend/987654?k=5").json()
    assert body["strategy"] == "cold_start" and len(body["items"]) == 5


def test_recommend_genre_and_min_ratings_filters(client: TestClient, bundle) -> None:
    user = _known_user(bundle)
    genre = client.get("/genres").json()[0]
    body = client.get(f"/recommend/{user}", params={"k": 5, "genre": genre.lower(), "min_ratings": 3}).json()
    assert body["items"]
    for item in body["items"]:
        assert genre in item["genres"]
        assert client.get(f"/movies/{item['movie_id']}").json()["n_ratings"] >= 3


def test_recommend_errors(client: TestClient) -> None:
    _error(client.get("/recommend/1?k=51"), 422, "limit_exceeded")
    _error(client.get("/recommend/1?k=0"), 422, "validation_error")
    _error(client.get("/recommend/abc"), 422, "validation_error")
    body = _error(client.get("/recommend/1?genre=NoSuchGenre"), 422, "unknown_genre")
    assert "NoSuchGenre" in body["detail"]


def test_recommend_parameters_behave_like_declared_query_parameters(client: TestClient, bundle) -> None:
    # app/query.py validates them as one model: the semantics FastAPI's own parameters had must hold.
    user = _known_user(bundle)
    # A repeated scalar takes its last value; names the route does not declare are ignored.
    body = client.get(f"/recommend/{user}?k=2&k=4").json()
    assert len(body["items"]) == 4
    # Repeated genres match any of them (case-insensitively).
    genres = client.get("/genres").json()[:2]
    body = client.get(
        f"/recommend/{user}", params=[("genre", genres[0].lower()), ("genre", genres[1])]
    ).json()
    assert body["items"] and all(set(genres) & set(item["genres"]) for item in body["items"])

    # Booleans accept the usual spellings, and "off" really switches the exclusion off.
    def ids(query: str) -> list[int]:
        return [item["movie_id"] for item in client.get(f"/recommend/{user}?k=20&{query}").json()["items"]]

    assert ids("exclude_rated=off") == ids("exclude_rated=false") != ids("exclude_rated=on") == ids("")
    detail = _error(client.get("/recommend/0?k=x&exclude_rated=maybe"), 422, "validation_error")["detail"]
    assert "user_id" in detail and "k:" in detail and "exclude_rated" in detail


def test_bias_ranking_parameters(client: TestClient) -> None:
    body = client.get("/movies/bias-ranking?order=asc&limit=3&most_rated=5").json()
    assert body["order"] == "asc" and body["most_rated"] == 5 and len(body["items"]) == 3
    biases = [item["bias"] for item in body["items"]]
    assert biases == sorted(biases)
    assert "order" in _error(client.get("/movies/bias-ranking?order=up"), 422, "validation_error")["detail"]
    _error(client.get("/movies/bias-ranking?limit=51"), 422, "limit_exceeded")


def test_openapi_documents_the_parameters_and_bodies_routes_parse_themselves(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    recommend = {p["name"]: p for p in paths["/recommend/{user_id}"]["get"]["parameters"]}
    assert list(recommend) == ["user_id", "k", "exclude_rated", "genre", "min_ratings"]
    assert recommend["user_id"]["in"] == "path" and recommend["user_id"]["required"]
    assert recommend["k"]["in"] == "query" and recommend["k"]["schema"]["minimum"] == 1
    assert recommend["genre"]["schema"]["anyOf"][0]["type"] == "array"
    ranking = [p["name"] for p in paths["/movies/bias-ranking"]["get"]["parameters"]]
    assert ranking == ["order", "limit", "most_rated"]
    for path in ("/predict", "/recommend"):
        body = paths[path]["post"]["requestBody"]
        assert body["required"] and "$ref" in body["content"]["application/json"]["schema"]


def test_fold_in_recommends_unrated_movies_and_reports_unknown_ones(client: TestClient, bundle) -> None:
    movies = [int(m) for m in bundle.movie_ids.ids[:4]]
    ratings = [{"movie_id": m, "rating": r} for m, r in zip(movies, [5, 4.5, 1, 2], strict=True)]
    ratings.append({"movie_id": 123_456_789, "rating": 4})
    body = client.post("/recommend", json={"ratings": ratings, "k": 5}).json()
    assert body["strategy"] == "fold_in" and len(body["items"]) == 5
    assert not set(movies) & {item["movie_id"] for item in body["items"]}
    assert body["ignored_movie_ids"] == [123_456_789]


def test_fold_in_errors(client: TestClient, bundle) -> None:
    movie = int(bundle.movie_ids.ids[0])
    _error(client.post("/recommend", json={"ratings": []}), 422, "validation_error")
    _error(
        client.post("/recommend", json={"ratings": [{"movie_id": movie, "rating": 9}]}),
        422,
        "invalid_request",
    )


# ---- /movies -----------------------------------------------------------------------------------------------


def test_bias_ranking_orders_by_learned_bias(client: TestClient) -> None:
    desc = client.get("/movies/bias-ranking?order=desc&limit=5&most_rated=30").json()["items"]
    asc = client.get("/movies/bias-ranking?order=asc&limit=5&most_rated=30").json()["items"]
    assert [m["bias"] for m in desc] == sorted((m["bias"] for m in desc), reverse=True)
    assert [m["bias"] for m in asc] == sorted(m["bias"] for m in asc)
    assert desc[0]["bias"] > asc[0]["bias"]


def test_movie_entry_and_unknown_movie(client: TestClient, bundle) -> None:
    movie = int(bundle.movie_ids.ids[0])
    body = client.get(f"/movies/{movie}").json()
    assert body["movie_id"] == movie and body["n_ratings"] >= 1 and body["bias"] is not None
    _error(client.get("/movies/777777"), 404, "unknown_movie")


def test_similar_movies_are_ranked_by_cosine_and_exclude_the_movie(client: TestClient, bundle) -> None:
    movie = int(bundle.movie_ids.ids[0])
    items = client.get(f"/movies/{movie}/similar?k=5").json()["items"]
    assert len(items) == 5 and movie not in {i["movie_id"] for i in items}
    sims = [i["similarity"] for i in items]
    assert sims == sorted(sims, reverse=True) and all(-1.0 <= s <= 1.0 for s in sims)
    _error(client.get("/movies/777777/similar"), 404, "unknown_movie")


# ---- operations --------------------------------------------------------------------------------------------


def test_health_ready_model_and_metrics(client: TestClient, bundle) -> None:
    assert client.get("/health").json()["status"] == "ok"
    ready = client.get("/ready").json()
    assert ready == {"status": "ready", "run_id": bundle.manifest.run_id, "database": "ok"}
    info = client.get("/model").json()
    assert (
        info["run_id"] == bundle.manifest.run_id and info["model_kind"] == "bias" and info["device"] == "cpu"
    )
    assert {"rmse", "mae"} <= set(info["metrics"]) and info["data"]["sha256"]
    client.get("/recommend/1")
    text = client.get("/metrics").text
    assert 'movierec_requests_total{method="GET",route="/recommend/{user_id}",status="200"}' in text
    assert f'run_id="{bundle.manifest.run_id}"' in text


def test_ready_is_503_before_a_model_is_loaded(tiny_bundle_dir: Path) -> None:
    app = create_app(Settings(model_dir=tiny_bundle_dir))
    client = TestClient(app)  # no context manager: the lifespan has not run
    _error(client.get("/ready"), 503, "not_ready")
    _error(client.get("/recommend/1"), 503, "not_ready")


def test_unknown_route_is_json_404(client: TestClient) -> None:
    _error(client.get("/nope"), 404, "not_found")


def test_body_over_the_limit_is_413(tiny_bundle_dir: Path) -> None:
    with TestClient(create_app(Settings(model_dir=tiny_bundle_dir, max_body_bytes=2048))) as small:
        pairs = [{"user_id": 1, "movie_id": 1}] * 200
        _error(small.post("/predict", json={"instances": pairs}), 413, "body_too_large")


def test_cors_is_off_unless_configured(client: TestClient, tiny_bundle_dir: Path) -> None:
    headers = {"Origin": "https://shop.example", "Access-Control-Request-Method": "GET"}
    assert "access-control-allow-origin" not in client.options("/health", headers=headers).headers
    settings = Settings(model_dir=tiny_bundle_dir, cors_origins="https://shop.example")  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as cors_client:
        response = cors_client.options("/health", headers=headers)
        assert response.headers["access-control-allow-origin"] == "https://shop.example"


# ---- /admin/reload -------------------------------------------------------------------------------------------


def test_reload_requires_the_token(client: TestClient) -> None:
    _error(client.post("/admin/reload"), 401, "unauthorized")
    _error(client.post("/admin/reload", headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")


def test_reload_is_disabled_without_a_configured_token(tiny_bundle_dir: Path) -> None:
    with TestClient(create_app(Settings(model_dir=tiny_bundle_dir))) as no_admin:
        _error(no_admin.post("/admin/reload", headers={"Authorization": "Bearer x"}), 403, "admin_disabled")


def test_reload_latest_and_unknown_run(client: TestClient, bundle) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = client.post("/admin/reload", headers=auth).json()
    assert body == {"previous_run_id": bundle.manifest.run_id, "run_id": bundle.manifest.run_id}
    _error(client.post("/admin/reload", headers=auth, json={"run_id": "no-such-run"}), 404, "unknown_run")
    _error(client.post("/admin/reload", headers=auth, json={"run_id": "../etc"}), 422, "validation_error")
