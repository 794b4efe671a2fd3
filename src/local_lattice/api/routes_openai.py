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

from local_lattice.admission import Waiter
from local_lattice.admission.tickets import Grant
from local_lattice.api.sse import SSEResponse, queued_sse, sse_bytes
from local_lattice.errors import InvalidRequest
from local_lattice.gateway import Gateway, Routed
from local_lattice.observability.timing import Timings
from local_lattice.protocol.openai import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from local_lattice.types import BackendRequest, ChunkStream, Endpoint, StreamChunk

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
    context = gateway.admission.context(body.get("queue"), request.headers)
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
        waiter = gateway.admission.enter(routed.model.id, routed.model.backend, context)
        return await stream_response(routed, backend_request, waiter, timings, headers, state, path)
    async with gateway.admission.admit(routed.model.id, routed.model.backend, context) as grant:
        timings.queue = grant.waited
        mark = time.perf_counter()
        answer = await routed.backend.complete(backend_request)
        timings.upstream = time.perf_counter() - mark
    headers.update(timings.headers())
    timings.log(path=path, status=200, request_id=state["request_id"], model=routed.routed_to)
    return Response(answer.content, media_type=JSON, headers=headers)


async def stream_response(
    routed: Routed,
    backend_request: BackendRequest,
    waiter: Waiter,
    timings: Timings,
    headers: dict[str, str],
    state: dict[str, Any],
    path: str,
) -> SSEResponse:
    """Open the backend stream once admitted; the slot is held until the SSE response ends (done or
    disconnected). A call that must wait starts the response at once and shows its queue position."""
    mark = time.perf_counter()

    async def start(grant: Grant) -> tuple[StreamChunk | None, ChunkStream]:
        nonlocal mark
        timings.queue = grant.waited
        mark = time.perf_counter()
        stream = routed.backend.stream(backend_request)
        try:
            return await stream.__anext__(), stream
        except StopAsyncIteration:
            return None, stream
        except BaseException:
            await stream.aclose()
            raise

    def closed(disconnected: bool) -> None:
        waiter.close()
        timings.upstream = time.perf_counter() - mark
        timings.log(
            path=path, status=499 if disconnected else 200, request_id=state["request_id"], model=routed.routed_to
        )

    if not waiter.granted:
        headers.update(timings.headers())
        return SSEResponse(queued_sse(waiter, start), headers, on_close=closed)
    try:
        first, stream = await start(Grant(waiter.ticket.id, 0.0))
    except BaseException:
        waiter.close()
        raise
    timings.upstream = time.perf_counter() - mark
    headers.update(timings.headers())
    return SSEResponse(sse_bytes(first, stream), headers, on_close=closed)


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
        {"status": "ok" if ok else "unavailable", "backends": backends, "admission": gateway.admission.snapshot()},
        status=200 if ok else 503,
    )
