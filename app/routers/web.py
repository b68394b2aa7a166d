"""The web page at `/`: a single static page (app/web) that calls this API with same-origin, relative URLs.

No build step and nothing from a CDN: plain HTML, CSS and JavaScript shipped inside the `app` package. The
Content-Security-Policy lets the page load and fetch only from this origin, so a stray external URL fails
loudly in the browser tests instead of silently needing the internet.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.static_assets import StaticAssets

router = APIRouter(include_in_schema=False)

WEB_DIR = Path(__file__).resolve().parents[1] / "web"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
_FILES = StaticAssets(
    WEB_DIR,
    {
        "index.html": "text/html; charset=utf-8",
        "app.js": "text/javascript; charset=utf-8",
        "style.css": "text/css; charset=utf-8",
        "favicon.svg": "image/svg+xml",
    },
    headers=_HEADERS,
)


@router.get("/")
async def index(request: Request) -> Response:
    return _FILES.response(request, "index.html")


@router.get("/web/{name}")
async def web_file(request: Request, name: str) -> Response:
    return _FILES.response(request, name)
