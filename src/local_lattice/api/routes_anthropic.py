"""``POST /v1/messages``: Anthropic's Messages API in front of any backend. HTTP only.

The request is translated to the OpenAI chat path, run through the same dispatch as
``/v1/chat/completions`` (routing, escalation, failover, cost, the request record), and the answer
translated back: a Message, or the named event stream ``message_start`` … ``message_stop``. Errors
on this route use Anthropic's shape, ``{"type": "error", "error": {"type", "message"}}``, which its
client turns into its typed exceptions. ``anthropic-version`` is accepted and not needed.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from local_lattice.api import dispatch
from local_lattice.api.payload import json_response, read_json, validate
from local_lattice.api.route_table import UPSTREAM_ERRORS, RouteSpec
from local_lattice.api.sse import SSEResponse, named_event, named_events
from local_lattice.errors import LatticeError
from local_lattice.protocol.anthropic import (
    MessagesRequest,
    chat_completion_to_message,
    error_body,
    messages_to_openai,
)
from local_lattice.types import ChunkStream, StreamChunk

if TYPE_CHECKING:
    from local_lattice.protocol.anthropic_stream import ChunksToEvents


def error_data(exc: LatticeError) -> dict[str, Any]:
    return error_body(exc.status, exc.message)


async def messages(request: Request) -> Response | SSEResponse:
    """Failures are rendered in Anthropic's shape by the route's ``error_body``."""
    record = dispatch.begin(request, "messages")
    raw = await read_json(request)
    validate(MessagesRequest, raw)
    prepared = await dispatch.prepare(request, record, "chat", messages_to_openai(raw))
    if raw.get("stream"):
        # Imported with the first streamed answer rather than with the app.
        from local_lattice.protocol.anthropic_stream import ChunksToEvents

        def frame(first: StreamChunk | None, rest: ChunkStream) -> AsyncIterator[bytes]:
            events = _events(ChunksToEvents(model=prepared.routed.model.id), first, rest)
            return named_events(events, error_data)

        return await dispatch.stream_reply(prepared, frame, lambda exc: named_event("error", error_data(exc)))
    answer = await dispatch.complete(prepared)
    prepared.finish(200)
    message = chat_completion_to_message(orjson.loads(answer.content), prepared.routed.model.id)
    return json_response(message, headers=prepared.headers)


async def _events(
    translator: ChunksToEvents, first: StreamChunk | None, rest: ChunkStream
) -> AsyncGenerator[tuple[str, Any], None]:
    """The chunk stream as Anthropic events; the chunk stream is closed whatever happens."""
    try:
        if first is not None:
            for event in translator.feed(orjson.loads(first.payload)):
                yield event
        async for chunk in rest:
            for event in translator.feed(orjson.loads(chunk.payload)):
                yield event
        for event in translator.finish():
            yield event
    finally:
        await rest.aclose()


ROUTES = (
    RouteSpec("/v1/messages", messages, ("POST",), "Anthropic Messages API on any backend", MessagesRequest,
              streams=True, generates=True, errors=UPSTREAM_ERRORS, tags=("anthropic",), error_body=error_data),
)  # fmt: skip
