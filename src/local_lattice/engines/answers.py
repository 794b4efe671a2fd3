"""OpenAI-shaped answers built from locally generated text: ``chat.completion``,
``chat.completion.chunk`` and ``text_completion`` objects, encoded with orjson. Pure functions."""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from local_lattice.types import BackendResponse, Endpoint, StreamChunk, Usage


def new_id(endpoint: Endpoint) -> str:
    return ("chatcmpl-" if endpoint == "chat" else "cmpl-") + secrets.token_hex(12)


def tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def whole(
    endpoint: Endpoint,
    answer_id: str,
    model: str,
    text: str,
    finish: str,
    usage: Usage,
    calls: list[dict[str, Any]] | None = None,
) -> BackendResponse:
    choice: dict[str, Any]
    if endpoint == "chat":
        message: dict[str, Any] = {"role": "assistant", "content": (text or None) if calls else text}
        if calls:
            message["tool_calls"] = calls
        choice = {"index": 0, "message": message, "logprobs": None}
        kind = "chat.completion"
    else:
        choice = {"index": 0, "text": text, "logprobs": None}
        kind = "text_completion"
    choice["finish_reason"] = finish
    body = {
        "id": answer_id,
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": usage.as_dict(),
    }
    return BackendResponse(orjson.dumps(body), usage)


class ChunkWriter:
    """Builds the chunks of one streamed answer (same id and ``created`` throughout)."""

    def __init__(self, endpoint: Endpoint, model: str) -> None:
        self.endpoint = endpoint
        self.model = model
        self.id = new_id(endpoint)
        self.created = int(time.time())
        self.kind = "chat.completion.chunk" if endpoint == "chat" else "text_completion"

    def _chunk(self, choices: list[dict[str, Any]], usage: Usage | None = None) -> StreamChunk:
        body: dict[str, Any] = {
            "id": self.id,
            "object": self.kind,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if usage is not None:
            body["usage"] = usage.as_dict()
        return StreamChunk(orjson.dumps(body), usage)

    def _choice(self, text: str | None, finish: str | None, role: bool = False) -> dict[str, Any]:
        if self.endpoint == "chat":
            delta: dict[str, Any] = {"role": "assistant"} if role else {}
            if text is not None:
                delta["content"] = text
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}

    def opening(self) -> StreamChunk:
        return self._chunk([self._choice("", None, role=True)])

    def text(self, text: str) -> StreamChunk:
        return self._chunk([self._choice(text, None)])

    def call_opening(self, index: int, call_id: str, name: str) -> StreamChunk:
        call = {"index": index, **tool_call(call_id, name, "")}
        return self._chunk([{"index": 0, "delta": {"tool_calls": [call]}, "logprobs": None, "finish_reason": None}])

    def call_arguments(self, index: int, text: str) -> StreamChunk:
        call = {"index": index, "function": {"arguments": text}}
        return self._chunk([{"index": 0, "delta": {"tool_calls": [call]}, "logprobs": None, "finish_reason": None}])

    def finish(self, reason: str) -> StreamChunk:
        return self._chunk([self._choice(None if self.endpoint == "chat" else "", reason)])

    def usage(self, usage: Usage) -> StreamChunk:
        return self._chunk([], usage)
