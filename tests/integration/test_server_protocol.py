"""uvicorn with ``BatchingHttpProtocol`` (what ``lattice serve`` runs) over real sockets: answers
arrive whole and in order however writes are batched, a stream's head is not held back, pipelined
and ``Expect: 100-continue`` requests work, and a client that stops reading still pauses the app."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from local_lattice.api.server_protocol import BatchingHttpProtocol
from tests.support.wire import record_socket_writes

pytestmark = pytest.mark.timeout(60)

BIG_PIECE = 16 * 1024


class App:
    """``/one``: head and body as two messages; ``/parts?n``: n chunked parts, yielding between
    them; ``/wait``: the head, then a part once ``go`` is set; ``/echo``: the request body back;
    ``/big``: 64 MiB in 16 KiB parts, counting what the server took."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.big_sent = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        path = scope["path"]
        if path == "/echo":
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            await self.whole(send, body)
        elif path == "/one":
            await self.whole(send, b"hello, " + scope["query_string"])
        elif path == "/parts":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for i in range(int(scope["query_string"])):
                await send({"type": "http.response.body", "body": b"part %d;" % i, "more_body": True})
                await asyncio.sleep(0)
            await send({"type": "http.response.body", "body": b""})
        elif path == "/wait":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await self.go.wait()
            await send({"type": "http.response.body", "body": b"went"})
        elif path == "/big":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            piece = b"z" * BIG_PIECE
            for _ in range(4096):
                await send({"type": "http.response.body", "body": piece, "more_body": True})
                self.big_sent += len(piece)
            await send({"type": "http.response.body", "body": b""})

    @staticmethod
    async def whole(send: Send, body: bytes) -> None:
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def served() -> AsyncIterator[tuple[App, int]]:
    app = App()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # clients may connect at once: the backlog holds them until the server accepts
    config = uvicorn.Config(app, http=BatchingHttpProtocol, ws="none", lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        yield app, sock.getsockname()[1]
    finally:
        app.go.set()
        server.should_exit = True
        await task


async def read_answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One response off the wire: its head and its (Content-Length or chunked) body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lowered = head.lower()
    if b"content-length:" in lowered:
        length = int(lowered.split(b"content-length:")[1].split(b"\r\n")[0])
        return head, await reader.readexactly(length)
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return head, body
        body += chunk[:-2]


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


@pytest.fixture
def socket_writes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    return record_socket_writes(monkeypatch)


async def test_an_answer_sent_as_two_messages_is_one_write(served: tuple[App, int], socket_writes: list[bytes]) -> None:
    _, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    socket_writes.clear()
    writer.write(get("/one?q"))
    head, body = await read_answer(reader)
    assert body == b"hello, q"
    server_writes = [w for w in socket_writes if w.startswith(b"HTTP/1.1") or w.endswith(b"hello, q")]
    assert server_writes == [head + body]
    writer.close()


async def test_answers_finished_together_leave_in_fewer_writes(
    served: tuple[App, int], socket_writes: list[bytes]
) -> None:
    _, port = served
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(16)]
    socket_writes.clear()
    for n, (_, writer) in enumerate(connections):
        writer.write(get(f"/parts?{n % 4 + 2}"))
    answers = [await read_answer(reader) for reader, _ in connections]
    assert [body for _, body in answers] == [b"".join(b"part %d;" % k for k in range(n % 4 + 2)) for n in range(16)]
    server_writes = [w for w in socket_writes if not w.startswith(b"GET ")]
    parts = sum(n % 4 + 2 for n in range(16))
    # Unbatched: a head, each part and the end, every one a write of its own.
    assert len(server_writes) < 16 * 2 + parts
    for _, writer in connections:
        writer.close()


async def test_a_streams_head_is_not_held_for_its_first_event(served: tuple[App, int]) -> None:
    app, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(get("/wait"))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"transfer-encoding: chunked" in head
    app.go.set()
    assert await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 5) == b"4\r\nwent\r\n0\r\n\r\n"
    writer.close()


async def test_many_clients_at_once_each_get_their_answers_whole_and_in_order(served: tuple[App, int]) -> None:
    _, port = served

    async def client(n: int) -> list[bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        bodies = []
        for i in range(10):
            path = f"/one?{n}-{i}" if i % 2 else f"/parts?{n % 5 + i}"
            writer.write(get(path))
            bodies.append((await read_answer(reader))[1])
        writer.close()
        return bodies

    results = await asyncio.gather(*(client(n) for n in range(32)))
    for n, bodies in enumerate(results):
        for i, body in enumerate(bodies):
            expected = f"hello, {n}-{i}".encode() if i % 2 else b"".join(b"part %d;" % k for k in range(n % 5 + i))
            assert body == expected


async def test_pipelined_requests_are_answered_in_order(served: tuple[App, int]) -> None:
    _, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(get("/one?a") + get("/parts?3") + get("/one?c"))
    bodies = [(await read_answer(reader))[1] for _ in range(3)]
    assert bodies == [b"hello, a", b"part 0;part 1;part 2;", b"hello, c"]
    writer.close()


async def test_expect_100_continue_is_answered_before_the_body(served: tuple[App, int]) -> None:
    _, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"abcde")
    head, body = await read_answer(reader)
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert body == b"abcde"
    writer.close()


async def test_a_client_that_stops_reading_pauses_the_app(served: tuple[App, int]) -> None:
    app, port = served
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.connect(("127.0.0.1", port))
    try:
        sock.sendall(get("/big"))
        await asyncio.sleep(0.5)
        stalled_at = app.big_sent
        await asyncio.sleep(0.3)
        assert app.big_sent == stalled_at  # waiting for the client, not buffering 64 MiB
        assert stalled_at < 16 * 1024 * 1024
        await asyncio.to_thread(drain, sock, 4096 * BIG_PIECE)
        assert app.big_sent == 4096 * BIG_PIECE
    finally:
        sock.close()


def drain(sock: socket.socket, total: int) -> None:
    got = 0
    while got < total:
        data = sock.recv(1 << 20)
        assert data, "the server closed early"
        got += len(data)


async def test_an_answer_to_head_is_its_head_alone_and_the_connection_goes_on(served: tuple[App, int]) -> None:
    _, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"HEAD /one?h HTTP/1.1\r\nHost: test\r\n\r\n")  # uvicorn writes no body for HEAD
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"content-length: 8\r\n" in head  # "hello, h"
    writer.write(get("/one?next"))
    assert (await read_answer(reader))[1] == b"hello, next"
    writer.close()


async def test_a_request_asking_to_close_gets_its_whole_answer_then_the_close(served: tuple[App, int]) -> None:
    _, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /parts?4 HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
    received = await asyncio.wait_for(reader.read(), 5)  # to the end of the stream: the server closed
    assert received.startswith(b"HTTP/1.1 200 OK")
    assert received.endswith(b"7\r\npart 3;\r\n0\r\n\r\n")
    writer.close()


async def test_a_websocket_upgrade_is_answered_as_plain_http(served: tuple[App, int]) -> None:
    _, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        b"GET /one?ws HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    writer.write(request)
    head, body = await read_answer(reader)
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert body == b"hello, ws"
    writer.close()
