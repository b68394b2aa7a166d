"""The routers behind the web page (issue 17), included together by `create_app`: title search, the anonymous
session's predictions and explanations, the training history, the local API docs and the page itself."""

from __future__ import annotations

from fastapi import APIRouter

from app.routers import docs, model_history, search, session, web

ROUTERS: tuple[APIRouter, ...] = (
    search.router,
    session.router,
    model_history.router,
    docs.router,
    web.router,
)
