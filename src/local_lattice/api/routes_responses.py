"""``POST /v1/responses``: OpenAI's Responses API (text and message input, ``instructions``, function
tools, streaming events) served by any chat backend through the chat path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from local_lattice.api import dispatch
from local_lattice.api.payload import json_response, read_json, validate
from local_lattice.api.route_table import UPSTREAM_ERRORS, RouteSpec
from local_lattice.api.sse import SSEResponse, named_event, named_events, openai_error_data
from local_lattice.protocol.openai import ChatCompletionRequest
from local_lattice.protocol.responses import ResponsesRequest, ResponseStream, from_chat, to_chat
from local_lattice.types import ChunkStream, StreamChunk


async def _events(
    translator: ResponseStream, first: StreamChunk | None, rest: ChunkStream
) -> AsyncIterator[tuple[str, Any]]:
    try:
        for event in translator.start():
            yield event
        if first is not None:
            for event in translator.feed(first.payload):
                yield event
        async for chunk in rest:
            for event in translator.feed(chunk.payload):
                yield event
        for event in translator.finish():
            yield event
    finally:
        await rest.aclose()


async def create_response(request: Request) -> Response | SSEResponse:
    record = dispatch.begin(request, "responses")
    body = await read_json(request)
    validate(ResponsesRequest, body)
    parsed = ResponsesRequest.model_validate(body)
    chat = to_chat(parsed, body)
    validate(ChatCompletionRequest, chat)
    prepared = await dispatch.prepare(request, record, "chat", chat)
    if parsed.stream:

        def frame(first: StreamChunk | None, rest: ChunkStream) -> AsyncIterator[bytes]:
            translator = ResponseStream(parsed, prepared.routed.model.id)
            return named_events(_events(translator, first, rest))

        return await dispatch.stream_reply(prepared, frame, lambda exc: named_event("error", openai_error_data(exc)))
    answer = await dispatch.complete(prepared)
    prepared.finish(200)
    return json_response(from_chat(orjson.loads(answer.content), parsed), headers=prepared.headers)


ROUTES = (
    RouteSpec("/v1/responses", create_response, ("POST",), "OpenAI Responses API on any chat model",
              ResponsesRequest, streams=True, generates=True, errors=UPSTREAM_ERRORS, tags=("openai",)),
)  # fmt: skip
