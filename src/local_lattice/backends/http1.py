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
- an answer is bounded: its head (64 KiB), its body as received (``max_answer_bytes``) and as
  decoded (``max_decoded_bytes``, decoded a block at a time, so a compression bomb is refused
  without ever being inflated whole); past a bound the call fails with ``AnswerTooLarge``;
- each request's answer is read by a fresh parser, and bytes the server sends that belong to no
  request (a second answer after the first, anything on an idle connection) close the connection:
  they are never read as the start of the next request's answer;
- one time limit per call (``within``), kept by one timer per pool armed at the nearest deadline;
- at most ``limit`` connections; waiters are woken in order (a request arriving just as a
  connection comes free may take it first, and the waiter waits on); idle connections are
  reused newest first, checked alive and dropped after ``idle_timeout``;
- a request whose reused connection closes before any byte of the answer is sent once more on
  another connection (see ``Pool.request``);
- a response not read to its end closes its connection (a cancelled call, a client gone);
- a stream's pieces are buffered up to ``_HIGH_WATER`` before the socket stops being read.

It does not follow redirects, keep cookies, use proxies or speak HTTP/2 (origins that need those
get ``httpx_upstream.HttpxUpstream``; ``upstream.py`` chooses). Its failures are its own
small family (``ConnectFailed``, ``Disconnected``, ``ProtocolFailure``, ``TimeoutError``); the
backend translates them into ``local_lattice.errors`` in one place.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import zlib
from collections.abc import AsyncIterator, Iterator, Mapping
from types import TracebackType
from typing import cast
from urllib.parse import urlsplit

import httptools

_HIGH_WATER = 1 << 16  # body bytes buffered before reading pauses
_LOW_WATER = 1 << 14
_MAX_HEAD = 1 << 16  # header bytes an answer may have (aiohttp allows 8 KiB a line)
_DECODE_BLOCK = 1 << 18  # compressed bodies are inflated at most this much at a time
MAX_ANSWER_BYTES = 64 << 20  # the default bound of an answer's body, received and decoded


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


class AnswerTooLarge(ProtocolFailure):
    """The answer's body, as received or as decoded, is larger than the pool allows."""


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

    def __init__(self, max_body: int = MAX_ANSWER_BYTES) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.max_body = max_body
        self.body_bytes = 0
        self.active = False  # a request is being answered (else it is idle: nothing may arrive)
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
        if self.reused:  # nothing of an earlier answer's parse carries over
            self.parser = httptools.HttpResponseParser(self)
        self.active = True
        self.head = head = loop.create_future()
        self.head_only = head_only
        self.status = 0
        self.raw_headers = []
        self.head_bytes = 0
        self.body_bytes = 0
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
        if not self.active:
            # Idle in the pool, nobody asked: whatever this is, it must not become the next
            # request's answer. The pool drops a closed connection when it next looks at it.
            self.closed = True
            if self.transport is not None:
                self.transport.abort()
            return
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

    def on_message_begin(self) -> None:
        if self.complete:
            # A second answer to one request (stray bytes after the first): it is never read, and
            # the connection is closed once this answer is done with.
            self.keep_alive = False

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
        if self.complete:
            return  # the head of a stray second answer
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
        if self.complete or self.error is not None:
            return  # a stray second answer's body, a body after the head of an answer to HEAD, or after a failure
        self.body_bytes += len(body)
        if self.body_bytes > self.max_body:
            self.fail(AnswerTooLarge(f"the upstream's answer is larger than {self.max_body} bytes"))
            return
        self.pieces.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def on_message_complete(self) -> None:
        if self.complete or self.error is not None or self.parser.get_status_code() < 200:
            return  # the end of a stray second answer, of a refused one or of an interim answer
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()
        self._wake_reader()


