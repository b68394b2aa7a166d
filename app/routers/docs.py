"""`/docs` (Swagger UI) and `/redoc` with every script, style and icon served by the service itself.

FastAPI's own pages load their assets from a CDN and are blank without internet access; these pages load the
copies the `fastapi-offline` package ships. `create_app` turns FastAPI's pages off (`docs_url=None`,
`redoc_url=None`) and includes this router instead. Asset URLs are relative, so the pages also work behind a
proxy that serves the API under a path prefix.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.responses import HTMLResponse, Response

from app.static_assets import StaticAssets

router = APIRouter(include_in_schema=False)

ASSETS_PATH = "docs/assets"
_ASSETS = StaticAssets(
    Path(str(files("fastapi_offline") / "static")),
    {
        "swagger-ui-bundle.js": "text/javascript",
        "swagger-ui.css": "text/css",
        "redoc.standalone.js": "text/javascript",
        "favicon.png": "image/png",
    },
    # ReDoc's sidebar shows a logo from its CDN: the one request its bundle makes to the internet.
    patches={
        "redoc.standalone.js": [
            (b"https://cdn.redoc.ly/redoc/logo-mini.svg", f"{ASSETS_PATH}/favicon.png".encode()),
        ]
    },
)
# Swagger UI would otherwise send the document to validator.swagger.io for its badge.
_SWAGGER_PARAMETERS = {"validatorUrl": None}


def _openapi_url(request: Request) -> str:
    return (request.app.openapi_url or "/openapi.json").lstrip("/")


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
        oauth2_redirect_url="/docs/oauth2-redirect",
        swagger_ui_parameters={**(request.app.swagger_ui_parameters or {}), **_SWAGGER_PARAMETERS},
    )


@router.get("/docs/oauth2-redirect")
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS_PATH}/favicon.png",
        with_google_fonts=False,
    )


@router.get(f"/{ASSETS_PATH}/{{name}}")
async def docs_asset(request: Request, name: str) -> Response:
    return _ASSETS.response(request, name)
