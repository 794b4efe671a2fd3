"""The one place streamed bytes are written: chunks, comments, the terminal error event, ``[DONE]``.

``SSEResponse`` is a small ASGI response that pumps a ``ChunkStream`` to the client while watching
for ``http.disconnect``; a disconnect cancels the pump, which closes the chunk stream and with it
the upstream request or the engine's generation, at once rather than at the next write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from local_lattice.admission import Waiter
from local_lattice.admission.tickets import Grant
from local_lattice.errors import LatticeError
from local_lattice.types import ChunkStream, StreamChunk

log = logging.getLogger("lattice.sse")

DONE = b"data: [DONE]\n\n"
QUEUE_COMMENT_INTERVAL = 1.0  # seconds between queue-position comments


def event(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


def comment(text: str) -> bytes:
    return b": " + text.encode() + b"\n\n"


def error_event(exc: LatticeError) -> bytes:
    return event(orjson.dumps(exc.envelope()))


async def sse_bytes(first: StreamChunk | None, rest: ChunkStream) -> AsyncIterator[bytes]:
    """Frame a chunk stream as SSE. Chunks marked ``more`` are held and written with what follows
    them (one write for the events that arrived together, not one each). A failure after the
    first byte ends the stream with one error event and ``[DONE]``; the chunk stream is always
    closed."""
    held: list[bytes] = []
    try:
        if first is not None:
            if first.more:
                held.append(b"data: " + first.payload + b"\n\n")
            else:
                yield b"data: " + first.payload + b"\n\n"
        async for chunk in rest:
            frame = b"data: " + chunk.payload + b"\n\n"
            if chunk.more:
                held.append(frame)
            elif held:
                held.append(frame)
                yield b"".join(held)
                held.clear()
            else:
                yield frame
    except LatticeError as exc:
        held.append(error_event(exc))
    except Exception as exc:  # a bug or a foreign exception: never a traceback on the wire
        log.exception("stream failed")
        held.append(error_event(LatticeError(f"stream failed: {type(exc).__name__}")))
    finally:
        await rest.aclose()
    held.append(DONE)
    yield b"".join(held)


def named_event(kind: str, data: Any) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def openai_error_data(exc: LatticeError) -> dict[str, Any]:
    """The Responses API's ``error`` event."""
    return {"type": "error", "code": exc.code, "message": exc.message, "param": exc.param}


async def named_events(
    events: AsyncIterator[tuple[str, Any]], error: Callable[[LatticeError], Any] = openai_error_data
) -> AsyncIterator[bytes]:
    """Frame ``(event, data)`` pairs (the Responses and Anthropic styles: an ``event:`` line, no
    ``[DONE]``). A failure mid-stream ends it with one ``error`` event whose data ``error`` renders."""
    try:
        async for kind, data in events:
            yield named_event(kind, data)
    except LatticeError as exc:
        yield named_event("error", error(exc))
    except Exception as exc:  # a bug or a foreign exception: never a traceback on the wire
        log.exception("stream failed")
        yield named_event("error", error(LatticeError(f"stream failed: {type(exc).__name__}")))
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


async def queued(
    waiter: Waiter,
    start: Callable[[Grant], Awaitable[AsyncIterator[bytes]]],
    fail: Callable[[LatticeError], bytes],
    interval: float = QUEUE_COMMENT_INTERVAL,
) -> AsyncIterator[bytes]:
    """A stream that must wait for its slot: ``: queue position N`` comments (which double as
    keep-alives) until it is granted, then the frames ``start`` opens. A rejection or failure before
    the first frame — the headers are already out — ends the stream with ``fail(exc)``."""
    try:
        grant: Grant | None = None
        while grant is None:
            position = waiter.position()
            if position is not None:
                yield comment(f"queue position {position + 1}")
            grant = await waiter.wait(interval)
        frames = await start(grant)
    except LatticeError as exc:
        yield fail(exc)
        return
    except Exception as exc:  # never a traceback on the wire
        log.exception("stream failed to open")
        yield fail(LatticeError(f"stream failed: {type(exc).__name__}"))
        return
    async for data in frames:
        yield data


def chat_failure(exc: LatticeError) -> bytes:
    """How an OpenAI chat stream ends on a failure: one error event, then ``[DONE]``."""
    return error_event(exc) + DONE


class SSEResponse:
    media_type = b"text/event-stream"

    def __init__(
        self,
        body: AsyncIterator[bytes],
        headers: dict[str, str],
        on_close: Callable[[bool], None] | None = None,
        on_end: Callable[[], None] | None = None,
    ) -> None:
        """``on_end`` runs once the body is exhausted, before the last (empty) message goes out: the
        server may start the connection's next request as soon as that message is sent, before
        ``on_close`` has run, so what the next request may need (an admission slot) is freed here."""
        self.body = body
        self.headers = headers
        self.on_close = on_close
        self.on_end = on_end

    def _raw_headers(self) -> list[tuple[bytes, bytes]]:
        raw = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        raw.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items())
        return raw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        pump = asyncio.ensure_future(self._pump(send))
        watch = asyncio.ensure_future(self._watch(receive))
        disconnected = False
        try:
            done, _ = await asyncio.wait((pump, watch), return_when=asyncio.FIRST_COMPLETED)
            disconnected = pump not in done
        finally:
            for task in (pump, watch):
                if not task.done():
                    task.cancel()
            for task in (pump, watch):
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await task
            if self.on_close is not None:
                self.on_close(disconnected)

    async def _pump(self, send: Send) -> None:
        body = self.body
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self._raw_headers()})
            async for data in body:
                await send({"type": "http.response.body", "body": data, "more_body": True})
            if self.on_end is not None:
                self.on_end()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                await aclose()

    @staticmethod
    async def _watch(receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
