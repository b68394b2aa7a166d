"""Bad input: every malformed or out-of-range request has one defined 4xx status, an error code and a reason.

`test_api.py` holds the basic client errors of each endpoint; this module walks the full list of the
reliability issue (wrong types, negative or huge ids, extreme k, empty or oversized batches, bodies over the
size limit, invalid JSON, unknown genres, NaN/inf and duplicate fold-in ratings) and checks that none of them
reaches a 5xx or an error body other than `{"detail", "code"}`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.openapi import QUERY_MAX_LENGTHS
from app.schemas import MAX_GENRE_CHARS, MAX_GENRE_FILTER, MAX_RUN_ID_CHARS
from app.settings import Settings
from app.web_schemas import MAX_QUERY_CHARS
from movierec.artifacts import Bundle, load_bundle
from movierec.recommender import Recommender

MAX_K, MAX_BATCH, MAX_FOLD_IN, MAX_BODY = 20, 50, 30, 4096
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def client(tiny_bundle_dir: Path) -> Iterator[TestClient]:
    settings = Settings(
        model_dir=tiny_bundle_dir,
        max_k=MAX_K,
        max_batch=MAX_BATCH,
        max_fold_in_ratings=MAX_FOLD_IN,
        max_body_bytes=MAX_BODY,
        device="cpu",
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def bundle(tiny_bundle_dir: Path) -> Bundle:
    return load_bundle(tiny_bundle_dir)


def _error(response: Any, status: int, code: str, *fragments: str) -> dict[str, str]:
    """The response is `status` with the JSON error body of `code`, and its detail names each fragment."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"detail", "code"}, body
    assert body["code"] == code, body
    for fragment in fragments:
        assert fragment in body["detail"], (fragment, body["detail"])
    return body


# ---- wrong types and out-of-range ids ------------------------------------------------------------------------

BIG = 2**53  # one above the largest id the schema accepts (ids stay exact in every JSON client)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"user_id": "1", "movie_id": 1}, "user_id"),  # numeric string: ids are strict integers
        (
            {"user_id": 1.5, "movie_id": 1},
            "user_id",
        ),  # a fraction (1.0 is an integer in JSON Schema: accepted)
        ({"user_id": True, "movie_id": 1}, "user_id"),  # bool is not an id
        ({"user_id": None, "movie_id": 1}, "user_id is null"),  # null is not "absent"
        ({"user_id": [1], "movie_id": 1}, "user_id"),
        ({"user_id": 1, "movie_id": 0}, "movie_id"),
        ({"user_id": 1, "movie_id": -1}, "movie_id"),
        ({"user_id": BIG, "movie_id": 1}, "user_id"),
        ({"user_id": 1, "movie_id": 1, "strict": "maybe"}, "strict"),
        ({"user_id": 1, "movie_id": 1, "extra": 1}, "extra"),  # unknown fields are refused, not ignored
        ({"user_id": 1, "movie_id": 1, "instances": [{"user_id": 1, "movie_id": 1}]}, "either"),
        ({"instances": [{"user_id": 1}]}, "instances.0.movie_id"),
        ({"instances": {"user_id": 1, "movie_id": 1}}, "instances"),
        ({"instances": None}, "body"),
    ],
)
def test_predict_wrong_types_and_ranges_are_422(client: TestClient, payload: dict, field: str) -> None:
    _error(client.post("/predict", json=payload), 422, "validation_error", field)


@pytest.mark.parametrize("raw_body", ["[]", "1", '"text"', "null"])
def test_predict_non_object_body_is_422(client: TestClient, raw_body: str) -> None:
    _error(client.post("/predict", content=raw_body, headers=JSON), 422, "validation_error")


@pytest.mark.parametrize(
    "path",
    [
        "/recommend/0",
        "/recommend/-5",
        f"/recommend/{BIG}",
        f"/recommend/{10**40}",
        "/recommend/1.5",
        "/movies/0",
        f"/movies/{BIG}",
        "/movies/-1/similar",
        "/movies/abc/similar",
    ],
)
def test_path_ids_out_of_range_or_not_integers_are_422(client: TestClient, path: str) -> None:
    _error(client.get(path), 422, "validation_error")