class Response:
    """An answer whose status and headers have arrived; its body is read with ``read``,
    ``pieces`` or ``line_groups``. Reading to the end gives the connection back to the pool; ``close``
    (or leaving ``async with``) before the end closes it."""

    def __init__(self, pool: Pool, conn: _Connection) -> None:
        self._pool = pool
        self._conn: _Connection | None = conn
        self.status = conn.status
        self._raw_headers = conn.raw_headers
        self._headers: dict[str, str] | None = None
        self._decoder = ContentDecoder.for_coding(conn.encoding, pool.max_decoded_bytes)

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
            body = b"".join([*self._decoder.decode(body), self._decoder.rest()])
        return body

    async def pieces(self) -> AsyncIterator[bytes]:
        """The body in the pieces it arrives in (decoded when compressed: in blocks of at most
        ``_DECODE_BLOCK`` bytes)."""
        conn = self._conn
        if conn is None:
            return
        try:
            while True:
                if conn.pieces:
                    piece = conn.take()
                    if self._decoder is None:
                        yield piece
                        continue
                    for block in self._decoder.decode(piece):
                        yield block
                elif conn.complete:
                    if self._decoder is not None and (rest := self._decoder.rest()):
                        yield rest
                    break
                elif conn.error is not None:
                    raise conn.error
                else:
                    await conn.wait()
        finally:
            self.close()

    def line_groups(self) -> AsyncIterator[list[bytes]]:
        """The body's lines, grouped as they arrive (see ``line_groups``)."""
        return line_groups(self.pieces())

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._pool._due.pop(conn, None)
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


async def line_groups(pieces: AsyncIterator[bytes]) -> AsyncIterator[list[bytes]]:
    """The lines each arriving piece completes, together (a line split across pieces comes with
    the piece that ends it). Lines that arrived together can be handled together. A line's pieces
    are kept in a list until it ends (joined once: a long line costs no copying per piece); the
    body's bound bounds it."""
    rest: list[bytes] = []
    async for piece in pieces:
        if b"\n" not in piece:
            rest.append(piece)
            continue
        if rest:
            rest.append(piece)
            piece = b"".join(rest)
        *whole, last = piece.split(b"\n")
        rest = [last] if last else []
        yield [line + b"\n" for line in whole]
    if rest:
        yield [b"".join(rest)]


