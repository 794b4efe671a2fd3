"""Run a routed request: candidates in order, the cloud fallback, budgets and per-request cost.

Owns what happens between "the gateway picked candidates" and "the first byte is ready": a
candidate that fails before answering (unreachable, 5xx, rate limited, budget spent) hands over to
the next; when every one failed the escalation policy may add the cloud. Priced answers carry
``usage.cost_usd`` and are booked against their backend's daily budget. No HTTP types here.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

import orjson

from local_lattice.cloud.cost import TokenPrice, seconds_to_midnight
from local_lattice.errors import LatticeError, RateLimited, UpstreamStatusError
from local_lattice.gateway import Gateway, Routed
from local_lattice.types import BackendRequest, BackendResponse, ChunkStream, Endpoint, JSONObject, StreamChunk


@dataclass
class Outcome:
    """What ran: the route taken, and either the whole answer or the first chunk and the rest."""

    routed: Routed
    response: BackendResponse | None = None
    first: StreamChunk | None = None
    stream: ChunkStream | None = None
    cost_usd: float | None = None
    notes: list[str] = field(default_factory=list)
    resolve_seconds: float = 0.0

    @property
    def explanation(self) -> str:
        return " ; ".join(p for p in (self.routed.resolution.explanation, *self.notes) if p)

    def headers(self) -> dict[str, str]:
        headers = {"X-Model-Routed-To": self.routed.routed_to}
        if self.explanation:
            headers["X-Model-Resolution"] = self.explanation
        return headers


def _hands_over(exc: LatticeError) -> bool:
    """Whether another candidate may try after ``exc``: not when the request itself is at fault."""
    return not (isinstance(exc, UpstreamStatusError) and exc.status < 500) and exc.status != 400


async def dispatch(gateway: Gateway, endpoint: Endpoint, body: JSONObject, *, stream: bool) -> Outcome:
    """Route ``body`` and run it to its first byte (stream) or to the end; raises the last failure."""
    started = time.perf_counter()
    first_route = await gateway.route(endpoint, body.get("model"), body if endpoint == "chat" else None)
    resolve_seconds = time.perf_counter() - started
    notes: list[str] = []
    routes = [Routed(gateway.backends[m.backend], m, first_route.resolution) for m in first_route.resolution.candidates]
    tried_cloud = False
    last: LatticeError | None = None
    while routes:
        routed = routes.pop(0)
        tried_cloud |= gateway.cloud.is_cloud(routed.model.backend)
        try:
            outcome = await _attempt(gateway, routed, endpoint, body, stream)
        except LatticeError as exc:
            if not _hands_over(exc):
                raise
            last = exc
            notes.append(f"{routed.routed_to} failed: {exc.message}")
            if not routes and not tried_cloud and endpoint == "chat":
                cloud = gateway.escalate_after_failure(exc.message)
                if cloud is not None:
                    routes.append(cloud)
                    notes.append(cloud.resolution.explanation)
            continue
        outcome.notes = notes
        outcome.resolve_seconds = resolve_seconds
        return outcome
    assert last is not None
    raise last


async def _attempt(gateway: Gateway, routed: Routed, endpoint: Endpoint, body: JSONObject, stream: bool) -> Outcome:
    backend_name = routed.model.backend
    if not gateway.budget.left(backend_name):
        raise RateLimited(
            f"the daily budget of backend {backend_name!r} is spent (${gateway.budget.spent(backend_name):.4f})",
            retry_after=seconds_to_midnight(),
            kind="budget_exceeded",
        )
    price = gateway.prices.price(backend_name, routed.model.id)
    request_body = dict(body)  # backends set fields on the body; each attempt gets its own
    hide_usage = False
    if stream and price is not None:
        options = dict(request_body.get("stream_options") or {})
        hide_usage = not options.get("include_usage")
        request_body["stream_options"] = {**options, "include_usage": True}
    request = BackendRequest(endpoint, routed.model.id, request_body)
    if not stream:
        answer = await routed.backend.complete(request)
        outcome = Outcome(routed, response=answer)
        if price is not None and answer.usage is not None:
            outcome.cost_usd = price.cost(answer.usage)
            gateway.budget.record(backend_name, outcome.cost_usd)
            outcome.response = BackendResponse(_with_cost(answer.content, outcome.cost_usd), answer.usage)
        return outcome
    chunks = routed.backend.stream(request)
    outcome = Outcome(routed)
    if price is not None:
        chunks = _priced(chunks, price, gateway, outcome, hide_usage)
    try:
        outcome.first = await chunks.__anext__()
    except StopAsyncIteration:
        outcome.first = None
    except BaseException:
        await chunks.aclose()
        raise
    outcome.stream = chunks
    return outcome


def _with_cost(content: bytes, cost: float) -> bytes:
    data = orjson.loads(content)
    if isinstance(data, dict) and isinstance(data.get("usage"), dict):
        data["usage"]["cost_usd"] = round(cost, 8)
    return orjson.dumps(data)


async def _priced(
    chunks: ChunkStream, price: TokenPrice, gateway: Gateway, outcome: Outcome, hide_usage_only: bool
) -> AsyncGenerator[StreamChunk, None]:
    """Book the cost when usage arrives and show it in that chunk; drop the usage-only chunk the
    client did not ask for (it was requested upstream only to learn the cost)."""
    try:
        async for chunk in chunks:
            if chunk.usage is None:
                yield chunk
                continue
            outcome.cost_usd = price.cost(chunk.usage)
            gateway.budget.record(outcome.routed.model.backend, outcome.cost_usd)
            data = orjson.loads(chunk.payload)
            if hide_usage_only and not data.get("choices"):
                continue
            data["usage"]["cost_usd"] = round(outcome.cost_usd, 8)
            yield StreamChunk(orjson.dumps(data), chunk.usage)
    finally:
        await chunks.aclose()
