"""Running one model call for a route: open the request's record, route the body, call the backend
(failing over as routing decides), time each phase, count tokens and close the record.

Shared by every route that ends in a single backend call (chat, completions, embeddings, the
Responses API, Anthropic Messages …) so routing, timing, metrics and logs happen the same way.
A failure raised from here is recorded by the app's exception handlers (``Observer.fail``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from local_lattice.admission import QueueContext, Waiter
from local_lattice.admission.owner import Admitted
from local_lattice.admission.tickets import Grant
from local_lattice.api.lifeline import Lifeline
from local_lattice.api.middleware import header_dict
from local_lattice.api.sse import SSEResponse, queued
from local_lattice.errors import LatticeError, RateLimited
from local_lattice.gateway import Gateway, Routed
from local_lattice.hedging import Seat
from local_lattice.observability.record import RequestRecord
from local_lattice.types import BackendResponse, ChunkStream, Endpoint, StreamChunk
from local_lattice.usage import ensure_usage, wants_usage

GATEWAY_FIELDS = ("queue", "swarm")


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def header_map(request: Request) -> dict[str, str]:
    """The request's headers as a plain dict with lower-case names, where the first of repeated
    names wins as in starlette's ``Headers``: admission and routing look up several names, and each
    ``Headers`` lookup scans and decodes the raw list again."""
    return {
        name.decode("latin-1").lower(): value.decode("latin-1") for name, value in header_dict(request.scope).items()
    }


def begin(request: Request, operation: str) -> RequestRecord:
    """Open the request's record first, so even a body that fails to parse is counted."""
    return gateway_of(request).observer.begin(request.scope["state"], request.scope["path"], operation)


@dataclass(slots=True)
class Prepared:
    """A request routed to its candidates, with its record, headers and timings so far."""

    gateway: Gateway
    record: RequestRecord
    routed: Routed
    endpoint: Endpoint
    body: dict[str, Any]
    headers: dict[str, str]
    queue: QueueContext
    life: Lifeline | None = None
    upstream_started: float = 0.0

    def finish(self, status: int, error_kind: str | None = None) -> None:
        self.gateway.observer.finish(self.record, status, error_kind)


async def prepare(request: Request, record: RequestRecord, endpoint: Endpoint, body: dict[str, Any]) -> Prepared:
    gateway = gateway_of(request)
    gateway.observer.requested(record, body)
    headers = header_map(request)
    queue = gateway.admission.context(body.get("queue"), headers)
    life = Lifeline.of(request.scope)
    if life is not None and queue.deadline is not None:
        life.bound(queue.deadline)  # the deadline bounds the whole request, not only its wait
    mark = time.perf_counter()
    routed = await gateway.route(endpoint, body.get("model"), body=body, headers=headers)
    record.timings.resolve = time.perf_counter() - mark
    gateway.observer.routed(record, routed.model.id, routed.model.backend)
    for field in GATEWAY_FIELDS:
        body.pop(field, None)
    return Prepared(gateway, record, routed, endpoint, body, {}, queue, life)


def _after_call(prepared: Prepared, routed: Routed) -> None:
    """Headers are set after the call: failing over may have moved the request to another candidate."""
    if routed is not prepared.routed:
        prepared.routed = routed
        prepared.record.model = routed.model.id
        prepared.record.backend = routed.model.backend
    headers = prepared.headers
    headers["X-Model-Routed-To"] = routed.routed_to
    if routed.resolution.explanation:
        headers["X-Model-Resolution"] = routed.resolution.explanation
    prepared.record.timings.put_headers(headers)


def _admission_args(prepared: Prepared) -> tuple[str, str, QueueContext]:
    # The request is admitted for its first candidate; a failover candidate runs under that ticket.
    return prepared.routed.model.id, prepared.routed.model.backend, prepared.queue


def _refused(prepared: Prepared, exc: LatticeError) -> None:
    """A refusal after waiting in the queue: the record keeps the wait its 429 reports."""
    if isinstance(exc, RateLimited) and exc.waited is not None:
        prepared.record.timings.queue = exc.waited


def _seat(prepared: Prepared, slot: Admitted | Waiter | None) -> Seat | None:
    """The request's slot, for a hedge to free when it answers first (only when hedging is asked)."""
    if slot is None or prepared.routed.hedge_after <= 0:
        return None
    return Seat(prepared.queue, slot.close)


