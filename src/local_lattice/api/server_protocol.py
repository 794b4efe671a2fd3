"""uvicorn's httptools protocol with fewer, fuller writes.

uvicorn writes a response's status line and headers as soon as ``http.response.start`` is sent and
its body on the next message: two ``send`` system calls, two TCP segments and two wake-ups of the
client for every answer. ``BatchingWriter`` sits between the protocol and the socket's transport:

- the head of each response is held and goes out with the body that follows it;
- while other requests are in flight, writes wait for the end of the event loop's turn, so the
  answers finished in one turn leave together instead of one system call and one client wake-up
  at a time between them (the flush-consolidation servers under load use);
- with nothing else in flight a write goes out at once: a lone client waits for nothing.

Whatever waits goes out when the loop next runs its ready callbacks (a stream's head whose first
event is not ready yet, too); a write past ``FLUSH_BYTES`` goes at once, so the transport's flow
control still pauses a fast writer.

It also drives requests' lifelines (``api/lifeline.py``): every request's scope advertises the
``lattice.lifeline`` extension, and a connection lost before its answer was complete ends that
answer's request at once (``end_request``), which the server also calls when it stops draining.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sized
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from local_lattice.api.lifeline import LIFE, SERVER_EXTENSIONS
from local_lattice.errors import ClientClosedRequest, LatticeError

FLUSH_BYTES = 64 * 1024


class BatchingWriter:
    """The parts of ``asyncio.Transport`` uvicorn's protocol uses, with ``write`` batched as above.
    ``in_flight`` is the server's set of running requests."""

    __slots__ = ("_hold_next", "_in_flight", "_loop", "_pending", "_size", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop, in_flight: Sized) -> None:
        self._transport = transport
        self._loop = loop
        self._in_flight = in_flight
        self._pending: list[bytes] = []
        self._size = 0
        self._hold_next = False

    def hold_next(self) -> None:
        """The next write is a response's head: keep it for the body."""
        self._hold_next = True

    def write(self, data: bytes) -> None:
        alone = len(self._in_flight) <= 1
        if self._pending:
            self._pending.append(data)
            self._size += len(data)
            if alone or self._size >= FLUSH_BYTES:
                self.flush()
            return
        if self._hold_next:
            self._hold_next = False
        elif alone or len(data) >= FLUSH_BYTES:
            self._transport.write(data)
            return
        self._pending.append(data)
        self._size = len(data)
        self._loop.call_soon(self.flush)

    def flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        self._pending = []
        self._size = 0
        if not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)


class BatchingHttpProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` writing through a ``BatchingWriter``."""

    writer: BatchingWriter

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.writer = BatchingWriter(cast(asyncio.Transport, transport), self.loop, self.tasks)
        super().connection_made(cast(asyncio.Transport, self.writer))

    def on_headers_complete(self) -> None:
        # The first thing a request's cycle writes is its response's head (or a 100 Continue,
        # which the loop's next turn sends all the same).
        self.writer.hold_next()
        cast(dict[str, Any], self.scope)["extensions"] = SERVER_EXTENSIONS
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.cycle is not None and not self.cycle.response_complete:
            self.end_request(ClientClosedRequest("the client closed the connection"))

    def end_request(self, ending: LatticeError) -> None:
        """End the request whose answer is under way, if it has a lifeline (a request still being
        read has none yet; an answered one is left alone)."""
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return
        life = cycle.scope["state"].get(LIFE)
        if life is not None:
            life.end(ending)
