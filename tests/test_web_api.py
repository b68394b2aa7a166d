"""The API behind the web page (issue 17) through HTTP: title search, anonymous-session predictions and
explanations, training history, the page's files and the offline /docs and /redoc."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from movierec.artifacts import load_bundle
from movierec.search import TitleIndex, normalize, title_year

ROOT = Path(__file__).resolve().parents[1]
MAX_K, MAX_BATCH = 50, 100


@pytest.fixture(scope="module")
def client(tiny_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    database = tmp_path_factory.mktemp("web-api-db") / "movierec.db"
    settings = Settings(
        model_dir=tiny_bundle_dir,
        max_k=MAX_K,
        max_batch=MAX_BATCH,
        device="cpu",
        database_url=f"sqlite:///{database}",
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def bundle(tiny_bundle_dir: Path):
    return load_bundle(tiny_bundle_dir)


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail", "code"} and body["code"] == code, body
    return body


# ---- the title index ------------------------------------------------------------------------------------

TITLES = [
    "Toy Story (1995)",
    "Story of Toys, The (2000)",
    "Toy Story 2 (1999)",
    "Godfather, The (1972)",
    "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)",
    "Toys (1992)",
    "Heat (1995)",
]
COUNTS = np.array([200, 5, 120, 150, 80, 30, 90])


def _titles(index: TitleIndex, query: str, **kwargs) -> list[str]:
    return [TITLES[i] for i in index.search(query, **kwargs).movie_index]


def test_title_search_ranks_title_prefix_matches_before_word_matches_then_most_rated() -> None:
    index = TitleIndex(TITLES, COUNTS)
    # "Toy Story 2" and "Toy Story" start with the query; "Story of Toys" only has words starting with its words.
    assert _titles(index, "toy story") == [
        "Toy Story (1995)",
        "Toy Story 2 (1999)",
        "Story of Toys, The (2000)",
    ]
    assert _titles(index, "TOY") == [
        "Toy Story (1995)",
        "Toy Story 2 (1999)",
        "Toys (1992)",
        "Story of Toys, The (2000)",
    ]
    # No title starts with "story toy": every match is a word match, most-rated first.
    assert _titles(index, "story toy") == [
        "Toy Story (1995)",
        "Toy Story 2 (1999)",
        "Story of Toys, The (2000)",
    ]


def test_title_search_ignores_case_accents_punctuation_and_trailing_articles() -> None:
    index = TitleIndex(TITLES, COUNTS)
    assert _titles(index, "the godfather") == ["Godfather, The (1972)"]
    assert _titles(index, "Godfather,") == ["Godfather, The (1972)"]
    assert _titles(index, "amelie") == _titles(index, "AMÉLIE") == [TITLES[4]]
    assert _titles(index, "poulain") == [TITLES[4]]  # a word of the alternative title
    assert _titles(index, "zzz") == []
    assert normalize("  Amélie: d'Amélie!  ") == "amelie d amelie"


def test_title_search_pages_filters_and_lists_everything_for_an_empty_query() -> None:
    index = TitleIndex(TITLES, COUNTS)
    everything = _titles(index, "", limit=100)
    assert everything == [TITLES[i] for i in np.argsort(-COUNTS, kind="stable")]
    pages = [_titles(index, "", offset=offset, limit=3) for offset in (0, 3, 6)]
    assert [title for page in pages for title in page] == everything
    assert index.search("", limit=3).total == len(TITLES)
    allowed = np.array([t.startswith("Toy") for t in TITLES])
    assert _titles(index, "toy", allowed=allowed) == ["Toy Story (1995)", "Toy Story 2 (1999)", "Toys (1992)"]
    assert index.search("toy", allowed=allowed).total == 3


def test_title_year() -> None:
    assert title_year("Toy Story (1995)") == 1995
    assert title_year("Fawlty Towers (1975-1979)") == 1975
    assert title_year("Untitled") is None


# ---- GET /movies -----------------------------------------------------------------------------------------


def test_search_endpoint_pages_through_matches_without_overlap(client: TestClient, bundle) -> None:
    query = "synthetic movie 1"
    titles = bundle.catalogue["title"].tolist()
    # Titles "Synthetic Movie 1, The" and "... 10" to "... 19" start with the query; every title from the
    # 1900s also has a word starting with each query word ("19xx").
    prefix = {t for t in titles if normalize(t).startswith(query)}
    words = {
        t for t in titles if all(any(w.startswith(q) for w in normalize(t).split()) for q in query.split())
    }
    assert len(prefix) == 11 and prefix < words
    first = client.get("/movies", params={"q": query, "limit": 5}).json()
    assert first["total"] == len(words) and first["next_offset"] == 5 and len(first["items"]) == 5
    second = client.get("/movies", params={"q": query, "limit": 6, "offset": 5}).json()
    assert second["next_offset"] == 11
    top = first["items"] + second["items"]
    assert {m["title"] for m in top} == prefix  # title-prefix matches first
    counts = [m["n_ratings"] for m in top]
    assert counts == sorted(counts, reverse=True)  # most-rated first within a tier
    rest = client.get("/movies", params={"q": query, "limit": MAX_K, "offset": 11}).json()
    assert {m["title"] for m in rest["items"]} == words - prefix and rest["next_offset"] is None
    for item in top:
        assert item["year"] == title_year(item["title"])
        assert set(item) == {"movie_id", "title", "genres", "year", "n_ratings", "mean_rating"}


def test_search_endpoint_matches_the_moved_article_and_filters_by_genre(client: TestClient) -> None:
    body = client.get("/movies", params={"q": "the synthetic movie 7", "limit": 50}).json()
    assert {m["title"].split(",")[0] for m in body["items"]} == {"Synthetic Movie 7"} | {
        f"Synthetic Movie {j}" for j in range(70, 80)
    }
    comedies = client.get("/movies", params=[("genre", "comedy"), ("limit", "50")]).json()
    assert comedies["total"] > 0 and all("Comedy" in m["genres"] for m in comedies["items"])


def test_search_endpoint_refuses_bad_parameters(client: TestClient) -> None:
    _error(client.get("/movies", params={"limit": MAX_K + 1}), 422, "limit_exceeded")
    _error(client.get("/movies", params={"limit": 0}), 422, "validation_error")
    _error(client.get("/movies", params={"q": "x" * 201}), 422, "validation_error")
    _error(client.get("/movies", params={"genre": "Western-ish"}), 422, "unknown_genre")


def test_search_route_leaves_the_movie_routes_alone(client: TestClient, bundle) -> None:
    movie_id = int(bundle.movie_ids.ids[3])
    assert client.get(f"/movies/{movie_id}").json()["movie_id"] == movie_id
    assert client.get("/movies/bias-ranking", params={"limit": 3}).status_code == 200


# ---- POST /predict/for-ratings and POST /explain -----------------------------------------------------------


def _session(bundle, n: int = 6) -> list[dict]:
    ids = bundle.movie_ids.ids
    return [{"movie_id": int(ids[i]), "rating": [5.0, 4.5, 1.0, 3.5, 2.0, 4.0][i % 6]} for i in range(n)]


def test_session_predictions_match_the_fold_in_recommendations(client: TestClient, bundle) -> None:
    ratings = _session(bundle)
    recommended = client.post("/recommend", json={"ratings": ratings, "k": 5}).json()["items"]
    movie_ids = [m["movie_id"] for m in recommended]
    body = client.post("/predict/for-ratings", json={"ratings": ratings, "movie_ids": movie_ids}).json()
    assert [p["movie_id"] for p in body["predictions"]] == movie_ids
    predicted = [p["predicted_rating"] for p in body["predictions"]]
    np.testing.assert_allclose(predicted, [m["predicted_rating"] for m in recommended], atol=2e-4)
    assert body["ignored_movie_ids"] == []


def test_session_predictions_follow_the_ratings(client: TestClient, bundle) -> None:
    ratings = _session(bundle)
    target = int(bundle.movie_ids.ids[-1])
    lows = [{**r, "rating": 0.5} for r in ratings]
    highs = [{**r, "rating": 5.0} for r in ratings]
    low = client.post("/predict/for-ratings", json={"ratings": lows, "movie_ids": [target]}).json()
    high = client.post("/predict/for-ratings", json={"ratings": highs, "movie_ids": [target]}).json()
    assert high["predictions"][0]["predicted_rating"] > low["predictions"][0]["predicted_rating"] + 0.5


def test_session_predictions_report_unknown_rated_movies_and_refuse_bad_input(
    client: TestClient, bundle
) -> None:
    ratings = [*_session(bundle, 3), {"movie_id": 999_999, "rating": 4.0}]
    target = int(bundle.movie_ids.ids[10])
    body = client.post("/predict/for-ratings", json={"ratings": ratings, "movie_ids": [target]}).json()
    assert body["ignored_movie_ids"] == [999_999]
    body = client.post("/predict/for-ratings", json={"ratings": [ratings[-1]], "movie_ids": [target]}).json()
    assert body["ignored_movie_ids"] == [999_999] and 0.5 <= body["predictions"][0]["predicted_rating"] <= 5
    _error(
        client.post("/predict/for-ratings", json={"ratings": ratings, "movie_ids": [999_999]}),
        404,
        "unknown_movie",
    )
    bad = [{"movie_id": target, "rating": 7.5}]
    _error(
        client.post("/predict/for-ratings", json={"ratings": bad, "movie_ids": [target]}),
        422,
        "invalid_request",
    )
    many = [target] * (MAX_BATCH + 1)
    _error(
        client.post("/predict/for-ratings", json={"ratings": ratings, "movie_ids": many}),
        422,
        "limit_exceeded",
    )
    _error(
        client.post("/predict/for-ratings", json={"ratings": [], "movie_ids": [target]}),
        422,
        "validation_error",
    )


def test_explanations_are_the_rated_movies_closest_in_the_embedding(client: TestClient, bundle) -> None:
    ratings = _session(bundle)
    rated_idx = np.arange(len(ratings))
    targets = [int(bundle.movie_ids.ids[i]) for i in (20, 30, 40, 2)]
    body = client.post("/explain", json={"ratings": ratings, "movie_ids": targets, "n": 2}).json()
    assert [e["movie_id"] for e in body["items"]] == targets
    factors = bundle.arrays["movie_factors"].astype(np.float64)
    unit = factors / np.linalg.norm(factors, axis=1, keepdims=True)
    rating_of = {r["movie_id"]: r["rating"] for r in ratings}
    for explanation in body["items"]:
        t = bundle.movie_ids.index(explanation["movie_id"])
        sims = unit[rated_idx] @ unit[t]
        sims[rated_idx == t] = -np.inf  # a rated movie is never its own reason
        expected = [i for i in np.argsort(-sims)[:2] if sims[i] > 0]
        assert [r["movie_id"] for r in explanation["because"]] == [
            int(bundle.movie_ids.ids[i]) for i in expected
        ]
        for reason, i in zip(explanation["because"], expected, strict=True):
            assert reason["rating"] == rating_of[reason["movie_id"]]
            assert reason["similarity"] == pytest.approx(sims[i], abs=1e-3)
            assert reason["title"]
    assert explanation["movie_id"] not in [r["movie_id"] for r in body["items"][-1]["because"]]


def test_explain_refuses_bad_input(client: TestClient, bundle) -> None:
    ratings = _session(bundle, 3)
    target = int(bundle.movie_ids.ids[10])
    _error(client.post("/explain", json={"ratings": ratings, "movie_ids": [999_999]}), 404, "unknown_movie")
    _error(
        client.post("/explain", json={"ratings": ratings, "movie_ids": [target], "n": 11}),
        422,
        "validation_error",
    )
    many = [target] * (MAX_K + 1)
    _error(client.post("/explain", json={"ratings": ratings, "movie_ids": many}), 422, "limit_exceeded")


# ---- GET /model/history -------------------------------------------------------------------------------------


def test_model_history_serves_the_manifest_learning_curves(client: TestClient, bundle) -> None:
    body = client.get("/model/history").json()
    recorded = bundle.manifest.history
    assert body["run_id"] == bundle.manifest.run_id
    assert set(body["history"]) == set(recorded) and {"rmse", "val_rmse"} <= set(body["history"])
    for name, values in recorded.items():
        np.testing.assert_allclose(body["history"][name], values)
    assert body["epochs_chosen"] == bundle.manifest.metrics["epochs"]


# ---- OpenAPI --------------------------------------------------------------------------------------------------


def test_openapi_documents_the_page_endpoints_and_their_limits(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert {"/movies", "/predict/for-ratings", "/explain", "/model/history"} <= set(doc["paths"])
    params = {p["name"]: p for p in doc["paths"]["/movies"]["get"]["parameters"]}
    assert "MOVIEREC_MAX_K" in params["limit"]["description"]
    assert params["q"]["schema"]["maxLength"] == 200
    assert not {"/", "/docs", "/redoc"} & set(doc["paths"])


# ---- the page and the docs, offline -----------------------------------------------------------------------

_ASSET_URLS = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']""")