def test_huge_but_valid_ids_are_unknown_not_errors(client: TestClient) -> None:
    """The largest accepted id is a valid request: a fallback prediction, a cold-start list, or 404 when strict."""
    top = BIG - 1
    body = client.post("/predict", json={"user_id": top, "movie_id": top}).json()
    assert body["fallback"] and not body["user_known"] and not body["movie_known"]
    assert client.get(f"/recommend/{top}").json()["strategy"] == "cold_start"
    _error(
        client.post("/predict", json={"user_id": top, "movie_id": top, "strict": True}), 404, "unknown_user"
    )
    _error(client.get(f"/movies/{top}"), 404, "unknown_movie", str(top))
    _error(client.get(f"/movies/{top}/similar"), 404, "unknown_movie")


# ---- k, limits and batch sizes -------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, -1])
def test_k_below_one_is_422(client: TestClient, bundle: Bundle, k: int) -> None:
    movie = int(bundle.movie_ids.ids[0])
    _error(client.get(f"/recommend/1?k={k}"), 422, "validation_error", "k")
    _error(client.get(f"/movies/{movie}/similar?k={k}"), 422, "validation_error", "k")
    _error(client.get(f"/movies/bias-ranking?limit={k}"), 422, "validation_error", "limit")
    fold_in = {"ratings": [{"movie_id": movie, "rating": 4}], "k": k}
    _error(client.post("/recommend", json=fold_in), 422, "validation_error", "k")


@pytest.mark.parametrize("k", [MAX_K + 1, 10**9, 10**30])
def test_k_above_the_configured_maximum_is_422(client: TestClient, bundle: Bundle, k: int) -> None:
    movie = int(bundle.movie_ids.ids[0])
    _error(client.get(f"/recommend/1?k={k}"), 422, "limit_exceeded", "k", str(MAX_K))
    _error(client.get(f"/movies/{movie}/similar?k={k}"), 422, "limit_exceeded", "k")
    _error(client.get(f"/movies/bias-ranking?limit={k}"), 422, "limit_exceeded", "limit")
    fold_in = {"ratings": [{"movie_id": movie, "rating": 4}], "k": k}
    _error(client.post("/recommend", json=fold_in), 422, "limit_exceeded", "k")


def test_k_at_the_maximum_is_served(client: TestClient) -> None:
    # User 1 of the tiny data rated every movie, so rated movies stay in.
    assert len(client.get(f"/recommend/1?k={MAX_K}&exclude_rated=false").json()["items"]) == MAX_K


def test_other_integer_parameters_out_of_range_are_422(client: TestClient, bundle: Bundle) -> None:
    _error(client.get("/recommend/1?min_ratings=-1"), 422, "validation_error", "min_ratings")
    _error(client.get(f"/recommend/1?min_ratings={2**31}"), 422, "validation_error", "min_ratings")
    _error(client.get("/movies/bias-ranking?most_rated=0"), 422, "validation_error", "most_rated")
    _error(client.get("/movies/bias-ranking?order=sideways"), 422, "validation_error", "order")
    _error(client.get("/recommend/1?exclude_rated=perhaps"), 422, "validation_error", "exclude_rated")
    fold_in = {"ratings": [{"movie_id": int(bundle.movie_ids.ids[0]), "rating": 4}], "min_ratings": -1}
    _error(client.post("/recommend", json=fold_in), 422, "validation_error", "min_ratings")


def test_min_ratings_above_every_count_gives_an_empty_list_not_an_error(
    client: TestClient, bundle: Bundle
) -> None:
    assert client.get(f"/recommend/1?min_ratings={2**31 - 1}").json()["items"] == []
    fold_in = {"ratings": [{"movie_id": int(bundle.movie_ids.ids[0]), "rating": 4}], "min_ratings": 2**31 - 1}
    assert client.post("/recommend", json=fold_in).json()["items"] == []


