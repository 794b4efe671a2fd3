"""The OpenAPI 3.1 document served at ``/openapi.json``, generated from the route table and the
pydantic wire models, with the limits of this deployment (``max_tokens`` ceiling, ``n``) written in.

Each route appears with its request model, its success answer (JSON, and SSE when it streams), the
error envelope for every error status it may answer, and the API-key schemes unless it is public.
It is built on its first request rather than with the app: the JSON schemas of every wire model
were most of the time ``create_app`` took.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response

from local_lattice import __version__
from local_lattice.api.route_table import RouteSpec
from local_lattice.config import LimitsConfig
from local_lattice.protocol.outputs import ErrorEnvelope

REF = "#/components/schemas/{model}"
SECURITY_SCHEMES = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "Bearer": {"type": "http", "scheme": "bearer"},
}
# Before OpenAPI 3.2 the schema of a text/event-stream describes one event.
_SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {"type": "string", "description": "A chunk object as JSON, an error envelope as JSON, or [DONE]."},
        "event": {"type": "string"},
    },
}
_SSE = {"text/event-stream": {"schema": _SSE_EVENT}}
# JSON numbers past 64 bits are read as floats, which integer fields refuse: the document says so.
INT64 = (-(2**63), 2**63 - 1)


def _bound_integers(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("type") == "integer":
            node.setdefault("minimum", INT64[0])
            node.setdefault("maximum", INT64[1])
        for child in node.values():
            _bound_integers(child)
    elif isinstance(node, list):
        for child in node:
            _bound_integers(child)


def _cap_integer(schema: dict[str, Any], field: str, maximum: int) -> None:
    """Write ``maximum`` into the integer alternative of ``field`` (an ``int | None`` property)."""
    prop = schema.get("properties", {}).get(field)
    if prop is None:
        return
    for alternative in prop.get("anyOf", [prop]):
        if alternative.get("type") == "integer":
            alternative["maximum"] = min(maximum, alternative.get("maximum", maximum))


def _schemas(specs: Sequence[RouteSpec], limits: LimitsConfig) -> dict[str, Any]:
    models: list[tuple[type[BaseModel], Any]] = [(ErrorEnvelope, "serialization")]
    for spec in specs:
        if spec.request_model is not None:
            models.append((spec.request_model, "validation"))
        if spec.response_model is not None:
            models.append((spec.response_model, "serialization"))
    unique = list(dict.fromkeys(models))
    _, top = models_json_schema(unique, ref_template=REF)
    schemas: dict[str, Any] = top.get("$defs", {})
    for schema in schemas.values():
        _cap_integer(schema, "max_tokens", limits.max_tokens_limit)
        _cap_integer(schema, "max_completion_tokens", limits.max_tokens_limit)
        _cap_integer(schema, "n", limits.max_n)
    _bound_integers(schemas)
    return schemas


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _operation(spec: RouteSpec, method: str) -> dict[str, Any]:
    success: dict[str, Any] = {"description": "OK"}
    if spec.media_type != "application/json":
        success["content"] = {spec.media_type: {"schema": {"type": "string"}}}
    else:
        body_schema = _ref(spec.response_model) if spec.response_model is not None else {"type": "object"}
        success["content"] = {"application/json": {"schema": body_schema}}
    if spec.streams:
        success["content"].update(_SSE)
    if 300 <= spec.success_status < 400:
        success = {"description": "Redirect", "headers": {"Location": {"schema": {"type": "string"}}}}
    responses: dict[str, Any] = {str(spec.success_status): success}
    for status in spec.statuses():
        responses[str(status)] = {"$ref": "#/components/responses/Error"}
    op: dict[str, Any] = {
        "operationId": f"{method.lower()}_{spec.path.strip('/').replace('/', '_').replace('.', '_') or 'root'}",
        "summary": spec.summary,
        "responses": responses,
    }
    if spec.tags:
        op["tags"] = list(spec.tags)
    if spec.public:
        op["security"] = []
    if spec.request_model is not None and method in ("POST", "PUT", "PATCH"):
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(spec.request_model)}}}
    return op


_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?\}")


def _document_path(path: str) -> tuple[str, list[dict[str, Any]]]:
    """``/v1/models/{model_id:path}`` → ``/v1/models/{model_id}`` and its path parameters."""
    names = _PARAM.findall(path)
    params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names]
    return _PARAM.sub(lambda m: "{" + m.group(1) + "}", path), params


def openapi_document(specs: Iterable[RouteSpec], limits: LimitsConfig) -> dict[str, Any]:
    listed = list(specs)
    paths: dict[str, dict[str, Any]] = {}
    for spec in listed:
        path, params = _document_path(spec.path)
        for method in spec.methods:
            if method != "HEAD":
                operation = _operation(spec, method)
                if params:
                    operation["parameters"] = params
                paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Local Lattice",
            "version": __version__,
            "description": "OpenAI-compatible capability gateway. Errors are the OpenAI envelope.",
        },
        "paths": paths,
        "components": {
            "schemas": _schemas(listed, limits),
            "securitySchemes": SECURITY_SCHEMES,
            "responses": {
                "Error": {
                    "description": "An error in the OpenAI envelope",
                    "content": {"application/json": {"schema": _ref(ErrorEnvelope)}},
                }
            },
        },
        "security": [{"ApiKey": []}, {"Bearer": []}],
    }


class OpenAPIDocument:
    """The document of one app, rendered once, when first served."""

    def __init__(self, specs: Iterable[RouteSpec], limits: LimitsConfig) -> None:
        self._specs = tuple(specs)
        self._limits = limits
        self._body: bytes | None = None

    def body(self) -> bytes:
        if self._body is None:
            self._body = orjson.dumps(openapi_document(self._specs, self._limits))
        return self._body


async def openapi_json(request: Request) -> Response:
    document: OpenAPIDocument = request.app.state.openapi
    return Response(document.body(), media_type="application/json")


ROUTES = (RouteSpec("/openapi.json", openapi_json, summary="This document", public=True, tags=("meta",)),)
