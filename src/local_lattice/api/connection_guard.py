"""What the server guards before a request exists: how many connections are open, how large a
request's head may grow, and how long it may take to arrive.

``GuardedHttpProtocol`` is the protocol ``lattice serve`` runs (``BatchingHttpProtocol`` plus the
guard); ``guarded_protocol(guard)`` makes the class for one server, sharing one ``ConnectionGuard``
among its connections:

- **head size**: the bytes of a head that is not complete yet are counted as they arrive; past
  ``max_head_bytes`` the client gets 431 at once (no more of it is buffered);
- **head time**: a connection has ``head_timeout`` seconds from connecting, or from the first byte
  of a request on a kept-alive connection, to complete the head; then it is closed (a client that
  dribbles its head holds nothing for long). Idle keep-alive connections are uvicorn's affair
  (``timeout_keep_alive``);
- **open connections**: at ``max_connections`` a new connection makes room by closing the oldest
  open connection with no request in flight (an idle or unfinished one); when every one is busy,
  the new one gets 503 ``too_many_connections``.

A refusal is written whole (the OpenAI envelope, ``Connection: close``), then the connection reads
and discards what the client still sends for ``LINGER`` seconds before closing, so the client
reads the answer instead of a reset. Nothing here runs per request on the hot path beyond a flag
and a counter; no timer is armed for a head that arrives in one read.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass
from typing import cast

import httptools
import orjson

from local_lattice.api.middleware import SECURITY_HEADERS
from local_lattice.api.server_protocol import BatchingHttpProtocol
from local_lattice.errors import HeadersTooLarge, LatticeError, TooManyConnections

log = logging.getLogger("lattice.server")

LINGER = 2.0  # seconds a refused connection keeps reading before it closes
FD_RESERVE = 256  # descriptors kept for upstream connections, files and the listening socket


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int = 2048
    max_head_bytes: int = 64 * 1024
    head_timeout: float = 10.0


class ConnectionGuard:
    """The open connections of one server, oldest first, and the limits they live under."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self._open: dict[GuardedHttpProtocol, None] = {}
        self.evicted = 0
        self.refused = 0

    @property
    def open(self) -> int:
        return len(self._open)

    def admit(self, conn: GuardedHttpProtocol) -> bool:
        """Note a new connection; False when it must be turned away (every other one is busy)."""
        if len(self._open) >= self.limits.max_connections and not self._make_room():
            self.refused += 1
            return False
        self._open[conn] = None
        return True

    def leave(self, conn: GuardedHttpProtocol) -> None:
        self._open.pop(conn, None)

    def _make_room(self) -> bool:
        """Close the oldest connection with no request in flight; the busy ones go to the back."""
        for _ in range(len(self._open)):
            conn = next(iter(self._open))
            del self._open[conn]
            if not conn.busy():
                conn.evict()
                self.evicted += 1
                return True
            self._open[conn] = None
        return False


