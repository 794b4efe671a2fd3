"""Usage accounting on streams: ``stream_options.include_usage`` works whatever the backend.

When the client asks for usage and the backend sends no usage chunk (llama.cpp's server, older
vLLM …), a final ``choices: []`` chunk is added with the completion tokens counted from the
content chunks and the prompt tokens estimated from its characters, marked ``estimated``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import orjson

from local_lattice.routing.hints import prompt_chars
from local_lattice.types import ChunkStream, StreamChunk, Usage


def wants_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def has_text(payload: bytes) -> bool:
    """Does this chunk carry generated text (one token, for servers that stream token by token)?"""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return False
    for choice in data.get("choices") or () if isinstance(data, dict) else ():
        delta = choice.get("delta") or {}
        if delta.get("content") or choice.get("text"):
            return True
    return False


async def ensure_usage(
    stream: ChunkStream, body: dict[str, Any], model: str, first: StreamChunk | None = None
) -> AsyncGenerator[StreamChunk, None]:
    """Pass ``stream`` through; add a usage chunk at the end if none came. ``first`` is a chunk
    already taken from the stream (counted, not yielded again)."""
    seen_usage = first is not None and first.usage is not None
    content_chunks = 1 if first is not None and not seen_usage and has_text(first.payload) else 0
    try:
        async for chunk in stream:
            if chunk.usage is not None:
                seen_usage = True
            elif has_text(chunk.payload):
                content_chunks += 1
            yield chunk
    finally:
        await stream.aclose()
    if not seen_usage:
        usage = Usage(prompt_tokens=max(1, prompt_chars(body) // 4), completion_tokens=content_chunks)
        payload: dict[str, Any] = {
            "object": "chat.completion.chunk" if "messages" in body else "text_completion",
            "model": model,
            "choices": [],
            "usage": {**usage.as_dict(), "estimated": True},
        }
        yield StreamChunk(orjson.dumps(payload), usage)