def test_batches_empty_at_the_limit_and_over_it(client: TestClient, bundle: Bundle) -> None:
    pair = {"user_id": int(bundle.user_ids.ids[0]), "movie_id": int(bundle.movie_ids.ids[0])}
    _error(client.post("/predict", json={"instances": []}), 422, "validation_error", "instances")
    full = client.post("/predict", json={"instances": [pair] * MAX_BATCH})
    assert full.status_code == 200 and len(full.json()["predictions"]) == MAX_BATCH
    _error(
        client.post("/predict", json={"instances": [pair] * (MAX_BATCH + 1)}),
        422,
        "limit_exceeded",
        "instances",
    )


def test_fold_in_with_too_many_ratings_is_422(client: TestClient, bundle: Bundle) -> None:
    ratings = [{"movie_id": int(m), "rating": 3} for m in bundle.movie_ids.ids[: MAX_FOLD_IN + 1]]
    _error(client.post("/recommend", json={"ratings": ratings}), 422, "limit_exceeded", "ratings")


# ---- size limit and malformed bodies -------------------------------------------------------------------------


def test_body_over_the_size_limit_is_413_by_content_length(client: TestClient) -> None:
    body = b'{"instances": [' + b'{"user_id": 1, "movie_id": 1},' * 200 + b'{"user_id": 1, "movie_id": 1}]}'
    assert len(body) > MAX_BODY
    _error(client.post("/predict", content=body, headers=JSON), 413, "body_too_large", str(MAX_BODY))
    _error(client.post("/recommend", content=body, headers=JSON), 413, "body_too_large")


def test_streamed_body_over_the_size_limit_is_413(client: TestClient) -> None:
    """Chunked bodies carry no Content-Length: the limit is enforced while reading."""

    def chunks() -> Iterator[bytes]:
        yield b'{"instances": ['
        for _ in range(400):
            yield b'{"user_id": 1, "movie_id": 1},'
        yield b'{"user_id": 1, "movie_id": 1}]}'

    _error(client.post("/predict", content=chunks(), headers=JSON), 413, "body_too_large")


def test_body_just_under_the_limit_is_accepted(client: TestClient, bundle: Bundle) -> None:
    pair = {"user_id": int(bundle.user_ids.ids[0]), "movie_id": int(bundle.movie_ids.ids[0])}
    response = client.post("/predict", json={"instances": [pair] * MAX_BATCH})
    assert len(response.request.content) < MAX_BODY and response.status_code == 200


@pytest.mark.parametrize(
    "raw_body",
    [
        b'{"user_id": 1, "movie_id": ',
        b"{'user_id': 1, 'movie_id': 1}",
        b"user_id=1&movie_id=1",
        b"{}}",
        b"\x00",
    ],
)
def test_invalid_json_is_422_invalid_json(client: TestClient, raw_body: bytes) -> None:
    _error(client.post("/predict", content=raw_body, headers=JSON), 422, "invalid_json")
    _error(client.post("/recommend", content=raw_body, headers=JSON), 422, "invalid_json")


def test_body_that_is_not_text_is_the_invalid_json_422_on_every_route(client: TestClient) -> None:
    """Invalid UTF-8 cannot be JSON text: the same 422 as invalid JSON, whoever parses the body."""
    for path in ("/predict", "/recommend", "/admin/reload"):
        _error(client.post(path, content=b"\xff\xfe{", headers=JSON), 422, "invalid_json")
        _error(client.post(path, content=b"{nope", headers=JSON), 422, "invalid_json")


def test_405_allows_every_method_of_the_path(client: TestClient) -> None:
    response = client.delete("/predict")
    _error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"
    assert client.put("/health").headers["allow"] == "GET, HEAD"


def test_missing_body_and_wrong_content_type_are_422(client: TestClient) -> None:
    _error(client.post("/predict"), 422, "validation_error", "body")
    _error(
        client.post(
            "/predict", content=b'{"user_id": 1, "movie_id": 1}', headers={"Content-Type": "text/plain"}
        ),
        422,
        "validation_error",
    )


def test_wrong_method_is_405_with_allow_header(client: TestClient) -> None:
    response = client.get("/predict")
    _error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"


