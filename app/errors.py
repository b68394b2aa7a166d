"""Domain and request errors mapped to HTTP in one place: JSON `{"detail", "code"}`, never a stack trace."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.state import UnknownRunError
from movierec.errors import (
    ArtifactError,
    InvalidRequestError,
    MovieRecError,
    UnknownGenreError,
    UnknownMovieError,
    UnknownUserError,
    UnsupportedOperationError,
)

log = logging.getLogger(__name__)

STATUS_OF: dict[type[MovieRecError], int] = {
    UnknownUserError: 404,
    UnknownMovieError: 404,
    UnknownGenreError: 422,
    InvalidRequestError: 422,
    UnsupportedOperationError: 409,
    ArtifactError: 422,
}

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    422: "validation_error",
    503: "not_ready",
}


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# What FastAPI's own body parameters raise for a body they cannot decode (invalid UTF-8).
FASTAPI_BODY_PARSE_ERROR = "There was an error parsing the body"
INVALID_JSON = "request body is not valid JSON (UTF-8 text)"


class ApiError(Exception):
    """An error a route raises with its status, code and message."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


# An absolute path inside a message: its directories go, its last component stays.
_ABS_PATH = re.compile(r"(?<![\w.~])/(?:[^\s/'\"]+/)*([^\s/'\"]+)")


def public_detail(detail: str) -> str:
    """A message fit for clients: file paths reduced to their last component (which file, never where it lives)."""
    return _ABS_PATH.sub(r"\1", detail)


def error_response(
    status: int, code: str, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"detail": detail, "code": code}, status_code=status, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this request's path, found by asking the routes (`BaseRoute.matches`)
    as if the request had used each method: only on a 405, so the probing costs nothing on the hot path."""
    allowed = []
    for method in HTTP_METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.routes):
            allowed.append(method)
    return allowed


def _validation_detail(exc: RequestValidationError) -> tuple[str, str]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return "invalid_json", INVALID_JSON
    messages = [f"{_field(tuple(e.get('loc', ())))}: {e.get('msg', 'invalid')}" for e in errors[:5]]
    return "validation_error", "; ".join(messages)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every error into the JSON error body."""

    @app.exception_handler(MovieRecError)
    async def _domain(request: Request, exc: MovieRecError) -> JSONResponse:
        status = next((s for cls, s in STATUS_OF.items() if isinstance(exc, cls)), 422)
        # Artifact errors name files under the model root: the full path is logged, the client gets names.
        if isinstance(exc, ArtifactError):
            log.warning("refused artifact: %s", exc)
            return error_response(status, exc.code, public_detail(str(exc)))
        return error_response(status, exc.code, str(exc))

    @app.exception_handler(UnknownRunError)
    async def _unknown_run(request: Request, exc: UnknownRunError) -> JSONResponse:
        return error_response(404, "unknown_run", str(exc))

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        code, detail = _validation_detail(exc)
        return error_response(422, code, detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == FASTAPI_BODY_PARSE_ERROR:
            # A declared body that is not even text: the same 422 as invalid JSON on every route.
            return error_response(422, "invalid_json", INVALID_JSON)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # RFC 9110: `Allow` lists every method of the resource; Starlette names only the first route's.
            headers["Allow"] = ", ".join(allowed_methods(request))
        # Keep the exception's headers: a 401 carries its `WWW-Authenticate`.
        return error_response(
            exc.status_code, HTTP_CODES.get(exc.status_code, "http_error"), str(exc.detail), headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Logged with the trace for operators; the client gets no internals.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal server error")
