"""The httpx transport counts the answers being read (``HttpxUpstream.in_use``), as the own pool does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from local_lattice.backends.httpx_upstream import HttpxUpstream

BODY = b'{"data": []}'


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        if not head:
            break
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BODY))
        writer.write(BODY)
        await writer.drain()


@pytest.fixture
async def origin() -> AsyncIterator[str]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _answer(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/v1"
    server.close()
    await server.wait_closed()


def _upstream(base: str) -> HttpxUpstream:
    return HttpxUpstream(
        base, headers={}, limit=4, connect_timeout=2.0, max_answer_bytes=1 << 20, max_decoded_bytes=1 << 20, proxy=None
    )


async def test_an_answer_counts_until_it_is_read_or_closed(origin: str) -> None:
    upstream = _upstream(origin)
    try:
        assert upstream.in_use == 0
        first = await upstream.request("GET", "/models", within=5.0)
        second = await upstream.request("GET", "/models", within=5.0)
        assert upstream.in_use == 2
        assert await first.read() == BODY
        assert upstream.in_use == 1
        await second.aclose()
        await second.aclose()  # closing twice counts once
        assert upstream.in_use == 0
        async with await upstream.request("GET", "/models", within=5.0) as third:
            assert upstream.in_use == 1
            assert third.status == 200
        assert upstream.in_use == 0
    finally:
        await upstream.aclose()
