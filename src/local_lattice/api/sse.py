"""The one place streamed bytes are written: chunks, comments, the terminal error event, ``[DONE]``.

``SSEResponse`` is a small ASGI response that pumps a ``ChunkStream`` to the client while watching
for ``http.disconnect``; a disconnect cancels the pump, which closes the chunk stream and with it
the upstream request or the engine's generation, at once rather than at the next write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from local_lattice.admission import Waiter
from local_lattice.admission.tickets import Grant
from local_lattice.api.lifeline import Lifeline
from local_lattice.api.payload import header_value
from local_lattice.errors import ClientClosedRequest, LatticeError
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
    """An SSE answer. Its pump writes the head and the body's frames; the request's lifeline
    (``api/lifeline.py``) cancels the pump when the client leaves, the deadline passes or the
    server stops draining — the last two end the stream with ``fail(error)`` (an error event and,
    on chat streams, ``[DONE]``) and a proper end of the body. Without a lifeline (a server or
    caller that arms none) a watcher reads ``receive`` for the disconnect.

    ``on_close(status, error_kind)`` runs exactly once, whatever happened (also when writing failed,
    e.g. a header the server refused): 200 for a stream that ran to its end or was ended with an
    error event, 499 for a client that left, 500 when writing failed."""

    media_type = b"text/event-stream"

    def __init__(
        self,
        body: AsyncIterator[bytes],
        headers: dict[str, str],
        on_close: Callable[[int, str | None], None] | None = None,
        on_end: Callable[[], None] | None = None,
        fail: Callable[[LatticeError], bytes] = chat_failure,
    ) -> None:
        """``on_end`` runs once the body is exhausted, before the last (empty) message goes out: the
        server may start the connection's next request as soon as that message is sent, before
        ``on_close`` has run, so what the next request may need (an admission slot) is freed here."""
        self.body = body
        self.headers = headers
        self.on_close = on_close
        self.on_end = on_end
        self.fail = fail
        self._started = False

    def _raw_headers(self) -> list[tuple[bytes, bytes]]:
        raw = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        raw.extend((k.lower().encode("latin-1"), header_value(v)) for k, v in self.headers.items())
        return raw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        life = Lifeline.of(scope)
        pump = asyncio.ensure_future(self._pump(send))
        tasks: tuple[asyncio.Future[None], ...] = (pump,)
        if life is not None:
            life.follow(pump)
        else:
            tasks = (pump, asyncio.ensure_future(self._watch(receive)))
        failure: BaseException | None = None
        status: int = 499
        kind: str | None = "client_disconnected"
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            try:
                failure = await self._settle(tasks)
                status, kind = await self._ending(pump, life, failure, send)
            finally:
                if self.on_close is not None:
                    self.on_close(status, kind)
        if failure is not None and not isinstance(failure, OSError):
            raise failure

    @staticmethod
    async def _settle(tasks: tuple[asyncio.Future[None], ...]) -> BaseException | None:
        """Stop what still runs; return the pump's failure (not a cancellation), if it failed."""
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.wait(tasks)
        pump = tasks[0]
        return None if pump.cancelled() else pump.exception()

    async def _ending(
        self, pump: asyncio.Future[None], life: Lifeline | None, failure: BaseException | None, send: Send
    ) -> tuple[int, str | None]:
        """The status and error kind the stream ends with; writes the terminal frames of a stream
        that its deadline or the server's shutdown ended."""
        if isinstance(failure, OSError):  # the connection broke under a write: the client is gone
            return 499, "client_disconnected"
        if failure is not None:
            log.error("writing a stream failed", exc_info=failure)
            return 500, "stream_write_failed"
        if not pump.cancelled():
            return 200, None
        ending = life.ending if life is not None else None
        if ending is None or isinstance(ending, ClientClosedRequest):
            return 499, "client_disconnected"
        if self.on_end is not None:
            self.on_end()
        try:
            if not self._started:
                await send({"type": "http.response.start", "status": 200, "headers": self._raw_headers()})
            await send({"type": "http.response.body", "body": self.fail(ending), "more_body": False})
        except Exception:  # the client left meanwhile, or the server refused: nothing more to write
            log.warning("could not end the stream with its %s event", ending.code, exc_info=True)
        return 200, ending.code

    async def _pump(self, send: Send) -> None:
        body = self.body
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self._raw_headers()})
            self._started = True
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