def refusal(exc: LatticeError) -> bytes:
    """A whole HTTP/1.1 answer rendering ``exc``, closing the connection."""
    body = orjson.dumps(exc.envelope())
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"connection", b"close"),
        *SECURITY_HEADERS,
        *((name.lower().encode(), value.encode()) for name, value in exc.headers.items()),
    ]
    head = b"HTTP/1.1 %d %s\r\n" % (exc.status, _REASONS.get(exc.status, b"Error"))
    return head + b"".join(name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n" + body


class _HeadTooLarge(Exception):
    """Raised inside the parser to stop it at a head past the cap."""


_REASONS = {431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}


class GuardedHttpProtocol(BatchingHttpProtocol):
    """``BatchingHttpProtocol`` under a ``ConnectionGuard`` (``guard`` is set by ``guarded_protocol``)."""

    guard: ConnectionGuard

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._reading_head = True  # a head has begun (or none has yet) and is not complete
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._read = 0  # the size of the read being parsed
        self._raw = cast(asyncio.Transport, transport)
        super().connection_made(transport)
        if not self.guard.admit(self):
            self._refuse(TooManyConnections("the gateway has too many open connections; retry shortly"))
            return
        self._head_timer = self.loop.call_later(self.guard.limits.head_timeout, self._head_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.leave(self)
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's ``data_received`` with the head checks around the parser; a head found too
        # large while it is parsed stops the parse (``_HeadTooLarge``) and is answered 431.
        if self._refused:
            return  # answered already; what the client still sends is read and dropped
        self._unset_keepalive_if_required()
        self._read = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, _HeadTooLarge):
                raise
            self._refuse(HeadersTooLarge(f"the request head is larger than {self.guard.limits.max_head_bytes} bytes"))
            return
        except httptools.HttpParserError:
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        self._after_read(len(data))

    def _after_read(self, size: int) -> None:
        """Count a head still incomplete after a read (and time it); time bytes that began nothing."""
        if self._raw.is_closing():
            return
        limits = self.guard.limits
        if self._reading_head:
            self._head_bytes += size
            if self._head_bytes > limits.max_head_bytes:
                self._refuse(HeadersTooLarge(f"the request head is larger than {limits.max_head_bytes} bytes"))
            elif self._head_timer is None:
                self._head_timer = self.loop.call_later(limits.head_timeout, self._head_expired)
        elif self._head_timer is None and not self.busy():
            # Bytes that began no request (empty lines between requests): they get the same time.
            self._head_timer = self.loop.call_later(limits.head_timeout, self._head_expired)

    def on_message_begin(self) -> None:
        self._reading_head = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._reading_head = False
        limit = self.guard.limits.max_head_bytes
        # A head that came whole in one large read was not counted as it arrived: measure it.
        if self._head_bytes + self._read > limit and self._head_size() > limit:
            raise _HeadTooLarge
        self._head_bytes = 0
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()

    def _head_size(self) -> int:
        """The parsed head's size on the wire, near enough: request line and ``name: value`` lines."""
        return len(self.url) + 16 + sum(len(name) + len(value) + 4 for name, value in self.headers)

    # -- what the guard asks of a connection -------------------------------------------------------

    def busy(self) -> bool:
        """A request is in flight (or waits behind one)."""
        return bool(self.pipeline) or (self.cycle is not None and not self.cycle.response_complete)

    def evict(self) -> None:
        if not self._raw.is_closing():
            self._raw.close()

    # -- refusing ------------------------------------------------------------------------------------

    def _head_expired(self) -> None:
        self._head_timer = None
        if self._raw.is_closing():
            return
        if self.busy():
            if self._reading_head and self.cycle is not None:
                self.cycle.keep_alive = False  # the answer in flight finishes; then the connection closes
            return
        self._raw.close()

    def _refuse(self, exc: LatticeError) -> None:
        """Answer ``exc`` and close, reading (and dropping) what the client still sends for a while."""
        if self.busy():  # an answer is being written on this connection: nothing can be said now
            self._raw.abort()
            return
        self._refused = True
        self.writer.flush()
        transport = self._raw
        transport.write(refusal(exc))
        if transport.can_write_eof():
            transport.write_eof()
        self.loop.call_later(LINGER, transport.abort)


def guarded_protocol(guard: ConnectionGuard) -> type[GuardedHttpProtocol]:
    """The protocol class for one server: its connections share ``guard``."""
    return type("ServerHttpProtocol", (GuardedHttpProtocol,), {"guard": guard})


def raise_fd_limit(limits: ConnectionLimits) -> ConnectionLimits:
    """Raise the soft limit of open files so ``max_connections`` fit (up to the hard limit); when
    they cannot, lower the connection cap to what fits and say so."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = limits.max_connections + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < wanted:
        fitting = max(1, soft - FD_RESERVE)
        log.warning(
            "open-file limit %d leaves room for %d client connections, not max_connections=%d",
            soft,
            fitting,
            limits.max_connections,
        )
        return ConnectionLimits(fitting, limits.max_head_bytes, limits.head_timeout)
    return limits
