"""A route class for the hottest endpoints: documented by FastAPI, called without its per-request machinery."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response


class DirectRoute(APIRoute):
    """An `APIRoute` whose endpoint takes only the `Request` and returns a `Response` itself.

    FastAPI still writes the OpenAPI entry from the decorator (`response_model`, `responses`, `openapi_extra`),
    but a request goes straight to the endpoint: no dependency solving and no response-model pass, which cost
    tens of µs per request on /recommend (bench/results/serving.md). Such an endpoint parses its own inputs
    (app/query.py, app/body.py), so a declared parameter would be silently ignored: construction refuses one.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        parameters = list(inspect.signature(endpoint).parameters)
        if parameters != ["request"]:
            raise TypeError(
                f"{endpoint.__name__} must take only `request` to be a DirectRoute, not {parameters}"
            )
        if not inspect.iscoroutinefunction(endpoint):
            raise TypeError(f"{endpoint.__name__} must be `async def` to be a DirectRoute")
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return handler
