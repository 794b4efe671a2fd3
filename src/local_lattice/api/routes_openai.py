"""OpenAI-compatible routes: ``/v1/models``, ``/v1/chat/completions``, ``/v1/completions``,
``/v1/embeddings`` and ``/healthz``. HTTP only: parse, call the gateway, write the answer."""

from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from local_lattice import original_state
from local_lattice.api import dispatch, routes_swarm
from local_lattice.api.dispatch import gateway_of
from local_lattice.api.payload import JSONBytes, json_response, read_json, validate
from local_lattice.api.route_table import UPSTREAM_ERRORS, RouteSpec
from local_lattice.api.sse import SSEResponse, chat_failure, sse_bytes
from local_lattice.backends.base import Backend
from local_lattice.protocol.openai import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from local_lattice.protocol.outputs import ChatCompletion, EmbeddingList, Health, ModelList, TextCompletion
from local_lattice.protocol.swarm import DEPRECATED, META_MODELS
from local_lattice.types import BackendHealth, Endpoint

_MODELS: dict[str, type[BaseModel]] = {
    "chat": ChatCompletionRequest,
    "completions": CompletionRequest,
    "embeddings": EmbeddingRequest,
}


async def generate(request: Request, endpoint: Endpoint) -> Response | SSEResponse:
    record = dispatch.begin(request, endpoint)
    body = await read_json(request)
    validate(_MODELS[endpoint], body)
    # In grab mode a meta-model name is one more name for the grabbed model, as in the original.
    if endpoint == "chat" and routes_swarm.is_swarm_model(body.get("model")) and not grab_mode(request):
        return await routes_swarm.chat(request, body)
    prepared = await dispatch.prepare(request, record, endpoint, body)
    if endpoint != "embeddings" and body.get("stream"):
        return await dispatch.stream_reply(prepared, sse_bytes, chat_failure)
    answer = await dispatch.complete(prepared)
    prepared.finish(200)
    return JSONBytes(answer.content, headers=prepared.headers)


def grab_mode(request: Request) -> bool:
    return bool(gateway_of(request).config.engines.grab_model)


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
            **(m.listing or {}),  # what the backend's own list says (LM Studio's publisher, state …)
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


HEALTH_TIMEOUT = 3.0  # a hung upstream must not hang the health check


async def _health(backend: Backend) -> BackendHealth:
    try:
        return await asyncio.wait_for(backend.health(), HEALTH_TIMEOUT)
    except TimeoutError:
        return BackendHealth(ok=False, detail=f"no answer within {HEALTH_TIMEOUT:.0f}s")


async def healthz(request: Request) -> Response:
    """Public: 200 while a backend answers, else 503. A caller without a valid key (when keys are
    configured) learns only that; with one it gets each backend's state, admission and the
    original's full state (models, roles, policies, swarm settings) beside ours."""
    gateway = gateway_of(request)
    names = list(gateway.backends)
    results = await asyncio.gather(*(_health(gateway.backends[n]) for n in names))
    ok = any(r.ok for r in results)
    status = "ok" if ok else "unavailable"
    if not request.scope["state"].get("authenticated", False):
        return json_response({"status": status, "ok": ok}, status=200 if ok else 503)
    backends = {n: {"ok": r.ok, "detail": r.detail, **r.extra} for n, r in zip(names, results, strict=True)}
    aliases = {name: (intent, name in DEPRECATED) for name, (intent, _) in META_MODELS.items()}
    state = original_state.health_state(gateway, await gateway.inventory.snapshot(), ok, aliases)
    admission = {**gateway.admission.snapshot(), **original_state.admission_state(gateway)}
    body = {"status": status, "backends": backends, **state, "admission": admission}
    if gateway.shared_state is not None:
        body["state"] = gateway.shared_state()
    return json_response(body, status=200 if ok else 503)


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
