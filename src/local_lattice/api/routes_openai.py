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

from local_lattice.api.route_table import UPSTREAM_ERRORS, RouteSpec
from local_lattice.api.sse import SSEResponse, sse_bytes
from local_lattice.errors import InvalidRequest
from local_lattice.gateway import Gateway
from local_lattice.observability.timing import Timings
from local_lattice.protocol.openai import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from local_lattice.protocol.responses import ChatCompletion, EmbeddingList, Health, ModelList, TextCompletion
from local_lattice.security.inputs import decode_json
from local_lattice.types import BackendRequest, Endpoint, StreamChunk
from local_lattice.usage import ensure_usage, wants_usage

GATEWAY_FIELDS = ("queue", "swarm")
JSON = "application/json"


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type=JSON, headers=headers)


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def read_json(request: Request) -> dict[str, Any]:
    """The JSON object body; already decoded and size-checked by the guard on ``generates`` routes."""
    state = request.scope["state"]
    data = state.pop("json") if "json" in state else decode_json(await request.body())
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
    mark = time.perf_counter()
    routed = await gateway.route(endpoint, body.get("model"))
    timings.resolve = time.perf_counter() - mark
    for field in GATEWAY_FIELDS:
        body.pop(field, None)
    backend_request = BackendRequest(endpoint, routed.model.id, body)
    headers = {"X-Model-Routed-To": routed.routed_to}
    if routed.resolution.explanation:
        headers["X-Model-Resolution"] = routed.resolution.explanation
    path = request.url.path
    if endpoint != "embeddings" and body.get("stream"):
        mark = time.perf_counter()
        stream = routed.backend.stream(backend_request)
        if wants_usage(body):
            stream = ensure_usage(stream, body, routed.model.id)
        try:
            first: StreamChunk | None = await stream.__anext__()
        except StopAsyncIteration:
            first = None
        except BaseException:
            await stream.aclose()
            raise
        timings.upstream = time.perf_counter() - mark
        headers.update(timings.headers())

        def closed(disconnected: bool) -> None:
            timings.upstream = time.perf_counter() - mark
            timings.log(
                path=path,
                status=499 if disconnected else 200,
                request_id=state["request_id"],
                model=routed.routed_to,
            )

        def count(chunk: StreamChunk) -> None:
            if chunk.usage is not None:
                state["usage"] = chunk.usage  # read by the guard to correct the rate limiter's estimate

        return SSEResponse(sse_bytes(first, stream, count), headers, on_close=closed)
    mark = time.perf_counter()
    answer = await routed.backend.complete(backend_request)
    state["usage"] = answer.usage
    timings.upstream = time.perf_counter() - mark
    headers.update(timings.headers())
    timings.log(path=path, status=200, request_id=state["request_id"], model=routed.routed_to)
    return Response(answer.content, media_type=JSON, headers=headers)


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


ROUTES = (
    RouteSpec("/healthz", healthz, summary="Gateway and backend health", public=True, response_model=Health,
              errors=(503,), tags=("meta",)),
    RouteSpec("/v1/models", list_models, summary="Models the backends really serve", response_model=ModelList,
              errors=(502, 503), tags=("openai",)),
    RouteSpec("/v1/chat/completions", chat_completions, ("POST",), "Chat completion (streams with stream: true)",
              ChatCompletionRequest, ChatCompletion, streams=True, generates=True, errors=UPSTREAM_ERRORS,
              tags=("openai",)),
    RouteSpec("/v1/completions", completions, ("POST",), "Text completion (streams with stream: true)",
              CompletionRequest, TextCompletion, streams=True, generates=True, errors=UPSTREAM_ERRORS,
              tags=("openai",)),
    RouteSpec("/v1/embeddings", embeddings, ("POST",), "Embeddings", EmbeddingRequest, EmbeddingList,
              generates=True, errors=UPSTREAM_ERRORS, tags=("openai",)),
)  # fmt: skip
