"""The service's own log lines under uvicorn, and a start-up failure told in one line instead of a traceback.

uvicorn configures only its own loggers (`uvicorn`, `uvicorn.error`, `uvicorn.access`); the `app` and `movierec`
loggers would fall through to Python's last-resort handler, which drops INFO, so "serving <run> (<kind>)" and
the reload lines never showed. `configure_logging` gives them a handler formatted like uvicorn's lines, unless
something (a `--log-config`, a test's capture) already configured logging, so no line is ever printed twice.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SERVICE_LOGGERS = ("app", "movierec")
# Set on the app's state by the lifespan once it has logged why start-up failed.
STARTUP_EXPLAINED = "startup_failure_explained"


class _ServiceHandler(logging.StreamHandler):
    """Marks the handler this module added, so a second start-up (tests, reloads) adds none."""


def _formatter() -> logging.Formatter:
    try:
        from uvicorn.logging import DefaultFormatter
    except ImportError:  # uvicorn absent (another ASGI server): plain lines
        return logging.Formatter("%(levelname)s: %(message)s")
    return DefaultFormatter("%(levelprefix)s %(message)s")


def configure_logging(level: str) -> None:
    """Set the level of the service's loggers and, when nothing else handles them, write them to stderr."""
    root_configured = bool(logging.getLogger().handlers)
    for name in SERVICE_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level.upper())
        ours = [h for h in logger.handlers if isinstance(h, _ServiceHandler)]
        if ours or logger.handlers or root_configured:
            continue
        handler = _ServiceHandler(sys.stderr)
        handler.setFormatter(_formatter())
        logger.addHandler(handler)
        logger.propagate = False


class ExplainedStartupFailure:
    """Drops the traceback from a lifespan's start-up failure that the lifespan has already explained.

    Starlette reports a failed start-up to the server with the formatted traceback, which uvicorn prints (~40
    lines) before "Application startup failed. Exiting.". When the lifespan has logged the reason and what to
    do, the traceback only buries that line; the exception still propagates (uvicorn exits non-zero, and
    in-process clients such as TestClient still raise it).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        application: Any = scope.get("app")

        async def send_explained(message: Message) -> None:
            state = getattr(application, "state", None)
            if message["type"] == "lifespan.startup.failed" and getattr(state, STARTUP_EXPLAINED, False):
                message = {**message, "message": ""}
            await send(message)

        await self.app(scope, receive, send_explained)
