"""A small HTTP/1.1 client for the calls to one upstream: keep-alive connections on asyncio
transports, responses parsed by httptools (the parser uvicorn serves with).

Why not aiohttp here: under load an aiohttp call cost ~80 µs of CPU (a bare uvicorn+aiohttp
passthrough spent ~125 µs a request, the same passthrough on this client ~43), more than half of
what the whole gateway spends besides. An upstream call needs a small part of what a general
client offers; this module is that part:

- one origin (scheme, host, port) per ``Pool``; TLS for ``https`` with the system's trust store;
- a request is written in one piece (the body is bytes, its length is known): at once when it is
  the pool's only one in flight, else when the event loop's turn ends, with the other writes of
  that turn (fewer wake-ups of the upstream under load, as the server side does for answers);
- responses delimited by Content-Length, chunked, or the connection's close; gzip and deflate
  (zlib-wrapped, as HTTP defines it) bodies are decoded; 1xx interim answers are skipped;
- at most ``limit`` connections; waiters are woken in order (a request arriving just as a
  connection comes free may take it first, and the waiter waits on); idle connections are
  reused newest first, checked alive and dropped after ``idle_timeout``;
- a request whose reused connection closes before any byte of the answer is sent once more on
  another connection (see ``Pool.request``);
- a response not read to its end closes its connection (a cancelled call, a client gone);
- a stream's pieces are buffered up to ``_HIGH_WATER`` before the socket stops being read.

It does not follow redirects, keep cookies, use proxies or speak HTTP/2. Its failures are its own
small family (``ConnectFailed``, ``Disconnected``, ``ProtocolFailure``, ``TimeoutError``); the
backend translates them into ``local_lattice.errors`` in one place.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import zlib
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import cast
from urllib.parse import urlsplit

import httptools

_HIGH_WATER = 1 << 16  # body bytes buffered before reading pauses
_LOW_WATER = 1 << 14
_MAX_HEAD = 1 << 16  # header bytes an answer may have (aiohttp allows 8 KiB a line)


class HTTPFailure(Exception):
    """Base of this client's own failures."""


class ConnectFailed(HTTPFailure):
    """No connection could be made (refused, unknown host, TLS handshake failed)."""


class Disconnected(HTTPFailure):
    """The server closed the connection before its answer was complete; ``answering`` says whether
    its status line and headers had arrived (it broke off) or not (it closed unanswered)."""

    def __init__(self, message: str, *, answering: bool = False) -> None:
        super().__init__(message)
        self.answering = answering


class ProtocolFailure(HTTPFailure):
    """The server's bytes are not an HTTP/1.1 answer this client can read."""


