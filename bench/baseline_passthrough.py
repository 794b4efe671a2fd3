"""A bare passthrough with no features: the yardstick the gateway is compared against.

``POST /v1/chat/completions`` is forwarded as-is to ``{upstream}/chat/completions``; the body is
parsed only to learn whether the client asked for a stream, and a streamed answer is passed on in
the byte pieces it arrives in. No auth, no routing, no headers of its own.

The same app exists in variants so ``compare_stack.py`` can measure the choices the gateway made:
the upstream client (``aiohttp``, ``httpx`` or the gateway's own ``http1`` pool) and the framework
(raw ASGI, Starlette, FastAPI).
The baseline proper is ``--client aiohttp --framework raw`` under uvicorn with uvloop and httptools.

Run: ``python bench/baseline_passthrough.py --upstream http://127.0.0.1:8080/v1 --port 9000``
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Literal, Protocol

import orjson

ClientName = Literal["aiohttp", "httpx", "http1"]
FrameworkName = Literal["raw", "starlette", "fastapi"]
CLIENTS: tuple[ClientName, ...] = ("aiohttp", "httpx", "http1")
FRAMEWORKS: tuple[FrameworkName, ...] = ("raw", "starlette", "fastapi")
PATH = "/v1/chat/completions"
HEADERS = {"Content-Type": "application/json"}
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class UpstreamClient(Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def complete(self, body: bytes) -> tuple[int, bytes]: ...
    def stream(self, body: bytes) -> AsyncIterator[bytes]: ...


class AiohttpClient:
    def __init__(self, url: str) -> None:
        self.url = url
        self.session: Any = None

    async def start(self) -> None:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=256)
        self.session = aiohttp.ClientSession(connector=connector, skip_auto_headers=("User-Agent",))

    async def close(self) -> None:
        await self.session.close()

    async def complete(self, body: bytes) -> tuple[int, bytes]:
        async with self.session.post(self.url, data=body, headers=HEADERS) as resp:
            return resp.status, await resp.read()

    async def stream(self, body: bytes) -> AsyncIterator[bytes]:
        async with self.session.post(self.url, data=body, headers=HEADERS) as resp:
            async for piece in resp.content.iter_any():
                yield piece


class HttpxClient:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client: Any = None

    async def start(self) -> None:
        import httpx

        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        self.client = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(300.0))

    async def close(self) -> None:
        await self.client.aclose()

    async def complete(self, body: bytes) -> tuple[int, bytes]:
        resp = await self.client.post(self.url, content=body, headers=HEADERS)
        return resp.status_code, resp.content

    async def stream(self, body: bytes) -> AsyncIterator[bytes]:
        async with self.client.stream("POST", self.url, content=body, headers=HEADERS) as resp:
            async for piece in resp.aiter_raw():
                yield piece


class Http1Client:
    """The gateway's own upstream client (``local_lattice.backends.http1``)."""

    def __init__(self, url: str) -> None:
        from local_lattice.backends.http1 import Pool

        self.pool = Pool(url, headers=HEADERS, limit=256)
        self.path = self.pool.origin.path

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        await self.pool.aclose()

    async def complete(self, body: bytes) -> tuple[int, bytes]:
        resp = await self.pool.request("POST", "", body)
        return resp.status, await resp.read()

    async def stream(self, body: bytes) -> AsyncIterator[bytes]:
        async with await self.pool.request("POST", "", body) as resp:
            async for piece in resp.pieces():
                yield piece


def make_client(name: ClientName, upstream: str) -> UpstreamClient:
    url = upstream.rstrip("/") + "/chat/completions"
    clients: dict[ClientName, Callable[[str], UpstreamClient]] = {
        "aiohttp": AiohttpClient,
        "httpx": HttpxClient,
        "http1": Http1Client,
    }
    return clients[name](url)


def wants_stream(body: bytes) -> bool:
    data = orjson.loads(body)
    return isinstance(data, dict) and data.get("stream") is True


# --- raw ASGI --------------------------------------------------------------------------------------


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def raw_app(client: UpstreamClient) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["path"] != PATH or scope["method"] != "POST":
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        body = await read_body(receive)
        if wants_stream(body):
            headers = [(b"content-type", b"text/event-stream")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            async for piece in client.stream(body):
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        status, content = await client.complete(body)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await client.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await client.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    return app


# --- Starlette and FastAPI ---------------------------------------------------------------------------


def starlette_app(client: UpstreamClient, *, fastapi: bool = False) -> Any:
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        await client.start()
        yield
        await client.close()

    async def chat(request: Request) -> Response:
        body = await request.body()
        if wants_stream(body):
            return StreamingResponse(client.stream(body), media_type="text/event-stream")
        status, content = await client.complete(body)
        return Response(content, status_code=status, media_type="application/json")

    if fastapi:
        from fastapi import FastAPI

        # The annotations are strings here (postponed evaluation) naming a local import; give
        # FastAPI the classes so it injects the request instead of reading a query parameter.
        chat.__annotations__ = {"request": Request, "return": Response}
        app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
        app.add_api_route(PATH, chat, methods=["POST"])
        return app
    from starlette.applications import Starlette
    from starlette.routing import Route

    return Starlette(routes=[Route(PATH, chat, methods=["POST"])], lifespan=lifespan)


def build_app(upstream: str, client: ClientName = "aiohttp", framework: FrameworkName = "raw") -> Any:
    upstream_client = make_client(client, upstream)
    if framework == "raw":
        return raw_app(upstream_client)
    return starlette_app(upstream_client, fastapi=framework == "fastapi")


# --- as a process ----------------------------------------------------------------------------------


@contextlib.contextmanager
def passthrough_server(
    upstream: str,
    client: ClientName = "aiohttp",
    framework: FrameworkName = "raw",
    timeout: float = 15.0,
    pids: list[int] | None = None,
) -> Iterator[str]:
    """Run this module as a process on a free loopback port; yield its base URL (ending in /v1).
    The process id is appended to ``pids`` when given (to read its CPU time and memory)."""
    from tests.support.nginx import stop, wait_for_port
    from tests.support.procs import free_port

    port = free_port()
    command = [sys.executable, str(Path(__file__).resolve()), "--upstream", upstream, "--port", str(port)]
    command += ["--client", client, "--framework", framework]
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    if pids is not None:
        pids.append(proc.pid)
    try:
        wait_for_port(port, proc, timeout)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True, help="upstream base URL ending in /v1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client", choices=CLIENTS, default="aiohttp")
    parser.add_argument("--framework", choices=FRAMEWORKS, default="raw")
    args = parser.parse_args()
    import uvicorn

    app = build_app(args.upstream, args.client, args.framework)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
