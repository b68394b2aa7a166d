"""DirectRoute: documented like any FastAPI route, but refuses endpoints whose parameters it would ignore."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from starlette.responses import JSONResponse, Response

from app.routing import DirectRoute


def test_direct_route_serves_and_documents_its_endpoint() -> None:
    app = FastAPI()

    async def echo(request: Request) -> Response:
        return JSONResponse({"path": request.path_params["item"], "q": request.query_params.get("q")})

    app.router.add_api_route(
        "/items/{item}", echo, methods=["GET"], route_class_override=DirectRoute, summary="Echo"
    )
    with TestClient(app) as client:
        assert client.get("/items/7?q=x").json() == {"path": "7", "q": "x"}
        assert client.get("/openapi.json").json()["paths"]["/items/{item}"]["get"]["summary"] == "Echo"


def test_direct_route_refuses_declared_parameters_and_sync_endpoints() -> None:
    async def with_param(request: Request, k: int = 10) -> Response:
        return Response()

    def sync(request: Request) -> Response:
        return Response()

    with pytest.raises(TypeError, match="only `request`"):
        DirectRoute("/a", with_param)
    with pytest.raises(TypeError, match="async def"):
        DirectRoute("/b", sync)
