"""OpenAI-compatible routes: ``/v1/models``, ``/v1/chat/completions``, ``/v1/completions``,
``/v1/embeddings`` and ``/healthz``. HTTP only: parse, call the gateway, write the answer."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from local_lattice.api.sse import SSEResponse, sse_bytes
from local_lattice.dispatch import dispatch
from local_lattice.errors import InvalidRequest
from local_lattice.gateway import Gateway
from local_lattice.observability.timing import Timings
from local_lattice.protocol.openai import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from local_lattice.types import Endpoint

GATEWAY_FIELDS = ("queue", "swarm")
JSON = "application/json"


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type=JSON, headers=headers)


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def read_json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object", code="invalid_json")
    return data


def validate(model: type[BaseModel], body: dict[str, Any]) -> None:
    try:
        model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise InvalidRequest(f"{where}: {first['msg']}{more}", param=where, code="invalid_field") from None


_MODELS: dict[str, type[BaseModel]] = {
    "chat": ChatCompletionRequest,
    "completions": CompletionRequest,
    "embeddings": EmbeddingRequest,
}


async def generate(request: Request, endpoint: Endpoint) -> Response | SSEResponse:
    gateway = gateway_of(request)
    state = request.scope["state"]
    timings = Timings(state["started"])
    body = await read_json(request)
    validate(_MODELS[endpoint], body)
    for field in GATEWAY_FIELDS:
        body.pop(field, None)
    mark = time.perf_counter()
    streaming = endpoint != "embeddings" and bool(body.get("stream"))
    outcome = await dispatch(gateway, endpoint, body, stream=streaming)
    routed = outcome.routed
    timings.resolve = outcome.resolve_seconds
    timings.upstream = time.perf_counter() - mark - outcome.resolve_seconds
    headers = outcome.headers()
    headers.update(timings.headers())
    path = request.url.path
    if outcome.stream is not None:

        def closed(disconnected: bool) -> None:
            timings.upstream = time.perf_counter() - mark - outcome.resolve_seconds
            timings.log(
                path=path,
                status=499 if disconnected else 200,
                request_id=state["request_id"],
                model=routed.routed_to,
                extra=cost_field(outcome.cost_usd),
            )

        return SSEResponse(sse_bytes(outcome.first, outcome.stream), headers, on_close=closed)
    assert outcome.response is not None
    timings.log(
        path=path,
        status=200,
        request_id=state["request_id"],
        model=routed.routed_to,
        extra=cost_field(outcome.cost_usd),
    )
    return Response(outcome.response.content, media_type=JSON, headers=headers)


def cost_field(cost: float | None) -> str:
    """The log line's cost field, present only for priced backends."""
    return "" if cost is None else f" cost_usd={cost:.8f}"


async def chat_completions(request: Request) -> Response | SSEResponse:
    return await generate(request, "chat")


async def completions(request: Request) -> Response | SSEResponse:
    return await generate(request, "completions")


async def embeddings(request: Request) -> Response | SSEResponse:
    return await generate(request, "embeddings")


async def list_models(request: Request) -> Response:
    snapshot = await gateway_of(request).inventory.snapshot()
    created = int(time.time())
    data = [
        {
            "id": m.id,
            "object": "model",
            "created": created,
            "owned_by": m.backend,
            "loaded": m.loaded,
            "kind": m.kind,
        }
        for m in snapshot.models
    ]
    return json_response({"object": "list", "data": data})


async def healthz(request: Request) -> Response:
    gateway = gateway_of(request)
    names = list(gateway.backends)
    results = await asyncio.gather(*(gateway.backends[n].health() for n in names))
    backends = {n: {"ok": r.ok, "detail": r.detail, **r.extra} for n, r in zip(names, results, strict=True)}
    ok = any(r.ok for r in results)
    return json_response(
        {"status": "ok" if ok else "unavailable", "backends": backends},
        status=200 if ok else 503,
    )
