"""An upstream's answer to a stream request, read as OpenAI chunks: the reading side of SSE.

``EventStream`` is fed the answer's lines as they arrive and returns the chunks they complete.
Its first line says what the answer is:

- an event stream (``data:``, ``event:``, ``:`` …): every ``data:`` payload must be a JSON object
  and becomes a chunk; an error object, an ``error:`` line (llama.cpp's server) or data under
  ``event: error`` ends the stream with ``UpstreamError``; a payload that is not a JSON object is
  an ``UpstreamError`` too, never passed on; ``[DONE]`` ends it; other SSE fields are skipped;
- a whole JSON completion (a server that ignored ``stream: true``): it is collected and turned
  into chunks at the end, the same answer as a stream;
- anything else (an HTML error page, plain text): ``UpstreamError`` before any chunk.

An event stream that ends without a single event is an ``UpstreamError`` as well: an empty 200
would tell the client the model had nothing to say. This module does no I/O.
"""

from __future__ import annotations

from typing import Any

import orjson

from local_lattice.errors import UpstreamError
from local_lattice.security.redact import Redactor
from local_lattice.types import StreamChunk, Usage

_SSE_FIELDS = (b"data:", b":", b"event:", b"id:", b"retry:", b"error:")
_COMPLETION_FIELDS = ("id", "created", "model", "system_fingerprint", "service_tier")


def usage_of(data: Any) -> Usage | None:
    """Usage from an OpenAI response or chunk object, or None when it carries none."""
    if not isinstance(data, dict):
        return None
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens")
    return Usage(
        prompt_tokens=prompt if isinstance(prompt, int) else 0,
        completion_tokens=completion if isinstance(completion, int) else 0,
    )


def error_message(body: bytes) -> str:
    """The upstream's own error message, whatever shape it used."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:300].decode("utf-8", "replace").strip() or "no message"
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data.get("message")))
        if isinstance(err, dict):
            err = err.get("message", err)
        if err is not None:
            return str(err)[:1000]
    return str(data)[:300]


class EventStream:
    """One answer to a stream request. ``feed`` each group of lines as it arrives until ``done``
    (``[DONE]`` came, or a bad line: nothing after it is read), then call ``end``."""

    def __init__(self, backend: str, redactor: Redactor, wants_usage: bool = False) -> None:
        self.backend = backend
        self.redactor = redactor
        self.wants_usage = wants_usage
        self.done = False
        self._failure: UpstreamError | None = None
        self._mode: bytes | None = None  # b"sse" or b"json" once the first line has been seen
        self._event = b""  # the current event's name (``event:``), until the blank line ending it
        self._events = 0
        self._whole: list[bytes] = []

    def feed(self, lines: list[bytes]) -> list[StreamChunk]:
        """The chunks these lines complete, up to a bad line (whose failure ``end`` raises).
        Chunks that arrived together (with the end, when it came along) are marked ``more`` so
        they can be written together."""
        if self._mode is None:
            self._mode = self._sniff(lines)
        if self._mode == b"json":
            self._whole.extend(lines)
            return []
        events: list[tuple[bytes, Usage | None]] = []
        try:
            for line in lines:
                if line.startswith(b"data:"):
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        self.done = True
                        break
                    if payload:
                        events.append((payload, self._usage(payload)))
                elif line.startswith(b"event:"):
                    self._event = line[6:].strip()
                elif line.startswith(b"error:"):
                    self._fail(line[6:].strip())
                elif not line.strip():
                    self._event = b""
        except UpstreamError as exc:
            self._failure = exc
            self.done = True
        self._events += len(events)
        last = len(events) - 1 if not self.done else len(events)
        return [StreamChunk(payload, usage, index < last) for index, (payload, usage) in enumerate(events)]

    def end(self) -> list[StreamChunk]:
        """What the answer's end completes: the chunks of a whole JSON completion; for an event
        stream nothing (closed without ``[DONE]``: what it sent is all there is). Raises the
        failure of a bad line, or of an event stream that sent no event at all."""
        if self._failure is not None:
            raise self._failure
        if self._mode == b"json":
            return self._completion_chunks(b"".join(self._whole))
        if not self._events and not self.done:
            raise self._error("ended its stream without sending an event")
        return []

    # -- reading ---------------------------------------------------------------------------------

    def _sniff(self, lines: list[bytes]) -> bytes | None:
        for line in lines:
            text = line.strip()
            if not text:
                continue
            if text.startswith(_SSE_FIELDS):
                return b"sse"
            if text.startswith((b"{", b"[")):
                return b"json"
            shown = text[:80].decode("utf-8", "replace")
            raise self._error(f"answered a stream request with neither an event stream nor JSON: {shown!r}")
        return None  # blank lines only, so far

    def _usage(self, payload: bytes) -> Usage | None:
        """Check one event's payload; its usage, if it reports any."""
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            shown = payload[:80].decode("utf-8", "replace")
            raise self._error(f"streamed an event that is not a JSON object: {shown!r}")
        if self._event == b"error" or isinstance(data.get("error"), dict | str):
            self._fail(payload)
        return usage_of(data) if "usage" in data else None

    def _fail(self, payload: bytes) -> None:
        detail = self.redactor.text(error_message(payload))
        raise self._error(f"failed mid-stream: {detail}")

    def _error(self, what: str) -> UpstreamError:
        return UpstreamError(f"backend {self.backend!r} {what}", backend=self.backend, code="upstream_bad_stream")

    # -- a whole completion as chunks --------------------------------------------------------------

    def _completion_chunks(self, body: bytes) -> list[StreamChunk]:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise self._error("answered a stream request with something that is not JSON") from exc
        if isinstance(data, dict) and isinstance(data.get("error"), dict | str):
            self._fail(body)
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not all(isinstance(choice, dict) for choice in choices):
            raise self._error("answered a stream request with an unexpected JSON shape")
        usage = usage_of(data)
        base = {key: data[key] for key in _COMPLETION_FIELDS if key in data}
        if data.get("object") == "text_completion" or any("text" in choice for choice in choices):
            payloads = [{**base, "object": "text_completion", "choices": choices}]
            kind = "text_completion"
        else:
            payloads = [
                {**base, "object": "chat.completion.chunk", "choices": [_delta(c, i)]} for i, c in enumerate(choices)
            ]
            kind = "chat.completion.chunk"
        events: list[tuple[dict[str, Any], Usage | None]] = [(payload, None) for payload in payloads]
        if usage is not None and self.wants_usage:
            events.append(({**base, "object": kind, "choices": [], "usage": data["usage"]}, usage))
        elif usage is not None and events:
            events[-1] = (events[-1][0], usage)  # counted, not shown: the client did not ask for usage
        last = len(events) - 1
        return [StreamChunk(orjson.dumps(event), counted, i < last) for i, (event, counted) in enumerate(events)]


def _delta(choice: dict[str, Any], position: int) -> dict[str, Any]:
    """A completion's choice as the one chunk that streams it: its message becomes the delta
    (every field kept; tool calls get their ``index``)."""
    delta = dict(choice.get("message") or {})
    calls = delta.get("tool_calls")
    if isinstance(calls, list):
        delta["tool_calls"] = [
            {"index": index, **call} if isinstance(call, dict) else call for index, call in enumerate(calls)
        ]
    return {
        "index": choice.get("index", position),
        "delta": delta,
        "logprobs": choice.get("logprobs"),
        "finish_reason": choice.get("finish_reason"),
    }