async def complete(prepared: Prepared) -> BackendResponse:
    admitted = prepared.gateway.admission.admit(*_admission_args(prepared))
    try:
        async with admitted as grant:
            prepared.record.timings.queue = grant.waited
            mark = time.perf_counter()
            seat = _seat(prepared, admitted)
            routed, answer = await prepared.gateway.complete(prepared.routed, prepared.endpoint, prepared.body, seat)
            prepared.record.timings.upstream = time.perf_counter() - mark
    except RateLimited as exc:
        _refused(prepared, exc)
        raise
    if prepared.life is not None:
        prepared.life.check()
    _after_call(prepared, routed)
    if answer.usage is not None:
        prepared.record.input_tokens = answer.usage.prompt_tokens
        prepared.record.output_tokens = answer.usage.completion_tokens
        prepared.record.cost = answer.usage.cost_usd
    return answer


async def _observed(stream: ChunkStream, record: RequestRecord) -> AsyncGenerator[StreamChunk, None]:
    """Count tokens as chunks pass (usage when the backend reports it, else one per chunk) and note
    the kind of a failure mid-stream."""
    reported = False
    try:
        async for chunk in stream:
            if chunk.usage is not None:
                reported = True
                record.input_tokens = chunk.usage.prompt_tokens
                record.output_tokens = chunk.usage.completion_tokens
                record.cost = chunk.usage.cost_usd
            elif not reported:
                record.output_tokens += 1
            yield chunk
    except LatticeError as exc:
        record.error_kind = exc.code or exc.type
        raise
    finally:
        await stream.aclose()


async def open_stream(prepared: Prepared, slot: Waiter | None = None) -> tuple[StreamChunk | None, ChunkStream]:
    """Start the stream on the first candidate that yields a first chunk, so failures before the
    first byte still get a plain error status. ``slot`` is the request's admission ticket."""
    record = prepared.record
    record.stream = True
    prepared.upstream_started = mark = time.perf_counter()
    body = prepared.body
    seat = _seat(prepared, slot)
    routed, first, stream = await prepared.gateway.stream(prepared.routed, prepared.endpoint, body, seat)
    if wants_usage(body):
        stream = ensure_usage(stream, body, routed.model.id, first)
    record.timings.upstream = time.perf_counter() - mark
    record.ttft = record.timings.total()
    if first is not None:
        if first.usage is not None:
            record.input_tokens = first.usage.prompt_tokens
            record.output_tokens = first.usage.completion_tokens
        else:
            record.output_tokens = 1
    _after_call(prepared, routed)
    return first, _observed(stream, record)


Framer = Callable[[StreamChunk | None, ChunkStream], AsyncIterator[bytes]]


async def stream_reply(prepared: Prepared, frame: Framer, fail: Callable[[LatticeError], bytes]) -> SSEResponse:
    """Admit, open and frame a stream. Turned away at once → a plain 429; admitted at once → the
    stream opens before the headers go out (failures keep their status); made to wait → the
    response starts now and shows the queue position until the slot comes (``sse.queued``).
    The slot is held until the response ends, finished or disconnected."""
    waiter = prepared.gateway.admission.enter(*_admission_args(prepared))

    def failed(exc: LatticeError) -> bytes:
        _refused(prepared, exc)
        prepared.record.error_kind = exc.code or exc.type  # the client saw 200, then this error event
        return fail(exc)

    if waiter.locally_granted and not waiter.granted:  # a cap shared across replicas: one try first
        try:
            await waiter.wait(0)
        except BaseException:
            waiter.close()
            raise
    if waiter.granted:
        try:
            first, stream = await open_stream(prepared, waiter)
        except BaseException:
            waiter.close()
            raise
        return stream_response(prepared, frame(first, stream), fail, waiter.close)

    async def start(grant: Grant) -> AsyncIterator[bytes]:
        prepared.record.timings.queue = grant.waited
        first, stream = await open_stream(prepared, waiter)
        return frame(first, stream)

    prepared.headers["X-Model-Routed-To"] = prepared.routed.routed_to
    prepared.headers.update(prepared.record.timings.headers())
    return stream_response(prepared, queued(waiter, start, failed), fail, waiter.close)


def stream_response(
    prepared: Prepared,
    frames: AsyncIterator[bytes],
    fail: Callable[[LatticeError], bytes],
    release: Callable[[], None] | None = None,
) -> SSEResponse:
    def closed(status: int, error_kind: str | None) -> None:
        if release is not None:
            release()
        prepared.record.timings.upstream = time.perf_counter() - prepared.upstream_started
        # A failure mid-stream keeps the 200 the client saw; its kind is on the record already.
        prepared.finish(status, error_kind)

    return SSEResponse(frames, prepared.headers, on_close=closed, on_end=release, fail=fail)
