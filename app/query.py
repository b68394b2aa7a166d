"""Path and query parameters validated as one pydantic model, for the hottest GET routes; and no route takes a
query parameter it does not declare.

FastAPI solves declared parameters one by one in Python: 150-200 µs per request for /recommend's five, more
than the model's scoring (measured by driving the ASGI app in-process). Validating one pydantic model does the
same checks in pydantic-core in about 15 µs. Errors are FastAPI's `RequestValidationError` with locations under
"path" / "query", so clients see the same 422s, and `parameters_openapi` documents the parameters from the
same model, so the OpenAPI document cannot drift from what is validated.

FastAPI and `parse_params` alike would ignore a query name nobody declared, so a typo (`?genres=Comedy`) would
quietly answer an unfiltered list. `install_query_check` makes every documented route refuse such a name with
a 422 that names it, before the route runs, from the names the route declares (what the OpenAPI document lists
for it): the dependant's query parameters of a FastAPI route, the `openapi_extra` parameters of a DirectRoute.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Iterator
from functools import cache
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.types import Receive, Scope, Send

from app.errors import error_response

Params = TypeVar("Params", bound=BaseModel)


@cache
def _query_fields(model: type[BaseModel]) -> tuple[tuple[str, bool], ...]:
    """(name, repeatable) of every field; a list-typed field collects every occurrence of its name."""
    fields = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        args = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
        repeatable = any(typing.get_origin(arg) is list for arg in args)
        fields.append((name, repeatable))
    return tuple(fields)


def parse_params(request: Request, model: type[Params]) -> Params:
    """The route's path parameters and query string validated as `model`; 422 naming the bad parameter.

    Query names the model does not declare never get here (`install_query_check` refuses them first); a scalar
    given twice takes the last.
    """
    path = request.path_params
    data: dict[str, Any] = dict(path)
    if request.scope["query_string"]:
        query = request.query_params
        for name, repeatable in _query_fields(model):
            if name in path:
                continue
            if repeatable:
                values = query.getlist(name)
                if values:
                    data[name] = values
            elif name in query:
                data[name] = query[name]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {**error, "loc": ("path" if error["loc"][0] in path else "query", *error["loc"])}
            for error in exc.errors(include_url=False)
        ]
        raise RequestValidationError(errors) from exc


def parameters_openapi(model: type[BaseModel], path: tuple[str, ...] = ()) -> dict[str, Any]:
    """`openapi_extra` declaring the fields of `model` as parameters: those named in `path` in the path, the
    rest in the query string."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema["properties"].items():
        parameter: dict[str, Any] = {
            "name": name,
            "in": "path" if name in path else "query",
            "required": name in path or name in required,
            "schema": prop,
        }
        if "description" in prop:
            parameter["description"] = prop["description"]
        parameters.append(parameter)
    return {"parameters": parameters}


# ---- undeclared query parameters -----------------------------------------------------------------------------


def undeclared_query_name(query_string: bytes, declared: frozenset[str]) -> str | None:
    """The first name in a raw query string that is not in `declared`, else None.

    Names are read as Starlette's `QueryParams` reads them (`parse_qsl`, blank values kept). A plain query
    (no `%` escapes, no `+`) is split directly: under a microsecond for /recommend's usual `k=10&genre=Comedy`.
    """
    text = query_string.decode("latin-1")
    if "%" in text or "+" in text:
        names: Iterable[str] = (name for name, _ in parse_qsl(text, keep_blank_values=True))
    else:
        names = (part.partition("=")[0] for part in text.split("&") if part)
    return next((name for name in names if name not in declared), None)


def declared_query_names(route: APIRoute) -> tuple[str, ...]:
    """The query parameters `route` declares, in the order the OpenAPI document lists them: its dependant's
    (FastAPI-solved parameters, dependencies included) and those of its `openapi_extra` (a DirectRoute parses its
    own, app/routing.py)."""
    names = list(_dependant_query_names(route.dependant))
    for parameter in (route.openapi_extra or {}).get("parameters", ()):
        if parameter.get("in") == "query":
            names.append(parameter["name"])
    return tuple(dict.fromkeys(names))


def _dependant_query_names(dependant: Dependant) -> Iterator[str]:
    for field in dependant.query_params:
        annotation = getattr(getattr(field, "field_info", None), "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):  # a query-parameter model
            yield from (info.alias or name for name, info in annotation.model_fields.items())
        else:
            yield field.alias
    for sub in dependant.dependencies:
        yield from _dependant_query_names(sub)


def install_query_check(app: FastAPI) -> None:
    """Make every route of the API (every path of the OpenAPI document) answer a query parameter it does not
    declare with 422 `validation_error` naming it, before anything else of the route runs.

    The pages and their assets (`/`, `/web/...`, `/docs`, `/redoc`, left out of the document) keep ignoring
    unknown names: links to a page may carry tracking or cache-busting parameters, and the OAuth2 redirect
    page reads its own. Call it once the routers are included.
    """
    routes = _api_routes(app)
    documented = {route.path for route in routes if route.include_in_schema}
    for route in routes:
        if route.path in documented:
            _refuse_undeclared_query(route, declared_query_names(route))


def _api_routes(app: FastAPI) -> list[APIRoute]:
    """Every `APIRoute` of the app, also those of included routers (FastAPI 0.16x keeps those in the routers
    it includes; earlier versions copy them into `app.routes`)."""
    try:
        from fastapi.routing import iter_route_contexts  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        candidates: list[Any] = list(app.routes)
    else:
        candidates = [context.original_route for context in iter_route_contexts(app.routes)]
    unique = {id(route): route for route in candidates if isinstance(route, APIRoute)}  # routes: unhashable
    return list(unique.values())


def _refuse_undeclared_query(route: APIRoute, declared_names: tuple[str, ...]) -> None:
    """Wrap `route.handle`, the one call every router makes on the route it matched (after `scope["route"]` is
    set, before the method check, dependencies and the endpoint), with the check."""
    handle = route.handle
    declared = frozenset(declared_names)
    methods = frozenset(route.methods or ())
    operation = f"{'/'.join(sorted(methods - {'HEAD'}) or methods)} {route.path}"
    takes = f"takes {', '.join(declared_names)}" if declared_names else "takes no query parameters"

    async def handle_declared_query_only(scope: Scope, receive: Receive, send: Send) -> None:
        query = scope.get("query_string")
        # A request of another method goes on to its 405 (with `Allow`), whatever its query string.
        if query and scope.get("method") in methods:
            name = undeclared_query_name(query, declared)
            if name is not None:
                detail = f"unknown query parameter {name!r} ({operation} {takes})"
                await error_response(422, "validation_error", detail)(scope, receive, send)
                return
        await handle(scope, receive, send)

    route.handle = handle_declared_query_only  # type: ignore[method-assign]