# ---- genres --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("genre", ["NoSuchGenre", "", " ", "Comedy|Drama", "../etc"])
def test_unknown_genre_is_422_listing_the_known_ones(client: TestClient, bundle: Bundle, genre: str) -> None:
    body = _error(client.get("/recommend/1", params={"genre": genre}), 422, "unknown_genre", repr(genre))
    assert "Comedy" in body["detail"]  # the message lists what is accepted
    fold_in = {"ratings": [{"movie_id": int(bundle.movie_ids.ids[0]), "rating": 4}], "genre": [genre]}
    _error(client.post("/recommend", json=fold_in), 422, "unknown_genre")


def test_one_unknown_genre_among_known_ones_is_still_422(client: TestClient) -> None:
    _error(
        client.get("/recommend/1", params=[("genre", "Comedy"), ("genre", "Nope")]),
        422,
        "unknown_genre",
        "Nope",
    )


def test_genre_of_wrong_type_in_fold_in_is_422(client: TestClient, bundle: Bundle) -> None:
    fold_in = {"ratings": [{"movie_id": int(bundle.movie_ids.ids[0]), "rating": 4}], "genre": "Comedy"}
    _error(client.post("/recommend", json=fold_in), 422, "validation_error", "genre")


# ---- fold-in ratings -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_fold_in_nan_and_inf_ratings_are_422(client: TestClient, bundle: Bundle, token: str) -> None:
    """Python's JSON parser accepts NaN/Infinity tokens and overflows 1e999 to inf; the schema refuses them."""
    movie = int(bundle.movie_ids.ids[0])
    raw = f'{{"ratings": [{{"movie_id": {movie}, "rating": {token}}}]}}'.encode()
    _error(client.post("/recommend", content=raw, headers=JSON), 422, "validation_error", "ratings.0.rating")


@pytest.mark.parametrize("rating", [0.0, -1, 5.01, 1e300, "4", None, True])
def test_fold_in_ratings_off_the_scale_or_of_wrong_type_are_422(
    client: TestClient, bundle: Bundle, rating: object
) -> None:
    response = client.post(
        "/recommend", json={"ratings": [{"movie_id": int(bundle.movie_ids.ids[0]), "rating": rating}]}
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] in {"validation_error", "invalid_request"}


def test_fold_in_movie_rated_twice_counts_once_with_its_last_rating(
    client: TestClient, bundle: Bundle
) -> None:
    # Schema-valid, so accepted (the OpenAPI cannot say "unique by movie_id"): the last rating wins, as a
    # stored rating is replaced by the newer one.
    a, b = (int(m) for m in bundle.movie_ids.ids[:2])
    twice = [{"movie_id": a, "rating": 4}, {"movie_id": b, "rating": 1}, {"movie_id": b, "rating": 5}]
    once = [{"movie_id": a, "rating": 4}, {"movie_id": b, "rating": 5}]
    response = client.post("/recommend", json={"ratings": twice})
    assert response.status_code == 200, response.text
    assert response.json() == client.post("/recommend", json={"ratings": once}).json()
    assert response.json() != client.post("/recommend", json={"ratings": once[:1] + twice[1:2]}).json()


def test_fold_in_of_only_unknown_movies_is_the_new_user_list(client: TestClient, bundle: Bundle) -> None:
    ratings = [{"movie_id": 999_999_999, "rating": 2}] * 2
    body = client.post("/recommend", json={"ratings": ratings, "k": 5}).json()
    assert body["strategy"] == "cold_start" and body["ignored_movie_ids"] == [999_999_999]
    assert body["items"] == client.get("/recommend/999999999", params={"k": 5}).json()["items"]


def test_fold_in_rating_entries_refuse_unknown_fields(client: TestClient, bundle: Bundle) -> None:
    ratings = [{"movie_id": int(bundle.movie_ids.ids[0]), "rating": 4, "user_id": 1}]
    _error(client.post("/recommend", json={"ratings": ratings}), 422, "validation_error", "user_id")


# ---- bounded lists and strings (issue 23) --------------------------------------------------------------------


