"""Pure ASGI middleware (cheaper per request than Starlette's BaseHTTPMiddleware): body limit and metrics."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import error_response

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class BodyTooLargeError(Exception):
    """A streamed request body passed the limit."""


async def _send_too_large(send: Send, max_bytes: int) -> None:
    """The 413 in the body every other error has (`app.errors.error_response`), byte for byte."""
    response = error_response(413, "body_too_large", f"request body exceeds {max_bytes} bytes")
    await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


class BodySizeLimitMiddleware:
    """Answers 413 for bodies over `max_bytes`: by Content-Length up front, or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await _send_too_large(send, self.max_bytes)
                    return
        received = 0
        exceeded = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise BodyTooLargeError
            return message

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                # FastAPI turns any failure while reading the body into its own 400: answer the 413 instead.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _send_too_large(send, self.max_bytes)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLargeError:
            if not started:
                await _send_too_large(send, self.max_bytes)


class Metrics:
    """Prometheus series of one app: requests and latency per route template, and the model run id."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "movierec_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "movierec_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.model_info = Gauge(
            "movierec_model_info",
            "The served model (value 1)",
            ["run_id", "model_kind"],
            registry=self.registry,
        )
        self.reloads = Counter("movierec_reloads_total", "Model reloads", ["outcome"], registry=self.registry)
        self.ratings_written = Counter(
            "movierec_ratings_written_total",
            "Rating writes through /users",
            ["operation"],
            registry=self.registry,
        )
        self.rating_write_latency = Histogram(
            "movierec_rating_write_duration_seconds",
            "Database time of one rating write (put, delete, forget)",
            ["operation"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.user_vector_cache = Gauge(
            "movierec_user_vector_cache_entries",
            "Re-solved user vectors held by this process",
            registry=self.registry,
        )
        self.version_mirror = Gauge(
            "movierec_version_mirror_users",
            "PostgreSQL: users whose versions this process holds (LISTEN/NOTIFY, bounded by "
            "MOVIEREC_VERSION_MIRROR_MAX_USERS); -1 while versions are read from the database per request",
            registry=self.registry,
        )
        self.list_cache = Gauge(
            "movierec_list_cache",
            "Finished GET /recommend answers held by this process: entries, bytes (bounded by "
            "MOVIEREC_LIST_CACHE_MB), and lookups that hit or missed since start",
            ["measure"],
            registry=self.registry,
        )

    def set_model(self, run_id: str, kind: str) -> None:
        self.model_info.clear()
        self.model_info.labels(run_id=run_id, model_kind=kind).set(1)


class MetricsMiddleware:
    """Times every request and labels it by route template (not raw path, so ids do not explode cardinality)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)
            self.metrics.requests.labels(method, template, str(status)).inc()
