"""The HTTP/1.1 client (``backends/http1.py``) against a hostile upstream on real loopback sockets:
stray answers nobody asked for, answers past the size bounds, compression bombs, and generated
status lines, headers, chunk sizes, early closes and stray bytes (hypothesis).

What must hold whatever the upstream sends: a call ends in its body or in one of the client's own
failures (never another exception, never a hang past its time limit); no byte of one answer is
ever read as part of another request's answer; the pool's count of open connections stays exact.
"""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local_lattice.backends.http1 import AnswerTooLarge, HTTPFailure, Pool
from tests.support.raw_http import (
    CLOSE,
    Mark,
    Pause,
    RawServer,
    Step,
    chunk,
    chunked,
    fetch,
    head,
    in_turn,
    lines_of,
    pool_at,
    sized,
)

SECRET = b'{"answer":"meant for the first caller only"}'


def settled(pool: Pool) -> None:
    """Nothing in flight: every connection the pool counts is one of its idle ones."""
    assert pool._open == len(pool._idle), (pool._open, len(pool._idle))
    assert not pool._waiters


# -- answers nobody asked for ------------------------------------------------------------------------


async def test_a_stray_answer_on_an_idle_connection_never_reaches_the_next_request() -> None:
    for _ in range(5):
        written = asyncio.Event()
        stray: list[Step] = [sized(b"first"), Pause(0.02), sized(SECRET), Mark(written)]
        async with RawServer(in_turn(stray, [sized(b"second")])) as server, pool_at(server.url) as pool:
            assert await fetch(pool) == b"first"
            await asyncio.wait_for(written.wait(), 1.0)
            await asyncio.sleep(0.02)  # the stray answer has arrived on the idle connection
            assert await fetch(pool) == b"second"
            settled(pool)
        assert server.connections == 2  # the connection that spoke out of turn was closed


@pytest.mark.parametrize(
    "extra",
    [sized(SECRET), b"HTTP/1.1 200 OK\r\nContent-Le", b"\x00garbage"],
    ids=["whole-second-answer", "part-of-a-head", "garbage"],
)
async def test_bytes_after_an_answer_in_the_same_write_close_the_connection(extra: bytes) -> None:
    async with RawServer(in_turn([sized(b"first") + extra], [sized(b"second")])) as server, pool_at(server.url) as pool:
        assert await fetch(pool) == b"first"
        assert await fetch(pool) == b"second"
        settled(pool)
    assert server.connections == 2


async def test_a_stray_answer_during_a_stream_is_not_part_of_it() -> None:
    events = b"data: 1\n\ndata: 2\n\n"
    answer = chunked([events]) + sized(SECRET)
    async with RawServer(in_turn([answer], [sized(b"second")])) as server, pool_at(server.url) as pool:
        async with await pool.request("POST", "/stream", b"{}") as response:
            lines = [line async for line in lines_of(response)]
        assert b"".join(lines) == events
        assert await fetch(pool) == b"second"
    assert server.connections == 2


# -- bounds -------------------------------------------------------------------------------------------


def bomb(size: int, coding: str) -> bytes:
    """``size`` zero bytes, compressed (about a thousandth of the size)."""
    data = bytes(size)
    return gzip.compress(data, 9) if coding == "gzip" else zlib.compress(data, 9)


@pytest.mark.parametrize(
    "answer",
    [
        sized(b"x" * 5000),
        chunked([b"x" * 1000] * 5),
        head(headers=[("Connection", "close")]) + b"x" * 5000,
    ],
    ids=["content-length", "chunked", "close-delimited"],
)
async def test_an_answer_past_the_bound_is_refused_and_the_pool_goes_on(answer: bytes) -> None:
    script: list[Step] = [answer, CLOSE]
    async with (
        RawServer(in_turn(script, [sized(b"small")])) as server,
        pool_at(server.url, max_answer_bytes=4096) as pool,
    ):
        with pytest.raises(AnswerTooLarge):
            await fetch(pool)
        settled(pool)
        assert await fetch(pool) == b"small"


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_a_compression_bomb_is_refused_without_being_inflated(coding: str) -> None:
    body = bomb(64 << 20, coding)  # 64 MiB of zeros in ~65 KB
    answer = sized(body, [("Content-Encoding", coding)])
    async with (
        RawServer(in_turn([answer], [answer], [sized(b"small")])) as server,
        pool_at(server.url, max_decoded_bytes=1 << 20) as pool,
    ):
        with pytest.raises(AnswerTooLarge, match="decompresses to more than"):
            await fetch(pool)
        pieces: list[int] = []

        async def stream() -> None:
            async with await pool.request("GET", "/stream") as response:
                async for piece in response.pieces():
                    pieces.append(len(piece))

        with pytest.raises(AnswerTooLarge):
            await stream()
        assert max(pieces) <= 1 << 18  # inflated a block at a time, never the whole at once
        assert sum(pieces) <= 1 << 20
        settled(pool)
        assert await fetch(pool) == b"small"