def _fold_in(bundle: Bundle, **options: Any) -> dict[str, Any]:
    return {"ratings": [{"movie_id": int(bundle.movie_ids.ids[0]), "rating": 4}], **options}


def test_genre_lists_past_their_bound_are_422_naming_the_field(client: TestClient, bundle: Bundle) -> None:
    genre = client.get("/genres").json()[0]
    for path in ("/recommend/1", "/movies"):
        assert client.get(path, params=[("genre", genre)] * MAX_GENRE_FILTER).status_code == 200
        _error(
            client.get(path, params=[("genre", genre)] * (MAX_GENRE_FILTER + 1)),
            422,
            "validation_error",
            "genre",
            str(MAX_GENRE_FILTER),
        )
    assert (
        client.post("/recommend", json=_fold_in(bundle, genre=[genre] * MAX_GENRE_FILTER)).status_code == 200
    )
    # Issue 23's request (20,000 x "Drama" there; this app's bodies are at most 4 KB) is refused before any work.
    _error(
        client.post("/recommend", json=_fold_in(bundle, genre=[genre] * 300)),
        422,
        "validation_error",
        "genre",
        str(MAX_GENRE_FILTER),
    )


def test_a_genre_given_twice_counts_once(client: TestClient, bundle: Bundle) -> None:
    first, second = client.get("/genres").json()[:2]
    once = client.post("/recommend", json=_fold_in(bundle, genre=[first, second])).json()
    spellings = [first, first.lower(), first.upper(), second, second.lower(), first]
    assert client.post("/recommend", json=_fold_in(bundle, genre=spellings)).json() == once
    query = client.get("/recommend/1", params=[("genre", g) for g in spellings]).json()
    assert query == client.get("/recommend/1", params=[("genre", first), ("genre", second)]).json()


def test_candidate_penalty_is_the_union_of_the_distinct_genres(bundle: Bundle) -> None:
    recommender = Recommender(bundle)
    names = recommender.genre_names[:3]
    expected = np.array([any(g in gs for g in names) for gs in recommender.genres])
    penalty = recommender.candidate_penalty([*names, *(n.upper() for n in names)] * 5, 0)
    assert penalty is not None and np.array_equal(np.isfinite(penalty), expected)
    enough = recommender.n_ratings >= 30
    both = recommender.candidate_penalty(names, 30)
    assert both is not None and np.array_equal(np.isfinite(both), expected & enough)
    one = recommender.candidate_penalty([names[0], names[0].lower()], 0)
    assert one is not None and not one.flags.writeable  # the shared precomputed row, never written to


@pytest.mark.parametrize(
    ("request_args", "field"),
    [
        ({"method": "GET", "url": "/recommend/1", "params": {"genre": "x" * (MAX_GENRE_CHARS + 1)}}, "genre"),
        ({"method": "GET", "url": "/movies", "params": {"q": "x" * (MAX_QUERY_CHARS + 1)}}, "q"),
        (
            {"method": "POST", "url": "/admin/reload", "json": {"run_id": "a" * (MAX_RUN_ID_CHARS + 1)}},
            "run_id",
        ),
    ],
)
def test_strings_past_their_max_length_are_422(client: TestClient, request_args: dict, field: str) -> None:
    headers = {"Authorization": "Bearer whatever"}
    response = client.request(**request_args, headers=headers)
    if request_args["url"] == "/admin/reload":
        assert response.status_code in (403, 422)  # the admin route is off in this app: 403 before the body
    else:
        _error(response, 422, "validation_error", field)


