"""JSON bodies parsed by pydantic-core straight from bytes, for the hottest POST routes.

FastAPI's body parameters decode JSON in Python and then validate; `model_validate_json` does both in Rust.
Errors are raised as FastAPI's `RequestValidationError` (locations under "body"), so clients see the same 422s,
and `json_body_openapi` keeps the request body in the OpenAPI document.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


async def parse_json_body(request: Request, model: type[Model]) -> Model:
    """The request body validated as `model`; 422 otherwise (`invalid_json` for bytes that are not JSON text).

    Like FastAPI's own body parameters: a missing body or a non-JSON content type is a 422 on "body".
    """
    return validate_json_body(await read_json_body(request), model)


async def read_json_body(request: Request) -> bytes:
    """The request's body bytes, once they are known to be a JSON body in UTF-8 (else a 422)."""
    raw = await request.body()
    if not raw:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise RequestValidationError(
            [
                {
                    "type": "model_attributes_type",
                    "loc": ("body",),
                    "msg": f"expected a JSON body, got {content_type}",
                }
            ]
        )
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": "request body is not UTF-8 text"}]
        ) from exc
    return raw


def validate_json_body(raw: bytes, model: type[Model]) -> Model:
    """`raw` validated as `model` by pydantic-core, errors as FastAPI's 422 (locations under "body")."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from exc


def json_body_openapi(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` declaring `model` as the required JSON request body (registered by `register_schemas`)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
        }
    }


def register_schemas(openapi: dict[str, Any], *models: type[BaseModel]) -> dict[str, Any]:
    """Add the JSON schemas of `models` (and what they reference) to an OpenAPI document's components."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas.setdefault(model.__name__, schema)
    return openapi
