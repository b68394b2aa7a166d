"""Fast JSON responses for the hot routes.

A route that returns a `Response` skips FastAPI's second validation and serialisation of the return value
against `response_model`; the hot routes build plain dicts of JSON types themselves (the schemas stay in
`response_model` for the OpenAPI document, and the fuzz tests check every response against it).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response


class FastJSONResponse(Response):
    """Compact JSON of a payload already made of JSON types."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