async def test_a_compressed_answer_within_the_bound_is_read_whole() -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    answer = sized(gzip.compress(data), [("Content-Encoding", "gzip")])
    async with RawServer(in_turn([answer])) as server, pool_at(server.url, max_decoded_bytes=1 << 20) as pool:
        assert await fetch(pool) == data


# -- generated hostile answers (hypothesis) ------------------------------------------------------------

TOKEN = st.text("abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=12)
HEADER_VALUE = st.binary(max_size=24)
STATUS_LINES = st.one_of(
    st.sampled_from(
        [
            b"HTTP/1.1 200 OK",
            b"HTTP/1.0 200 OK",
            b"HTTP/1.1 204 No Content",
            b"HTTP/1.1 304 Not Modified",
            b"HTTP/1.1 500 Internal Server Error",
            b"HTTP/1.1 101 Switching Protocols",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK",
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK",
        ]
    ),
    st.builds(
        lambda version, code, reason: b"%s %d %s" % (version, code, reason),
        st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2", b"HTTP/9.9", b"http/1.1", b"ICY", b""]),
        st.integers(-5, 1200),
        st.binary(max_size=12),
    ),
    st.binary(max_size=40),
)
HEADERS = st.lists(
    st.one_of(
        st.tuples(st.just(b"Content-Length"), st.one_of(st.integers(-3, 400).map(lambda n: b"%d" % n), HEADER_VALUE)),
        st.tuples(
            st.just(b"Transfer-Encoding"),
            st.sampled_from([b"chunked", b"gzip, chunked", b"chunked, gzip", b"identity", b"xx", b"chunked, chunked"]),
        ),
        st.tuples(
            st.just(b"Content-Encoding"), st.sampled_from([b"gzip", b"deflate", b"x-gzip", b"br", b"gzip, gzip"])
        ),
        st.tuples(st.just(b"Connection"), st.sampled_from([b"close", b"keep-alive", b"upgrade", b""])),
        st.tuples(TOKEN.map(str.encode), HEADER_VALUE),
    ),
    max_size=6,
)
CHUNK_SIZES = st.lists(
    st.tuples(st.binary(max_size=40), st.one_of(st.none(), st.integers(-2, 80), st.just(2**64))), max_size=5
)


def hostile_body(raw: bytes, chunks: list[tuple[bytes, int | None]], last_chunk: bool, coding: str | None) -> bytes:
    """A body as generated: raw bytes, chunks whose size lines may lie, a compressed stream."""
    if coding == "gzip":
        raw = gzip.compress(raw)
    elif coding == "deflate":
        raw = zlib.compress(raw)
    parts = [raw]
    for data, size in chunks:
        declared = len(data) if size is None else size
        parts.append(b"%x\r\n" % declared if declared >= 0 else b"-%x\r\n" % -declared)
        parts.append(data + b"\r\n")
    if last_chunk:
        parts.append(b"0\r\n\r\n")
    return b"".join(parts)


HOSTILE = st.fixed_dictionaries(
    {
        "status": STATUS_LINES,
        "headers": HEADERS,
        "body": st.builds(
            hostile_body,
            st.binary(max_size=120),
            CHUNK_SIZES,
            st.booleans(),
            st.sampled_from([None, "gzip", "deflate"]),
        ),
        "cut": st.one_of(st.none(), st.integers(0, 300)),  # close the connection after this many bytes
        "write_size": st.integers(1, 512),  # the answer arrives in writes of this size
        "stray": st.one_of(st.none(), st.binary(max_size=40), st.just(sized(SECRET))),
        "stray_later": st.booleans(),  # the stray bytes come after a pause, on the idle connection
    }
)


def hostile_script(case: dict[str, Any], done: asyncio.Event) -> list[Step]:
    lines = [case["status"], *(name + b": " + value for name, value in case["headers"])]
    answer = b"\r\n".join(lines) + b"\r\n\r\n" + case["body"]
    if case["cut"] is not None:
        answer = answer[: case["cut"]]
    size = case["write_size"]
    steps: list[Step] = [answer[i : i + size] for i in range(0, len(answer), size)]
    if case["cut"] is not None:
        return [*steps, Mark(done), CLOSE]
    if case["stray"] is not None:
        steps += [Pause(0.01), case["stray"]] if case["stray_later"] else [case["stray"]]
    return [*steps, Mark(done)]


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """The loop's unhandled errors during a test (an unretrieved exception, a failing callback)."""
    loop = asyncio.get_running_loop()
    problems: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: problems.append(context))
    yield problems
    loop.set_exception_handler(None)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=HOSTILE)