def test_every_input_array_and_string_of_the_document_is_bounded(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    components = document["components"]["schemas"]

    def unbounded(schema: dict[str, Any], where: str) -> list[str]:
        if "$ref" in schema:
            schema = components[schema["$ref"].rsplit("/", 1)[-1]]
        found = [u for branch in schema.get("anyOf", ()) for u in unbounded(branch, where)]
        if schema.get("type") == "array":
            found += [] if "maxItems" in schema else [where]
            found += unbounded(schema["items"], f"{where}[]")
        if schema.get("type") == "string" and not {"maxLength", "enum"} & set(schema):
            found.append(where)
        for name, prop in schema.get("properties", {}).items():
            found += unbounded(prop, f"{where}.{name}")
        return found

    problems = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", ()):
                problems += unbounded(parameter["schema"], f"{method} {path} {parameter['name']}")
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                problems += unbounded(body["schema"], f"{method} {path} body")
    assert problems == []
    parameters = {p["name"]: p for p in document["paths"]["/recommend/{user_id}"]["get"]["parameters"]}
    assert parameters["genre"]["schema"]["anyOf"][0]["maxItems"] == MAX_GENRE_FILTER
    assert components["FoldInRequest"]["properties"]["genre"]["maxItems"] == MAX_GENRE_FILTER


# ---- unknown query parameters --------------------------------------------------------------------------------


def _operations(client: TestClient) -> list[tuple[str, str]]:
    """(method, concrete path) of every operation of the live document, path ids 1."""
    document = client.get("/openapi.json").json()
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "1", path))
        for path, item in document["paths"].items()
        for method in item
    ]


def test_an_unknown_query_parameter_is_422_naming_it_on_every_operation(client: TestClient) -> None:
    operations = _operations(client)
    assert len(operations) > 15
    for method, path in operations:
        response = client.request(
            method, f"{path}?genres=Comedy", json={}, headers={"Authorization": "Bearer x"}
        )
        _error(response, 422, "validation_error", "unknown query parameter 'genres'")


def test_the_unknown_parameter_is_named_among_declared_ones(client: TestClient) -> None:
    body = _error(client.get("/recommend/1?k=2&genres=Comedy"), 422, "validation_error", "'genres'")
    assert "takes k, exclude_rated, genre, min_ratings" in body["detail"]  # what the route does take
    _error(client.get("/movies/1/similar?kk=3"), 422, "validation_error", "'kk'", "takes k")
    _error(client.get("/health?verbose=1"), 422, "validation_error", "'verbose'", "no query parameters")
    assert client.head("/health?verbose=1").status_code == 422  # no body on HEAD, still refused
    # Names are read as the routes read them: escapes decoded, a blank value or no `=` still a parameter.
    _error(client.get("/recommend/1?%67enres=Comedy"), 422, "validation_error", "'genres'")
    _error(client.get("/recommend/1?k=2&debug"), 422, "validation_error", "'debug'")
    _error(client.get("/recommend/1?k=2&page="), 422, "validation_error", "'page'")
    _error(client.post("/recommend?k=3", json={}), 422, "validation_error", "'k'", "no query parameters")


def test_declared_query_parameters_still_work_and_escaped_names_match(client: TestClient) -> None:
    # User 1 of the tiny data rated every movie, so rated movies stay in.
    assert len(client.get("/recommend/1?k=3&exclude_rated=false").json()["items"]) == 3
    assert len(client.get("/recommend/1?%6B=3&exclude_rated=false").json()["items"]) == 3  # "%6B" is "k"
    assert client.get("/recommend/1?").status_code == 200
    assert client.get("/movies?q=synthetic&limit=2&offset=0").status_code == 200


def test_a_wrong_method_is_405_whatever_its_query(client: TestClient) -> None:
    response = client.delete("/predict?nope=1")
    _error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"


def test_pages_outside_the_api_ignore_query_parameters(client: TestClient) -> None:
    # Links to the page may carry tracking or cache-busting parameters; the docs' OAuth2 redirect reads its own.
    assert client.get("/?utm_source=mail").status_code == 200
    assert client.get("/web/app.js?v=2").status_code == 200
    assert client.get("/docs?x=1").status_code == 200


def test_cursor_past_its_documented_length_is_422() -> None:
    from movierec.store import CURSOR_PATTERN

    longest = "9" * 16 + "_" + "9" * 16
    assert re.fullmatch(CURSOR_PATTERN, longest) and len(longest) == QUERY_MAX_LENGTHS["cursor"]
    assert not re.fullmatch(CURSOR_PATTERN, "9" * 17 + "_" + "9" * 16)