def _asset_urls(html: str) -> list[str]:
    return [a or b for a, b in _ASSET_URLS.findall(html)]


@pytest.mark.parametrize(
    ("page", "needed"),
    [
        ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png", "openapi.json"}),
        ("/redoc", {"redoc.standalone.js", "favicon.png", "openapi.json"}),
        ("/", {"app.js", "style.css", "favicon.svg"}),
    ],
)
def test_pages_reference_only_same_origin_assets_that_are_served(
    client: TestClient, page: str, needed: set
) -> None:
    response = client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    base = f"http://testserver{page}"
    urls = [u for u in _asset_urls(response.text) if not u.startswith("#")]
    assert needed <= {urlsplit(u).path.rsplit("/", 1)[-1] for u in urls}, urls
    for url in urls:
        absolute = urljoin(base, url)
        assert urlsplit(absolute).netloc == "testserver", f"{page} loads {url} from elsewhere"
        assert client.get(absolute).status_code == 200, absolute
    assert "cdn." not in response.text and "fonts.googleapis" not in response.text


def test_docs_assets_are_cacheable_and_nothing_else_is_reachable(client: TestClient) -> None:
    response = client.get("/docs/assets/swagger-ui.css")
    assert response.headers["content-type"].startswith("text/css")
    again = client.get("/docs/assets/swagger-ui.css", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and not again.content
    for bundle in ("swagger-ui-bundle.js", "redoc.standalone.js"):
        assert b"https://cdn." not in client.get(f"/docs/assets/{bundle}").content, bundle
    _error(client.get("/docs/assets/core.py"), 404, "not_found")
    _error(client.get("/web/..%2Fmain.py"), 404, "not_found")
    assert client.get("/docs/oauth2-redirect").status_code == 200


def test_the_page_is_served_with_a_same_origin_content_security_policy(client: TestClient) -> None:
    response = client.get("/")
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert client.get("/web/app.js").headers["content-type"].startswith("text/javascript")
    # Relative URLs only: the page works behind a proxy that serves the API under a path prefix.
    assert not re.search(r"""(?:src|href)=["']/""", response.text)
    script = client.get("/web/app.js").text
    assert not re.search(r"""(?:fetch|api)\(\s*[`"']/""", script) and "http://" not in script.replace(
        "http://www.w3.org/2000/svg", ""
    )


def test_package_data_ships_every_web_file() -> None:
    """The wheel (and so the Docker image) must carry app/web: pyproject's package-data covers each file."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["app"]
    files = [p.relative_to(ROOT / "app").as_posix() for p in (ROOT / "app/web").iterdir() if p.is_file()]
    assert files and all(any(fnmatch(f, pattern) for pattern in patterns) for f in files), (files, patterns)
