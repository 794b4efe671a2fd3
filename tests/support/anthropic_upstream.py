"""A scripted Anthropic Messages server for the anthropic backend's error and retry paths, which a
real model cannot be made to produce on demand. A real server on a loopback socket in a thread;
the model name picks the behaviour; it records headers and bodies."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.support.upstream import serve_in_thread

KEY = "sk-ant-scripted-secret-0123456789"


@dataclass
class Recorder:
    headers: list[dict[str, str]] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)


def _message(model: str, content: list[dict[str, Any]], stop: str) -> dict[str, Any]:
    return {
        "id": "msg_scripted",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 11, "output_tokens": 7},
    }


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return web.json_response(body, status=status, headers=headers)


async def _stream(request: web.Request, model: str) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    events = [
        {"type": "message_start", "message": {**_message(model, [], "end_turn"), "stop_reason": None}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " there"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 2},
        },
        {"type": "message_stop"},
    ]
    for event in events:
        await resp.write(f"event: {event['type']}\ndata: ".encode() + orjson.dumps(event) + b"\n\n")
    return resp


def build_app(rec: Recorder) -> web.Application:
    async def messages(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        rec.headers.append({k.lower(): v for k, v in request.headers.items()})
        rec.bodies.append(body)
        model = str(body.get("model"))
        count = rec.calls[model] = rec.calls.get(model, 0) + 1
        given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        if given != KEY:
            return _error(401, "authentication_error", "invalid x-api-key")
        if model == "flaky-429" and count == 1:
            return _error(429, "rate_limit_error", "slow down", {"retry-after": "0"})
        if model == "flaky-529" and count == 1:
            return _error(529, "overloaded_error", "Overloaded", {"retry-after": "0"})
        if model == "always-429":
            return _error(429, "rate_limit_error", "slow down", {"retry-after": "0"})
        if model == "bad":
            return _error(400, "invalid_request_error", f"max_tokens too large for key {KEY}")
        if model == "boom":
            return _error(500, "api_error", "Internal server error")
        if body.get("stream"):
            return await _stream(request, model)
        if body.get("tools"):
            tool = body["tools"][0]["name"]
            use = {"type": "tool_use", "id": "toolu_scripted", "name": tool, "input": {"location": "Paris"}}
            return web.json_response(_message(model, [use], "tool_use"))
        answer = web.json_response(_message(model, [{"type": "text", "text": "Hello there"}], "end_turn"))
        # Cloud APIs sit behind load balancers that set cookies: a gateway must never carry them on.
        answer.set_cookie("upstream_session", "one-callers-session")
        return answer

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    return app


@contextlib.contextmanager
def anthropic_upstream() -> Iterator[tuple[str, Recorder]]:
    """Yield ``(base_url, recorder)``; the base URL has no ``/v1`` (the client adds it)."""
    rec = Recorder()
    with serve_in_thread(build_app(rec)) as root:
        yield root, rec
