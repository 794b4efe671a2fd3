"""Running one model call for a route: route the body, call the backend, time each phase.

Shared by every route that ends in a single backend call (chat, completions, embeddings, the
Responses API …) so routing, timing and logging happen the same way everywhere.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from local_lattice.api.sse import SSEResponse
from local_lattice.gateway import Gateway, Routed
from local_lattice.observability.timing import Timings
from local_lattice.types import BackendResponse, ChunkStream, Endpoint, StreamChunk
from local_lattice.usage import ensure_usage, wants_usage

GATEWAY_FIELDS = ("queue", "swarm")


@dataclass(slots=True)
class Prepared:
    """A request routed to one backend, with its headers and timings so far."""

    request: Request
    gateway: Gateway
    routed: Routed
    endpoint: Endpoint
    body: dict[str, Any]
    timings: Timings
    headers: dict[str, str]
    upstream_started: float = 0.0

    def log(self, status: int) -> None:
        state = self.request.scope["state"]
        self.timings.log(
            path=self.request.scope["path"], status=status, request_id=state["request_id"], model=self.routed.routed_to
        )


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def prepare(request: Request, endpoint: Endpoint, body: dict[str, Any]) -> Prepared:
    timings = Timings(request.scope["state"]["started"])
    mark = time.perf_counter()
    gateway = gateway_of(request)
    routed = await gateway.route(endpoint, body.get("model"), body=body, headers=request.headers)
    timings.resolve = time.perf_counter() - mark
    for field in GATEWAY_FIELDS:
        body.pop(field, None)
    return Prepared(request, gateway, routed, endpoint, body, timings, {})


def _routing_headers(prepared: Prepared) -> None:
    """Set after the call: failing over may have moved the request to another candidate."""
    routed = prepared.routed
    prepared.headers["X-Model-Routed-To"] = routed.routed_to
    if routed.resolution.explanation:
        prepared.headers["X-Model-Resolution"] = routed.resolution.explanation
    prepared.headers.update(prepared.timings.headers())


async def complete(prepared: Prepared) -> BackendResponse:
    mark = time.perf_counter()
    prepared.routed, answer = await prepared.gateway.complete(prepared.routed, prepared.endpoint, prepared.body)
    prepared.timings.upstream = time.perf_counter() - mark
    _routing_headers(prepared)
    return answer


async def open_stream(prepared: Prepared) -> tuple[StreamChunk | None, ChunkStream]:
    """Start the backend's stream and wait for its first chunk, so failures before the first byte
    still get a plain error status."""
    prepared.upstream_started = mark = time.perf_counter()
    body = prepared.body
    prepared.routed, first, stream = await prepared.gateway.stream(prepared.routed, prepared.endpoint, body)
    if wants_usage(body):
        stream = ensure_usage(stream, body, prepared.routed.model.id, first)
    prepared.timings.upstream = time.perf_counter() - mark
    _routing_headers(prepared)
    return first, stream


def stream_response(prepared: Prepared, frames: AsyncIterator[bytes]) -> SSEResponse:
    def closed(disconnected: bool) -> None:
        prepared.timings.upstream = time.perf_counter() - prepared.upstream_started
        prepared.log(499 if disconnected else 200)

    return SSEResponse(frames, prepared.headers, on_close=closed)
