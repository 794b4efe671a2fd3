"""``POST /v1/messages``: Anthropic's Messages API in front of any backend. HTTP only.

The request is translated to the OpenAI chat path, run through the same dispatch as
``/v1/chat/completions`` (routing, escalation, fallbacks, cost), and the answer translated back:
a Message, or the named event stream ``message_start`` … ``message_stop``. Errors on this route
use Anthropic's shape, ``{"type": "error", "error": {"type", "message"}}``, which its client turns
into its typed exceptions. ``anthropic-version`` is accepted and not needed.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator

import orjson
from starlette.requests import Request
from starlette.responses import Response

from local_lattice.api.routes_openai import cost_field, gateway_of, json_response, read_json, validate
from local_lattice.api.sse import SSEResponse, named_sse_bytes
from local_lattice.dispatch import Outcome, dispatch
from local_lattice.errors import LatticeError
from local_lattice.observability.timing import Timings
from local_lattice.protocol.anthropic import (
    MessagesRequest,
    chat_completion_to_message,
    error_body,
    messages_to_openai,
)
from local_lattice.protocol.anthropic_stream import ChunksToEvents


def render_error(exc: LatticeError) -> Response:
    return json_response(error_body(exc.status, exc.message), status=exc.status, headers=exc.headers)


def error_data(exc: LatticeError) -> bytes:
    return orjson.dumps(error_body(exc.status, exc.message))


async def messages(request: Request) -> Response | SSEResponse:
    try:
        return await _messages(request)
    except LatticeError as exc:
        return render_error(exc)


async def _messages(request: Request) -> Response | SSEResponse:
    gateway = gateway_of(request)
    state = request.scope["state"]
    timings = Timings(state["started"])
    raw = await read_json(request)
    validate(MessagesRequest, raw)
    streaming = bool(raw.get("stream"))
    mark = time.perf_counter()
    outcome = await dispatch(gateway, "chat", messages_to_openai(raw), stream=streaming)
    timings.resolve = outcome.resolve_seconds
    timings.upstream = time.perf_counter() - mark - outcome.resolve_seconds
    headers = outcome.headers()
    headers.update(timings.headers())
    routed_to = outcome.routed.routed_to
    path = request.url.path
    if outcome.stream is None and outcome.response is not None:
        timings.log(
            path=path, status=200, request_id=state["request_id"], model=routed_to, extra=cost_field(outcome.cost_usd)
        )
        message = chat_completion_to_message(orjson.loads(outcome.response.content), outcome.routed.model.id)
        return json_response(message, headers=headers)

    def closed(disconnected: bool) -> None:
        timings.upstream = time.perf_counter() - mark - outcome.resolve_seconds
        status = 499 if disconnected else 200
        timings.log(
            path=path,
            status=status,
            request_id=state["request_id"],
            model=routed_to,
            extra=cost_field(outcome.cost_usd),
        )

    return SSEResponse(named_sse_bytes(_events(outcome), error_data), headers, on_close=closed)


async def _events(outcome: Outcome) -> AsyncGenerator[tuple[str, bytes], None]:
    """The chunk stream as Anthropic events; the chunk stream is closed whatever happens."""
    translator = ChunksToEvents(model=outcome.routed.model.id)
    try:
        if outcome.first is not None:
            for name, data in translator.feed(orjson.loads(outcome.first.payload)):
                yield name, orjson.dumps(data)
        if outcome.stream is not None:
            async for chunk in outcome.stream:
                for name, data in translator.feed(orjson.loads(chunk.payload)):
                    yield name, orjson.dumps(data)
        for name, data in translator.finish():
            yield name, orjson.dumps(data)
    finally:
        if outcome.stream is not None:
            await outcome.stream.aclose()