class Origin:
    """Where a pool connects, split from a base URL: ``http://host:8080/v1`` → host, 8080, ``/v1``."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.path = parts.path.rstrip("/")
        default = self.port == (443 if self.tls else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.authority = host if default else f"{host}:{self.port}"


class _Connection(asyncio.Protocol):
    """One socket and the answer being read on it; httptools calls the ``on_*`` methods."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.head: asyncio.Future[None] | None = None
        self.wake: asyncio.Future[None] | None = None
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.pieces: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.paused = False
        self.complete = False
        self.keep_alive = False
        self.received = False  # any byte of the current answer
        self.head_bytes = 0
        self.encoding = ""  # the answer's Content-Encoding
        self.reused = False  # it has served an answer before
        self.head_only = False  # the answer to HEAD: no body, whatever its headers say
        self.error: BaseException | None = None
        self.closed = False
        self.counted = False  # one of the pool's ``limit`` connections
        self.idle_since = 0.0

    # -- the answer's lifecycle (called by Pool and Response) --------------------------------------

    def begin(self, loop: asyncio.AbstractEventLoop, head_only: bool = False) -> asyncio.Future[None]:
        self.head = head = loop.create_future()
        self.head_only = head_only
        self.status = 0
        self.raw_headers = []
        self.head_bytes = 0
        self.encoding = ""
        self.complete = False
        self.keep_alive = False
        self.received = False
        return head

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        if self.head is not None and not self.head.done():
            self.head.set_exception(self.error)
            self.head.exception()  # noted: a caller gone before the head must not leave it unretrieved
        self._wake_reader()
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def expire(self) -> None:
        if not self.complete:
            self.fail(TimeoutError("the upstream's answer took longer than its time limit"))

    async def wait(self) -> None:
        """Until more of the body, its end or a failure has arrived."""
        self.wake = asyncio.get_running_loop().create_future()
        try:
            await self.wake
        finally:
            self.wake = None

    def take(self) -> bytes:
        piece = self.pieces.popleft()
        self.buffered -= len(piece)
        if self.paused and self.buffered <= _LOW_WATER and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return piece

    def _wake_reader(self) -> None:
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(ProtocolFailure(f"the upstream's answer is not valid HTTP/1.1: {exc}"))
        except httptools.HttpParserUpgrade:  # 101 to a request that asked for no protocol switch
            self.fail(ProtocolFailure("the upstream switched protocols, which this client does not speak"))

    def eof_received(self) -> bool | None:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.complete or self.error is not None:
            self._wake_reader()
            return
        if self.head is not None and self.head.done() and self._ends_at_close():
            self.complete = True  # the body was delimited by the close itself
            self._wake_reader()
            return
        reason = f": {exc}" if exc else ""
        answering = self.head is not None and self.head.done()
        self.fail(
            Disconnected(
                f"the upstream closed the connection before its answer was complete{reason}", answering=answering
            )
        )

    def _ends_at_close(self) -> bool:
        names = {name.lower() for name, _ in self.raw_headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    # -- httptools callbacks -----------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value)
        if self.head_bytes > _MAX_HEAD:
            if self.error is None:
                self.fail(ProtocolFailure(f"the upstream's headers exceed {_MAX_HEAD // 1024} KiB"))
            return
        self.raw_headers.append((name, value))
        if len(name) == 16 and name.lower() == b"content-encoding" and not self.encoding:
            self.encoding = value.decode("latin-1")  # aside: the headers become a dict only when asked for

    def on_headers_complete(self) -> None:
        if self.parser.get_status_code() < 200:
            # An interim answer (100 Continue, 103 Early Hints): the final one follows.
            self.raw_headers = []
            self.head_bytes = 0
            self.encoding = ""
            return
        self.status = self.parser.get_status_code()
        if self.head_only:  # the parser cannot be told there is no body: end here, do not reuse
            self.complete = True
        if self.head is not None and not self.head.done():
            self.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.pieces.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def on_message_complete(self) -> None:
        if self.parser.get_status_code() < 200:
            return  # the end of an interim answer, not of the answer
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()
        self._wake_reader()


class Response:
    """An answer whose status and headers have arrived; its body is read with ``read``,
    ``pieces`` or ``line_groups``. Reading to the end gives the connection back to the pool; ``close``
    (or leaving ``async with``) before the end closes it."""

    def __init__(self, pool: Pool, conn: _Connection, timer: asyncio.TimerHandle | None) -> None:
        self._pool = pool
        self._conn: _Connection | None = conn
        self._timer = timer
        self.status = conn.status
        self._raw_headers = conn.raw_headers
        self._headers: dict[str, str] | None = None
        encoding = conn.encoding.strip().lower()
        self._decoder = zlib.decompressobj(zlib.MAX_WBITS | 32) if encoding in {"gzip", "deflate", "x-gzip"} else None
        self._compressed = False  # any compressed byte arrived

    @property
    def headers(self) -> dict[str, str]:
        """Lower-case names; the first of repeated names wins."""
        if self._headers is None:
            headers: dict[str, str] = {}
            for name, value in self._raw_headers:
                headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
            self._headers = headers
        return self._headers

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    async def read(self) -> bytes:
        """The whole body (decoded when compressed)."""
        conn = self._conn
        if conn is None:
            return b""
        chunks: list[bytes] = []
        try:
            while True:
                while conn.pieces:
                    chunks.append(conn.take())
                if conn.complete:
                    break
                if conn.error is not None:
                    raise conn.error
                await conn.wait()
        finally:
            self.close()
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if self._decoder is not None:
            body = self._decode(body) + self._rest()
        return body

    async def pieces(self) -> AsyncIterator[bytes]:
        """The body in the pieces it arrives in (decoded when compressed)."""
        conn = self._conn
        if conn is None:
            return
        try:
            while True:
                if conn.pieces:
                    piece = conn.take()
                    if self._decoder is not None:
                        piece = self._decode(piece)
                    if piece:
                        yield piece
                elif conn.complete:
                    if self._decoder is not None and (rest := self._rest()):
                        yield rest
                    break
                elif conn.error is not None:
                    raise conn.error
                else:
                    await conn.wait()
        finally:
            self.close()

    async def line_groups(self) -> AsyncIterator[list[bytes]]:
        """The lines each arriving piece completes, together (a line split across pieces comes with
        the piece that ends it). Lines that arrived together can be handled together."""
        rest = b""
        async for piece in self.pieces():
            if b"\n" not in piece:
                rest += piece
                continue
            *whole, rest = (rest + piece).split(b"\n")
            yield [line + b"\n" for line in whole]
        if rest:
            yield [rest]

    def _decode(self, piece: bytes) -> bytes:
        assert self._decoder is not None
        self._compressed = self._compressed or bool(piece)
        try:
            return self._decoder.decompress(piece)
        except zlib.error as exc:
            raise ProtocolFailure(f"the upstream's compressed body does not decode: {exc}") from None

    def _rest(self) -> bytes:
        """The decoder's last bytes; zlib says nothing of a stream cut short, so check its end."""
        assert self._decoder is not None
        rest = self._decoder.flush()
        if self._compressed and not self._decoder.eof:
            raise ProtocolFailure("the upstream's compressed body ends before its compressed stream does")
        return rest

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        if conn.complete and conn.keep_alive and not conn.pieces and conn.error is None and not conn.closed:
            self._pool.release(conn)
        else:
            self._pool.discard(conn)

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _write_unless_closed(transport: asyncio.WriteTransport, message: bytes) -> None:
    if not transport.is_closing():  # closed meanwhile: the call's wait for its answer fails instead
        transport.write(message)


class Pool:
    """Keep-alive connections to one origin, at most ``limit`` at a time."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        limit: int = 100,
        connect_timeout: float = 10.0,
        idle_timeout: float = 15.0,
    ) -> None:
        self.origin = Origin(base_url)
        self.limit = max(1, limit)
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        fixed = {"Host": self.origin.authority, **(headers or {})}
        self._fixed = "".join(f"{name}: {value}\r\n" for name, value in fixed.items()).encode("latin-1")
        self._idle: list[_Connection] = []
        self._open = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    async def request(self, method: str, path: str, body: bytes = b"", *, within: float | None = None) -> Response:
        """Send a request for ``path`` under the base URL's path; return once the answer's status
        and headers are in. ``within`` (seconds) bounds the whole answer, body included: past it the
        connection is closed and reading raises ``TimeoutError``.

        A connection that has served answers before and closes before any byte of this one was
        dropped by the server while idle, as the request went out (an upstream's keep-alive timeout
        racing the request): the request is sent once more on another connection."""
        length = f"Content-Length: {len(body)}\r\n" if body or method not in {"GET", "HEAD"} else ""
        message = b"".join(
            (f"{method} {self.origin.path}{path} HTTP/1.1\r\n{length}".encode("latin-1"), self._fixed, b"\r\n", body)
        )
        deadline = None if within is None else asyncio.get_running_loop().time() + within
        conn = await self._acquire()
        try:
            return await self._send(conn, message, deadline, method == "HEAD")
        except Disconnected as exc:
            if not conn.reused or conn.received or exc.answering:
                raise
        return await self._send(await self._acquire(), message, deadline, method == "HEAD")

    async def _send(self, conn: _Connection, message: bytes, deadline: float | None, head_only: bool) -> Response:
        loop = asyncio.get_running_loop()
        timer = loop.call_at(deadline, conn.expire) if deadline is not None else None
        try:
            head_arrived = conn.begin(loop, head_only)
            assert conn.transport is not None
            if self._open - len(self._idle) > 1:  # others in flight: go out with the turn's other writes
                loop.call_soon(_write_unless_closed, conn.transport, message)
            else:
                conn.transport.write(message)
            await head_arrived
        except BaseException:
            if timer is not None:
                timer.cancel()
            self.discard(conn)
            raise
        return Response(self, conn, timer)

    async def _acquire(self) -> _Connection:
        if self._closed:
            raise ConnectFailed("the pool is closed")
        loop = asyncio.get_running_loop()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and conn.error is None and loop.time() - conn.idle_since < self.idle_timeout:
                return conn
            self.discard(conn)
        while self._open >= self.limit:
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled():
                    self._wake_next()  # handed a turn while leaving: pass it on
                raise
            if self._idle:
                conn = self._idle.pop()
                if not conn.closed and conn.error is None:
                    return conn
                self.discard(conn)
        self._open += 1
        try:
            return await self._connect()
        except BaseException:
            self._open -= 1
            self._wake_next()
            raise

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        origin = self.origin
        context = None
        if origin.tls:
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    _Connection, origin.host, origin.port, ssl=context, server_hostname=origin.host if context else None
                )
        except TimeoutError:
            raise ConnectFailed(f"no connection to {origin.authority} within {self.connect_timeout:g} s") from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectFailed(f"cannot connect to {origin.authority}: {exc}") from None
        conn.counted = True
        return conn

    @property
    def in_use(self) -> int:
        """Connections open and not idle: requests being sent or answered."""
        return self._open - len(self._idle)

    def release(self, conn: _Connection) -> None:
        """A connection whose answer was read to its end goes back to the idle list."""
        if self._closed:
            self.discard(conn)
            return
        conn.idle_since = asyncio.get_running_loop().time()
        conn.reused = True
        self._idle.append(conn)
        self._wake_next()

    def discard(self, conn: _Connection) -> None:
        if conn in self._idle:
            self._idle.remove(conn)
        if conn.transport is not None and not conn.closed:
            conn.closed = True
            conn.transport.abort()
        if conn.counted:  # discard may be reached twice for one connection
            conn.counted = False
            self._open -= 1
            self._wake_next()

    def _wake_next(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        self._closed = True
        for conn in list(self._idle):
            self.discard(conn)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectFailed("the pool is closed"))
