"""The OpenAPI document of the running service: the static routes plus what this deployment enforces.

Some limits are not known when the request models are written: `MOVIEREC_MAX_K`, `MOVIEREC_MAX_BATCH` and
`MOVIEREC_MAX_FOLD_IN_RATINGS` come from the settings, the rating scale and the genres from the served model.
The routes enforce them (`app.dependencies.check_limit`, the Recommender); this module writes the same numbers
into the document, so a generated client never sends a request that its schema allows and the server refuses.
The document is rebuilt when another model is served (a reload can change the scale or the genres).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from app.body import register_schemas
from app.settings import Settings
from movierec.recommender import Recommender

Schema = dict[str, Any]

# Query parameters whose largest accepted value is a setting: parameter name -> Settings attribute.
QUERY_MAXIMA = {"k": "max_k", "limit": "max_k"}
# Query strings whose length a pattern bounds without a `maxLength` of their own: parameter name -> that bound.
# `cursor` (GET /users/{user_id}/ratings) matches movierec.store.CURSOR_PATTERN, two runs of 1-16 digits around
# an underscore, so the route refuses anything longer than 33 characters; the document says so in numbers.
QUERY_MAX_LENGTHS = {"cursor": 33}
# Body fields whose size limit is a setting: (component, property) -> (JSON Schema keyword, Settings attribute).
BODY_LIMITS = {
    ("FoldInRequest", "k"): ("maximum", "max_k"),
    ("FoldInRequest", "ratings"): ("maxItems", "max_fold_in_ratings"),
    ("PredictRequest", "instances"): ("maxItems", "max_batch"),
    # The web page's anonymous-session bodies (app/routers/session.py).
    ("SessionPredictRequest", "ratings"): ("maxItems", "max_fold_in_ratings"),
    ("SessionPredictRequest", "movie_ids"): ("maxItems", "max_batch"),
    ("ExplainRequest", "ratings"): ("maxItems", "max_fold_in_ratings"),
    ("ExplainRequest", "movie_ids"): ("maxItems", "max_k"),
}
# Parameters and body fields (component, property) that name genres of the served catalogue.
GENRE_FIELDS = {"genre"}
GENRE_COMPONENTS = (("FoldInRequest", "genre"), ("NewMovieRequest", "genres"))
# Open unless MOVIEREC_METRICS_TOKEN is set (app/auth.py `require_metrics_token`).
METRICS_PATH = "/metrics"
# Components whose `rating` property is a rating on the served model's scale.
RATING_COMPONENTS = ("RatingIn", "RatingBody")


def install_openapi(app: FastAPI, *raw_body_models: type[BaseModel]) -> None:
    """Make `app.openapi()` return the deployment's document, cached per served run.

    `raw_body_models` are the bodies that routes parse themselves (app/body.py): they are added to the
    components, since FastAPI only sees declared body parameters.
    """
    build_static = app.openapi
    cache: dict[str, Schema] = {}

    def openapi() -> Schema:
        loaded = app.state.holder.current
        key = "" if loaded is None else loaded.recommender.run_id
        if key not in cache:
            app.openapi_schema = None  # FastAPI's own cache: rebuilt once, then copied per run
            static = _document_body_errors(register_schemas(build_static(), *raw_body_models))
            recommender = None if loaded is None else loaded.recommender
            cache.clear()
            cache[key] = with_deployment_limits(static, app.state.settings, recommender)
        app.openapi_schema = cache[key]
        return cache[key]

    app.openapi = openapi  # type: ignore[method-assign]


def _document_body_errors(document: Schema) -> Schema:
    """Every operation with a body may answer 413 (app.middleware.BodySizeLimitMiddleware, over
    MOVIEREC_MAX_BODY_BYTES) and 422 (a body that is not JSON): say so wherever a route did not."""
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict) and "requestBody" in operation:
                responses = operation.setdefault("responses", {})
                responses.setdefault("413", {"description": "request body too large", **error})
                responses.setdefault("422", {"description": "request body invalid", **error})
    return document


def with_deployment_limits(document: Schema, settings: Settings, recommender: Recommender | None) -> Schema:
    """A copy of `document` with the settings' maxima and, when a model serves, its rating scale and genres."""
    document = copy.deepcopy(document)
    genres = None if recommender is None else recommender.genre_names
    for parameter in _parameters(document):
        name = parameter.get("name")
        if name in QUERY_MAXIMA:
            _value_schema(parameter["schema"])["maximum"] = getattr(settings, QUERY_MAXIMA[name])
        if name in QUERY_MAX_LENGTHS:
            _value_schema(parameter["schema"]).setdefault("maxLength", QUERY_MAX_LENGTHS[name])
        if name in GENRE_FIELDS and genres is not None:
            _value_schema(_value_schema(parameter["schema"])["items"])["enum"] = genres
    if settings.metrics_token is None:
        _drop_security(document, METRICS_PATH)
    components = document.get("components", {}).get("schemas", {})
    for (component, field), (keyword, setting) in BODY_LIMITS.items():
        if component in components:
            _value_schema(components[component]["properties"][field])[keyword] = getattr(settings, setting)
    if recommender is None:
        return document
    for component, field in GENRE_COMPONENTS:
        if component in components:
            _value_schema(components[component]["properties"][field])["items"]["enum"] = genres
    head = recommender.scorer.head
    for component in RATING_COMPONENTS:
        if component in components:
            rating = components[component]["properties"]["rating"]
            rating["minimum"], rating["maximum"] = head.min_rating, head.max_rating
    # A stored rating is also held to the steps of the model's ratings (app/routers/ratings.py `check_rating`).
    if recommender.rating_step is not None and "RatingBody" in components:
        components["RatingBody"]["properties"]["rating"]["multipleOf"] = recommender.rating_step
    return document


def _drop_security(document: Schema, path: str) -> None:
    """`path` is open in this deployment (its secret is unset): no security requirement, no 401/403."""
    for operation in document.get("paths", {}).get(path, {}).values():
        if isinstance(operation, dict):
            operation.pop("security", None)
            for status in ("401", "403"):
                operation.get("responses", {}).pop(status, None)


def _parameters(document: Schema) -> Iterator[Schema]:
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict):
                yield from operation.get("parameters", ())


def _value_schema(schema: Schema) -> Schema:
    """The non-null branch of an optional field's schema (`anyOf: [X, null]`), else the schema itself."""
    branches = [s for s in schema.get("anyOf", ()) if s.get("type") != "null"]
    return branches[0] if len(branches) == 1 else schema
