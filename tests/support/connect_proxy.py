"""A small HTTP CONNECT proxy on loopback, and an HTTPS upstream that speaks HTTP/2, for the
tests of the httpx transport.

``ConnectProxy`` answers ``CONNECT host:port`` for the targets in its ``routes`` (a made-up name,
or an address nothing listens on, mapped to where the upstream really is) and refuses anything
else with 403, so nothing it is asked for leaves the machine; it records what it was asked.
``h2_upstream`` runs hypercorn with TLS (HTTP/2 offered by ALPN) serving a tiny OpenAI-compatible
app that records each request's HTTP version. Both run on a background thread's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import orjson
import trustme
from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig

from tests.support.procs import free_port

Target = tuple[str, int]


class ConnectProxy:
    def __init__(self, routes: dict[Target, Target]) -> None:
        self.routes = routes
        self.asked: list[Target] = []
        self.port = 0

    async def start(self) -> asyncio.Server:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(server.sockets[0].getsockname()[1])
        return server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            host, _, port = target.rpartition(":")
            asked = (host.strip("[]"), int(port))
            self.asked.append(asked)
            route = self.routes.get(asked)
            if method != "CONNECT" or route is None:
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            up_reader, up_writer = await asyncio.open_connection(*route)
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()


class OpenAIApp:
    """``/v1/models`` and ``/v1/chat/completions`` (whole or streamed), noting HTTP versions."""

    def __init__(self) -> None:
        self.versions: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            return
        self.versions.append(scope["http_version"])
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"].endswith("/models"):
            await _answer(send, {"object": "list", "data": [{"id": "cloud-model", "object": "model"}]})
            return
        request = orjson.loads(body)
        if request.get("stream"):
            chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "via h2"}}]}
            events = b"data: " + orjson.dumps(chunk) + b"\n\ndata: [DONE]\n\n"
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
            )
            await send({"type": "http.response.body", "body": events})
            return
        message = {"role": "assistant", "content": "via h2"}
        await _answer(send, {"object": "chat.completion", "choices": [{"index": 0, "message": message}]})


async def _answer(send: Callable[..., Any], data: Any) -> None:
    body = orjson.dumps(data)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextlib.contextmanager
def on_a_thread(start: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> Iterator[None]:
    """Run ``start(stop)`` on a background event loop until the block ends (``stop`` is set)."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()

    async def main() -> None:
        ready.set()
        await start(stop)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


@contextlib.contextmanager
def h2_upstream(ca: trustme.CA, folder: Path, *names: str) -> Iterator[tuple[int, OpenAIApp]]:
    """The app behind TLS (a certificate for ``names`` from ``ca``) with HTTP/2 and HTTP/1.1."""
    cert = ca.issue_cert(*names)
    cert_path, key_path = folder / "upstream.pem", folder / "upstream.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    config = HypercornConfig()
    port = free_port()
    config.bind = [f"127.0.0.1:{port}"]
    config.certfile, config.keyfile = str(cert_path), str(key_path)
    config.alpn_protocols = ["h2", "http/1.1"]
    config.loglevel = "WARNING"
    app = OpenAIApp()
    started = threading.Event()

    async def run(stop: asyncio.Event) -> None:
        async def shutdown() -> None:
            started.set()
            await stop.wait()

        await serve(app, config, shutdown_trigger=shutdown)  # type: ignore[arg-type]

    with on_a_thread(run):
        assert started.wait(10)
        yield port, app


@contextlib.contextmanager
def connect_proxy(routes: dict[Target, Target]) -> Iterator[ConnectProxy]:
    proxy = ConnectProxy(routes)
    started = threading.Event()

    async def run(stop: asyncio.Event) -> None:
        server = await proxy.start()
        started.set()
        await stop.wait()
        server.close()

    with on_a_thread(run):
        assert started.wait(10)
        yield proxy