class ContentDecoder:
    """Undoes a gzip or deflate content coding a block of ``_DECODE_BLOCK`` bytes at a time, so
    a compression bomb is refused (``AnswerTooLarge`` past ``limit`` decoded bytes) without being
    inflated whole."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib-wrapped deflate
        self._compressed = False  # any compressed byte arrived
        self._decoded = 0

    @classmethod
    def for_coding(cls, coding: str, limit: int) -> ContentDecoder | None:
        """A decoder for a Content-Encoding value, or None for an identity (or unknown) one."""
        return cls(limit) if coding.strip().lower() in {"gzip", "deflate", "x-gzip"} else None

    def decode(self, piece: bytes) -> Iterator[bytes]:
        self._compressed = self._compressed or bool(piece)
        while piece:
            try:
                block = self._zlib.decompress(piece, _DECODE_BLOCK)
            except zlib.error as exc:
                raise ProtocolFailure(f"the upstream's compressed body does not decode: {exc}") from exc
            self._count(len(block))
            piece = self._zlib.unconsumed_tail
            if block:
                yield block

    def rest(self) -> bytes:
        """The last bytes; zlib says nothing of a stream cut short, so its end is checked."""
        rest = self._zlib.flush()
        if self._compressed and not self._zlib.eof:
            raise ProtocolFailure("the upstream's compressed body ends before its compressed stream does")
        self._count(len(rest))
        return rest

    def _count(self, size: int) -> None:
        self._decoded += size
        if self._decoded > self.limit:
            raise AnswerTooLarge(f"the upstream's answer decompresses to more than {self.limit} bytes")


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
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        max_decoded_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self.origin = Origin(base_url)
        self.limit = max(1, limit)
        self.max_answer_bytes = max_answer_bytes
        self.max_decoded_bytes = max_decoded_bytes
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        fixed = {"Host": self.origin.authority, **(headers or {})}
        self._fixed = "".join(f"{name}: {value}\r\n" for name, value in fixed.items()).encode("latin-1")
        self._idle: list[_Connection] = []
        self._open = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._due: dict[_Connection, float] = {}  # the calls with a time limit, and when it is up
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    async def request(self, method: str, path: str, body: bytes = b"", *, within: float | None = None) -> Response:
        """Send a request for ``path`` under the base URL's path; return once the answer's status
        and headers are in. ``within`` (seconds) bounds the whole call, from here to the answer's
        last byte (waiting for a connection, connecting and reading included): past it the
        connection is closed and the call raises ``TimeoutError``.

        A connection that has served answers before and closes before any byte of this one was
        dropped by the server while idle, as the request went out (an upstream's keep-alive timeout
        racing the request): the request is sent once more on another connection."""
        length = f"Content-Length: {len(body)}\r\n" if body or method not in {"GET", "HEAD"} else ""
        message = b"".join(
            (f"{method} {self.origin.path}{path} HTTP/1.1\r\n{length}".encode("latin-1"), self._fixed, b"\r\n", body)
        )
        deadline = None if within is None else asyncio.get_running_loop().time() + within
        conn = await self._acquire(deadline)
        try:
            return await self._send(conn, message, deadline, method == "HEAD")
        except Disconnected as exc:
            if not conn.reused or conn.received or exc.answering:
                raise
        return await self._send(await self._acquire(deadline), message, deadline, method == "HEAD")

    async def _send(self, conn: _Connection, message: bytes, deadline: float | None, head_only: bool) -> Response:
        loop = asyncio.get_running_loop()
        if deadline is not None:
            self._watch(conn, deadline, loop)
        try:
            if conn.closed:  # closed before its first request (a server that spoke first): never wait on it
                raise Disconnected("the upstream closed the connection before the request went out")
            head_arrived = conn.begin(loop, head_only)
            assert conn.transport is not None
            if self._open - len(self._idle) > 1:  # others in flight: go out with the turn's other writes
                loop.call_soon(_write_unless_closed, conn.transport, message)
            else:
                conn.transport.write(message)
            await head_arrived
        except BaseException:
            self._due.pop(conn, None)
            self.discard(conn)
            raise
        return Response(self, conn)

    # -- time limits: one timer for the pool, at the nearest deadline --------------------------------

    def _watch(self, conn: _Connection, deadline: float, loop: asyncio.AbstractEventLoop) -> None:
        """Expire ``conn``'s answer at ``deadline``. Calls share one timer, armed for the nearest
        deadline: a call made after another with the same limit arms nothing (a timer armed and
        cancelled per call would cost as much as the rest of its setup)."""
        self._due[conn] = deadline
        if self._timer is None or deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = loop.call_at(deadline, self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        nearest: float | None = None
        for conn, due in list(self._due.items()):
            if due <= now:
                del self._due[conn]
                conn.expire()
            elif nearest is None or due < nearest:
                nearest = due
        if nearest is not None:
            self._timer_at = nearest
            self._timer = loop.call_at(nearest, self._expire, loop)

    async def _acquire(self, deadline: float | None = None) -> _Connection:
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
                if deadline is None:
                    await waiter
                else:  # only a call that must wait for a connection arms a timer of its own
                    async with asyncio.timeout_at(deadline):
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
                    lambda: _Connection(self.max_answer_bytes),
                    origin.host,
                    origin.port,
                    ssl=context,
                    server_hostname=origin.host if context else None,
                )
        except TimeoutError as exc:
            raise ConnectFailed(f"no connection to {origin.authority} within {self.connect_timeout:g} s") from exc
        except (OSError, ssl.SSLError) as exc:
            raise ConnectFailed(f"cannot connect to {origin.authority}: {exc}") from exc
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
        conn.active = False
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
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for conn in list(self._idle):
            self.discard(conn)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectFailed("the pool is closed"))