async def test_a_hostile_answer_ends_in_a_body_or_our_failure_and_never_leaks(
    case: dict[str, Any], loop_errors: list[dict[str, Any]]
) -> None:
    done = asyncio.Event()
    marker = b"answer for the second request"
    server = RawServer(in_turn(hostile_script(case, done), [sized(marker)]))
    async with server, pool_at(server.url, max_answer_bytes=1 << 16, max_decoded_bytes=1 << 16) as pool:
        try:
            first = await fetch(pool, "/first", b"{}", within=0.3)
        except (HTTPFailure, TimeoutError):
            first = None
        assert first is None or SECRET not in first or SECRET in case["body"]
        settled(pool)
        await asyncio.wait_for(done.wait(), 2.0)
        await asyncio.sleep(0.005)  # anything the script wrote has reached the client's socket
        assert await fetch(pool, "/second", within=2.0) == marker
        settled(pool)
    assert [str(context.get("message")) for context in loop_errors] == []


WELL_FORMED = st.fixed_dictionaries(
    {
        "body": st.binary(max_size=3000),
        "framing": st.sampled_from(["length", "chunked", "close"]),
        "coding": st.sampled_from([None, "gzip", "deflate"]),
        "chunk_size": st.integers(1, 700),
        "extension": st.sampled_from(["", ";a=1", ';name="quoted value"']),
        "interim": st.booleans(),
        "headers": st.lists(st.tuples(TOKEN, TOKEN), max_size=8),
        "write_size": st.integers(1, 900),
        "stray": st.one_of(st.none(), st.just(sized(SECRET)), st.binary(min_size=1, max_size=30)),
    }
)


def well_formed_script(case: dict[str, Any], done: asyncio.Event) -> list[Step]:
    body = case["body"]
    headers: list[tuple[str, str]] = [(f"X-{name}", value) for name, value in case["headers"]]
    if case["coding"] is not None:
        body = gzip.compress(body) if case["coding"] == "gzip" else zlib.compress(body)
        headers.append(("Content-Encoding", case["coding"]))
    interim = head("100 Continue") if case["interim"] else b""
    if case["framing"] == "length":
        answer = sized(body, headers)
    elif case["framing"] == "chunked":
        size = case["chunk_size"]
        pieces = [body[i : i + size] for i in range(0, len(body), size)]
        answer = head(headers=[("Transfer-Encoding", "chunked"), *headers])
        answer += b"".join(chunk(piece, case["extension"]) for piece in pieces) + b"0\r\n\r\n"
    else:
        answer = head(headers=[("Connection", "close"), *headers]) + body
    answer = interim + answer
    size = case["write_size"]
    steps: list[Step] = [answer[i : i + size] for i in range(0, len(answer), size)]
    if case["framing"] == "close":
        return [*steps, Mark(done), CLOSE]
    if case["stray"] is not None:
        steps.append(case["stray"])
    return [*steps, Mark(done)]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=WELL_FORMED)
async def test_a_well_formed_answer_however_framed_and_delivered_is_read_exactly(
    case: dict[str, Any], loop_errors: list[dict[str, Any]]
) -> None:
    done = asyncio.Event()
    server = RawServer(in_turn(well_formed_script(case, done), [sized(b"second")]))
    async with server, pool_at(server.url) as pool:
        assert await fetch(pool, "/first", b"{}", within=2.0) == case["body"]
        await asyncio.wait_for(done.wait(), 2.0)
        assert await fetch(pool, "/second", within=2.0) == b"second"
        settled(pool)
    # Empty lines between answers carry nothing (HTTP lets a reader skip them); anything else closes.
    reused = case["framing"] != "close" and not (case["stray"] or b"").strip(b"\r\n")
    assert server.connections == (1 if reused else 2)
    assert [str(context.get("message")) for context in loop_errors] == []
