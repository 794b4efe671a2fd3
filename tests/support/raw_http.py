"""A raw HTTP/1.1 test server on loopback that answers each request with scripted bytes.

``RawServer`` runs in the test's own event loop (``asyncio.start_server``). For every request it
reads the head (and a ``Content-Length`` body), records the exact bytes, and plays the script the
test's ``answer`` function returns for it: bytes to write, pauses, marks the test can wait for, a
close, or a hang until the client goes away. It counts connections (in total and at once) and
notes when the client closed each one, so tests can check reuse, limits and prompt closing from
the server's side. At the end are small helpers to build scripts and to drive a ``Pool``
against the server.

It parses only what a test client sends; it is no general server.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import ssl
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from local_lattice.backends.http1 import Pool, Response


@dataclass(frozen=True, slots=True)
class Pause:
    """Sleep between writes, so the client gets the answer in separate reads."""

    seconds: float


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Until:
    """Write nothing more until the test sets ``event``."""

    event: asyncio.Event


@dataclass(frozen=True, slots=True)
class Mark:
    """Set ``event`` when the script gets here (everything before it has been written)."""

    event: asyncio.Event


CLOSE: Final = _Marker("CLOSE")  # close the connection (FIN) right here
HANG: Final = _Marker("HANG")  # answer nothing more; wait until the client closes

Step = bytes | Pause | Until | Mark | _Marker


@dataclass(frozen=True, slots=True)
class RawRequest:
    """One request as the server read it off the wire."""

    connection: int  # 0-based index of the connection it came on
    head: bytes  # request line and headers, up to and including the blank line
    body: bytes

    @property
    def raw(self) -> bytes:
        return self.head + self.body

    @property
    def request_line(self) -> bytes:
        return self.head.split(b"\r\n", 1)[0]

    @property
    def target(self) -> str:
        return self.request_line.split(b" ")[1].decode()


@dataclass(slots=True)
class _Link:
    """What the server knows about one accepted connection."""

    index: int
    client_closed: asyncio.Event = field(default_factory=asyncio.Event)
    closed_by_client_at: float | None = None


Answer = Callable[[RawRequest], Sequence[Step]]


class RawServer:
    """Scripted answers on ``127.0.0.1:<port>``; use ``async with RawServer(answer) as server``."""

    def __init__(self, answer: Answer, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.answer = answer
        self.tls = tls
        self.requests: list[RawRequest] = []
        self.links: list[_Link] = []
        self.open_now = 0
        self.max_open = 0
        self._port = port
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def connections(self) -> int:
        return len(self.links)

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self._port, ssl=self.tls)
        self._port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        for task in list(self._handlers):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._server.wait_closed()

    async def client_closed(self, index: int, seconds: float = 1.0) -> float:
        """Wait until the client closed connection ``index``; return when that was (loop time)."""
        async with asyncio.timeout(seconds):
            await self.links[index].client_closed.wait()
        at = self.links[index].closed_by_client_at
        assert at is not None
        return at

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        link = _Link(len(self.links))
        self.links.append(link)
        self.open_now += 1
        self.max_open = max(self.max_open, self.open_now)
        try:
            await self._converse(link, reader, writer)
        except asyncio.CancelledError:
            pass  # the server is stopping; ending normally keeps asyncio's stream callback quiet
        finally:
            self.open_now -= 1
            if not writer.transport.is_closing():
                writer.transport.abort()
            self._handlers.discard(task)

    async def _converse(self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await self._read_request(link, reader)
            if request is None:
                return
            self.requests.append(request)
            for step in self.answer(request):
                if isinstance(step, bytes):
                    writer.write(step)
                    with contextlib.suppress(ConnectionError):
                        await writer.drain()
                elif isinstance(step, Pause):
                    await asyncio.sleep(step.seconds)
                elif isinstance(step, Until):
                    await step.event.wait()
                elif isinstance(step, Mark):
                    step.event.set()
                elif step is CLOSE:
                    writer.close()  # after what is still buffered has gone out
                    return
                elif step is HANG:
                    await self._until_client_closes(link, reader)
                    return

    async def _read_request(self, link: _Link, reader: asyncio.StreamReader) -> RawRequest | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            body = await reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            self._note_closed(link)
            return None
        return RawRequest(link.index, head, body)

    async def _until_client_closes(self, link: _Link, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass
        self._note_closed(link)

    def _note_closed(self, link: _Link) -> None:
        link.closed_by_client_at = asyncio.get_running_loop().time()
        link.client_closed.set()


# -- answers ---------------------------------------------------------------------------------------


def head(status: str = "200 OK", headers: Sequence[tuple[str, str]] = (), version: str = "HTTP/1.1") -> bytes:
    lines = [f"{version} {status}"] + [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def sized(body: bytes, headers: Sequence[tuple[str, str]] = (), version: str = "HTTP/1.1") -> bytes:
    """A whole answer delimited by Content-Length."""
    return head(headers=[("Content-Length", str(len(body))), *headers], version=version) + body


def chunk(data: bytes, extension: str = "") -> bytes:
    return f"{len(data):x}{extension}\r\n".encode() + data + b"\r\n"


def chunked(pieces: Sequence[bytes], headers: Sequence[tuple[str, str]] = ()) -> bytes:
    """A whole chunked answer; every second chunk carries a chunk extension."""
    parts = [chunk(piece, ";ext=1" if i % 2 else "") for i, piece in enumerate(pieces)]
    return head(headers=[("Transfer-Encoding", "chunked"), *headers]) + b"".join(parts) + b"0\r\n\r\n"


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data)


def deflated(data: bytes) -> bytes:
    """The ``deflate`` content coding of HTTP: a zlib stream."""
    return zlib.compress(data)


def dribble(data: bytes, size: int, pause: float = 0.002) -> list[Step]:
    """``data`` in writes of ``size`` bytes with a pause between them."""
    steps: list[Step] = []
    for start in range(0, len(data), size):
        steps += [data[start : start + size], Pause(pause)]
    return steps


# -- scripts ---------------------------------------------------------------------------------------


def always(*steps: Step) -> Callable[[RawRequest], Sequence[Step]]:
    return lambda _request: steps


def in_turn(*scripts: Sequence[Step]) -> Callable[[RawRequest], Sequence[Step]]:
    """The n-th request gets the n-th script; later ones the last."""
    remaining = list(scripts)
    return lambda _request: remaining.pop(0) if len(remaining) > 1 else remaining[0]


def split(data: bytes, parts: int) -> list[bytes]:
    step = -(-len(data) // parts)
    return [data[i : i + step] for i in range(0, len(data), step)]


# -- a pool driven against it ---------------------------------------------------------------------


@contextlib.asynccontextmanager
async def pool_at(url: str, **options: Any) -> AsyncIterator[Pool]:
    pool = Pool(url, **options)
    try:
        yield pool
    finally:
        await pool.aclose()


async def fetch(pool: Pool, path: str = "/ok", body: bytes = b"", **options: Any) -> bytes:
    async with await pool.request("POST" if body else "GET", path, body, **options) as response:
        return await response.read()


async def until(condition: Callable[[], bool], seconds: float = 1.0) -> None:
    """Poll a condition on the pool's or server's state (it has no event to wait on)."""
    for _ in range(int(seconds / 0.002)):
        if condition():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("the condition did not come true in time")


async def lines_of(response: Response) -> AsyncIterator[bytes]:
    """The body line by line, from ``Response.line_groups``."""
    async for group in response.line_groups():
        for line in group:
            yield line
