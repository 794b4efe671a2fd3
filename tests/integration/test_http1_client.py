"""The small HTTP/1.1 client (``backends/http1.py``) against real servers on loopback: a raw
scripted server for every framing and failure, and a real nginx for keep-alive and SSE. (How a
base URL is split is unit-tested in ``tests/unit/backends/test_http1_origin.py``.)"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import pytest

from local_lattice.backends.http1 import Pool, Response
from local_lattice.backends.transport_errors import ConnectFailed, Disconnected, ProtocolFailure
from tests.support.nginx import JSON_MODEL, NginxUrls, models_body, nginx_upstream, stream_body
from tests.support.procs import free_port
from tests.support.raw_http import (
    CLOSE,
    HANG,
    Pause,
    RawRequest,
    RawServer,
    Step,
    Until,
    always,
    chunk,
    chunked,
    deflated,
    dribble,
    fetch,
    gzipped,
    head,
    in_turn,
    lines_of,
    pool_at,
    sized,
    split,
    until,
)
from tests.support.wire import record_socket_writes

BODY = b"alpha\nbeta\n\ngamma"
LINES = [b"alpha\n", b"beta\n", b"\n", b"gamma"]
BIG = bytes(range(256)) * (5 * 1024 * 1024 // 256)  # 5 MiB


@pytest.fixture(autouse=True)
async def quiet_loop(caplog: pytest.LogCaptureFixture) -> AsyncIterator[None]:
    """Every test ends with no loop errors: no unretrieved future exception, no destroyed task."""
    loop = asyncio.get_running_loop()
    problems: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: problems.append(context))
    yield
    await asyncio.sleep(0.02)
    gc.collect()
    await asyncio.sleep(0)
    loop.set_exception_handler(None)
    assert [str(context.get("message")) for context in problems] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


# -- the request on the wire ------------------------------------------------------------------------


async def test_a_post_goes_out_under_the_base_path_with_host_length_and_pool_headers() -> None:
    async with (
        RawServer(always(sized(b"{}"))) as server,
        pool_at(server.url + "/v1/", headers={"Authorization": "Bearer k", "X-Extra": "1"}) as pool,
    ):
        assert await fetch(pool, "/chat/completions", b'{"a":1}') == b"{}"
    assert server.requests[0].raw == (
        b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 7\r\nHost: 127.0.0.1:%d\r\n"
        b"Authorization: Bearer k\r\nX-Extra: 1\r\n\r\n"
        b'{"a":1}' % server.port
    )


async def test_a_get_without_body_has_no_length_and_an_empty_post_has_zero() -> None:
    async with RawServer(always(sized(b"ok"))) as server, pool_at(server.url) as pool:
        assert await fetch(pool, "/models") == b"ok"
        async with await pool.request("POST", "/empty") as response:
            assert await response.read() == b"ok"
    host = b"Host: 127.0.0.1:%d\r\n" % server.port
    assert [r.raw for r in server.requests] == [
        b"GET /models HTTP/1.1\r\n" + host + b"\r\n",
        b"POST /empty HTTP/1.1\r\nContent-Length: 0\r\n" + host + b"\r\n",
    ]


# -- keep-alive -------------------------------------------------------------------------------------


async def test_sequential_requests_share_one_connection() -> None:
    async with RawServer(always(sized(b"same"))) as server, pool_at(server.url) as pool:
        bodies = [await fetch(pool, f"/n/{i}") for i in range(5)]
        assert pool._open == 1
    assert bodies == [b"same"] * 5
    assert server.connections == 1
    assert [r.target for r in server.requests] == [f"/n/{i}" for i in range(5)]


@pytest.mark.parametrize(
    "answer",
    [
        sized(b"bye", [("Connection", "close")]),
        sized(b"bye", version="HTTP/1.0"),
    ],
    ids=["connection-close", "http/1.0"],
)
async def test_an_answer_that_does_not_keep_alive_is_not_reused(answer: bytes) -> None:
    async with RawServer(always(answer, HANG)) as server, pool_at(server.url) as pool:
        assert [await fetch(pool) for _ in range(3)] == [b"bye"] * 3
        assert pool._open == 0
        for index in range(3):
            await server.client_closed(index)
    assert server.connections == 3


async def test_a_server_closing_an_idle_connection_does_not_fail_the_next_request() -> None:
    script: list[Step] = [sized(b"one"), Pause(0.05), CLOSE]
    async with RawServer(in_turn(script, [sized(b"two")])) as server, pool_at(server.url) as pool:
        assert await fetch(pool) == b"one"
        await asyncio.sleep(0.15)  # the server has closed the idle connection by now
        assert await fetch(pool) == b"two"
        assert pool._open == 1
    assert server.connections == 2


async def test_a_reused_connection_the_server_closes_unanswered_is_retried_once_on_a_new_one() -> None:
    # The server closes right after its answer, so the next request is already on the wire when
    # the close arrives: no byte of an answer came, the server dropped the connection as idle.
    script: list[Step] = [sized(b"one"), CLOSE]
    async with RawServer(in_turn(script, [sized(b"two")])) as server, pool_at(server.url, limit=1) as pool:
        assert await fetch(pool) == b"one"
        assert await fetch(pool, within=1.0) == b"two"
        assert pool._open == 1
    assert server.connections == 2


NOT_RETRIED: dict[str, tuple[list[Step], list[Step], int]] = {
    # The retry is for connections dropped while idle; the retry's own connection is new, so a
    # server that closes every connection unanswered costs one retry, not a loop.
    "fresh connection closed unanswered": ([sized(b"one"), CLOSE], [CLOSE], 3),
    # Part of a head arrived: the server took the request, so sending it again could run it twice.
    "reused connection that began an answer": ([sized(b"one")], [b"HTTP/1.1 200 OK\r\nContent-Le", CLOSE], 2),
}


@pytest.mark.parametrize("case", list(NOT_RETRIED))
async def test_a_failure_the_retry_does_not_cover_is_disconnected_and_the_pool_goes_on(case: str) -> None:
    first, failing, connections = NOT_RETRIED[case]
    async with RawServer(in_turn(first, failing, [sized(b"three")])) as server, pool_at(server.url, limit=1) as pool:
        assert await fetch(pool) == b"one"
        with pytest.raises(Disconnected):
            await fetch(pool, within=1.0)
        assert pool._open == 0
        assert await fetch(pool) == b"three"
    assert server.connections == connections


# -- the limit --------------------------------------------------------------------------------------


async def test_six_concurrent_requests_never_open_more_than_the_limit() -> None:
    async with RawServer(always(Pause(0.03), sized(b"ok"))) as server, pool_at(server.url, limit=2) as pool:
        bodies = await asyncio.gather(*(fetch(pool, f"/{i}") for i in range(6)))
        assert pool._open == 2
    assert bodies == [b"ok"] * 6
    assert (server.max_open, server.connections, len(server.requests)) == (2, 2, 6)


async def test_a_cancelled_waiter_leaves_every_slot_usable() -> None:
    first_two = asyncio.Event()
    both_in = asyncio.Event()
    arrived: list[RawRequest] = []

    def answer(request: RawRequest) -> Sequence[Step]:
        if request.target == "/held":  # not kept alive: the next requests need new connections
            return [Until(first_two), sized(b"held", [("Connection", "close")])]
        arrived.append(request)
        if len(arrived) == 2:
            both_in.set()
        return [Until(both_in), sized(b"together")]

    async with RawServer(answer) as server, pool_at(server.url, limit=2) as pool:
        held = [asyncio.create_task(fetch(pool, "/held")) for _ in range(2)]
        waiter = asyncio.create_task(fetch(pool, "/never"))
        await until(lambda: len(server.requests) == 2 and len(pool._waiters) == 1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert (pool._open, len(pool._waiters)) == (2, 0)
        first_two.set()
        assert await asyncio.gather(*held) == [b"held", b"held"]
        assert pool._open == 0
        # both slots free: two requests on two new connections can be in flight at once
        together = await asyncio.wait_for(asyncio.gather(fetch(pool, "/a"), fetch(pool, "/b")), 1.0)
        assert list(together) == [b"together", b"together"]
        assert pool._open == 2
    assert server.connections == 4
    assert "/never" not in [r.target for r in server.requests]


async def test_a_waiter_cancelled_after_being_handed_a_turn_passes_it_on() -> None:
    async with RawServer(always(sized(b"ok"))) as server, pool_at(server.url, limit=1) as pool:
        holder = await pool.request("GET", "/first")
        second = asyncio.create_task(fetch(pool, "/second"))
        third = asyncio.create_task(fetch(pool, "/third"))
        await until(lambda: len(pool._waiters) == 2)
        assert await holder.read() == b"ok"  # gives the connection back and wakes ``second``
        second.cancel()  # before it ran: its turn must go to ``third``
        assert await asyncio.wait_for(third, 1.0) == b"ok"
        with pytest.raises(asyncio.CancelledError):
            await second
        assert (pool._open, len(pool._idle)) == (1, 1)
    assert [r.target for r in server.requests] == ["/first", "/third"]
    assert server.connections == 1


# -- bodies -----------------------------------------------------------------------------------------


def _gzip_header(encoding: str) -> list[tuple[str, str]]:
    return [("Content-Encoding", encoding)]


FRAMINGS: dict[str, list[Step]] = {
    "content-length": [sized(BODY)],
    "chunked": [chunked(split(BODY, 4))],
    "close-delimited": [head(headers=[("Connection", "close")]) + BODY, CLOSE],
    "http/1.0 close-delimited": [head(version="HTTP/1.0") + BODY, CLOSE],
    "gzip": [sized(gzipped(BODY), _gzip_header("gzip"))],
    "x-gzip chunked": [chunked(split(gzipped(BODY), 5), _gzip_header("x-gzip"))],
    "deflate": [sized(deflated(BODY), _gzip_header("deflate"))],
    "GZIP, any case": [sized(gzipped(BODY), _gzip_header("GZip"))],
    "deflate chunked": [chunked(split(deflated(BODY), 3), _gzip_header("deflate"))],
    "tiny writes chunked": dribble(chunked(split(BODY, 3)), 3),
    "tiny writes content-length": dribble(sized(BODY), 2),
    "tiny writes gzip chunked": dribble(chunked(split(gzipped(BODY), 7), _gzip_header("gzip")), 4),
    "tiny writes close-delimited": [*dribble(head() + BODY, 5), CLOSE],
}


async def _body(response: Response, how: str) -> Any:
    if how == "read":
        return await response.read()
    if how == "pieces":
        return b"".join([piece async for piece in response.pieces()])
    return [line async for line in lines_of(response)]


async def _request_and_body(pool: Pool, how: str, during: str) -> None:
    async with await pool.request("GET", "/broken") as response:
        assert during == "body"  # a failure during the head raised above
        await _body(response, how)


async def _collect(response: Response, how: str, got: list[bytes]) -> None:
    """Read the body the ``how`` way, keeping what ``pieces``/``lines`` gave before a failure."""
    if how == "read":
        got.append(await response.read())
        return
    async for piece in response.pieces() if how == "pieces" else lines_of(response):
        got.append(piece)


@pytest.mark.parametrize("how", ["read", "pieces", "lines"])
@pytest.mark.parametrize("framing", list(FRAMINGS))
async def test_every_framing_gives_the_exact_body(framing: str, how: str) -> None:
    async with RawServer(always(*FRAMINGS[framing])) as server, pool_at(server.url) as pool:
        async with await pool.request("GET", "/body") as response:
            assert response.status == 200
            assert await _body(response, how) == (LINES if how == "lines" else BODY)
        assert await fetch(pool, "/again") == BODY  # the pool goes on, reused or not
        keeps_alive = CLOSE not in FRAMINGS[framing]
    assert server.connections == (1 if keeps_alive else 2)


async def test_lines_are_joined_across_pieces_and_the_last_needs_no_newline() -> None:
    parts = [b"da", b"ta: 1\nda", b"ta: 2\n", b"\n", b"\ndata", b": 3\n\nend"]
    steps: list[Step] = [head(headers=[("Transfer-Encoding", "chunked")])]
    for part in parts:
        steps += [chunk(part), Pause(0.01)]
    steps.append(b"0\r\n\r\n")
    async with RawServer(always(*steps)) as server, pool_at(server.url) as pool:
        async with await pool.request("GET", "/sse") as response:
            lines = [line async for line in lines_of(response)]
        assert lines == [b"data: 1\n", b"data: 2\n", b"\n", b"\n", b"data: 3\n", b"\n", b"end"]
        async with await pool.request("GET", "/sse") as response:
            pieces = [piece async for piece in response.pieces()]
        assert b"".join(pieces) == b"".join(parts)
        assert len(pieces) > 1  # the pauses made the body arrive in separate pieces


@pytest.mark.parametrize("status", ["100 Continue", "103 Early Hints"])
async def test_an_interim_answer_is_skipped_for_the_final_one(status: str) -> None:
    final: list[Step] = [Pause(0.03), sized(b"final", [("X-Final", "1")])]
    script: list[Step] = [head(status, [("Link", "</style.css>; rel=preload")]), *final]
    async with RawServer(in_turn(script, [sized(b"next")])) as server, pool_at(server.url) as pool:
        async with await pool.request("POST", "/", b"{}", within=1.0) as response:
            assert (response.status, response.headers) == (200, {"content-length": "5", "x-final": "1"})
            assert await response.read() == b"final"
        assert await fetch(pool) == b"next"  # the reused connection carries the next answer, not a late one
    assert server.connections == 1


async def test_a_protocol_switch_nobody_asked_for_is_a_protocol_failure() -> None:
    switch = head("101 Switching Protocols", [("Upgrade", "websocket"), ("Connection", "Upgrade")])
    async with RawServer(in_turn([switch, HANG], [sized(b"fine")])) as server, pool_at(server.url) as pool:
        with pytest.raises(ProtocolFailure, match="switched protocols"):
            await pool.request("GET", "/", within=1.0)
        await server.client_closed(0)
        assert await fetch(pool) == b"fine"


async def test_an_answer_to_head_has_no_body_and_its_connection_is_not_reused() -> None:
    answers = [head(headers=[("Content-Length", "5")]), head(headers=[("Transfer-Encoding", "chunked")])]
    async with RawServer(in_turn([answers[0]], [answers[1]])) as server, pool_at(server.url) as pool:
        for _ in range(2):
            async with await pool.request("HEAD", "/", within=1.0) as response:
                assert (response.status, await response.read()) == (200, b"")
            assert pool._open == 0
    assert [r.raw.split(b"\r\n", 1)[0] for r in server.requests] == [b"HEAD / HTTP/1.1"] * 2
    assert server.connections == 2


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
async def test_answers_without_body_by_status_end_at_their_head(status: str) -> None:
    async with RawServer(always(head(status, [("Content-Length", "7")]))) as server, pool_at(server.url) as pool:
        for _ in range(2):
            async with await pool.request("GET", "/", within=1.0) as response:
                assert (response.status, await response.read()) == (int(status[:3]), b"")
    assert server.connections == 1


async def test_an_empty_body_marked_gzip_is_empty() -> None:
    answer = sized(b"", _gzip_header("gzip"))
    async with RawServer(always(answer)) as server, pool_at(server.url) as pool:
        assert await fetch(pool) == b""
        async with await pool.request("GET", "/") as response:
            assert [piece async for piece in response.pieces()] == []
    assert server.connections == 1


async def test_repeated_headers_keep_the_first_and_names_are_lower_case() -> None:
    answer = head(headers=[("X-Thing", "a"), ("x-thing", "b"), ("Content-Length", "0"), ("SeRvEr", "raw")])
    async with RawServer(always(answer)) as server, pool_at(server.url) as pool:
        response = await pool.request("GET", "/")
        assert response.headers == {"x-thing": "a", "content-length": "0", "server": "raw"}
        assert response.header("server") == "raw"
        assert await response.read() == b""


async def test_a_large_body_is_read_whole_after_reading_was_paused() -> None:
    async with RawServer(always(sized(BIG))) as server, pool_at(server.url) as pool:
        async with await pool.request("GET", "/big") as response:
            conn = response._conn
            assert conn is not None
            await until(lambda: conn.paused)  # nobody reads: the client stops reading the socket
            await asyncio.sleep(0.05)
            assert conn.buffered < 2 * 1024 * 1024  # ... instead of taking in all 5 MiB
            assert await response.read() == BIG
        assert await fetch(pool, "/after") == BIG  # reading resumed and the connection was reused
    assert server.connections == 1


async def test_a_slow_consumer_of_a_big_streamed_body_gets_every_byte() -> None:
    answer = chunked(split(BIG[: 2 * 1024 * 1024], 64))
    async with RawServer(always(answer)) as server, pool_at(server.url) as pool:
        async with await pool.request("GET", "/stream") as response:
            got: list[bytes] = []
            async for piece in response.pieces():
                got.append(piece)
                if len(got) % 8 == 0:
                    await asyncio.sleep(0.005)
        assert b"".join(got) == BIG[: 2 * 1024 * 1024]
        assert await fetch(pool, "/stream") == BIG[: 2 * 1024 * 1024]
    assert server.connections == 1


# -- failures ---------------------------------------------------------------------------------------


async def test_a_refused_connection_is_connect_failed_and_frees_its_slot() -> None:
    port = free_port()
    async with pool_at(f"http://127.0.0.1:{port}", limit=1) as pool:
        with pytest.raises(ConnectFailed, match=f"cannot connect to 127.0.0.1:{port}"):
            await fetch(pool)
        assert pool._open == 0
        async with RawServer(always(sized(b"up now")), port=port):
            assert await fetch(pool) == b"up now"


_CHUNKED = head(headers=[("Transfer-Encoding", "chunked")])
BROKEN: dict[str, tuple[list[Step], type[Exception], str]] = {
    "closed-before-any-byte": ([CLOSE], Disconnected, "head"),
    "closed-mid-head": ([b"HTTP/1.1 200 OK\r\nContent-Le", CLOSE], Disconnected, "head"),
    "closed-mid-length-body": ([head(headers=[("Content-Length", "100")]) + b"x" * 10, CLOSE], Disconnected, "body"),
    "closed-mid-chunk-size": ([_CHUNKED + chunk(b"abc") + b"1", CLOSE], Disconnected, "body"),
    "garbage": ([b"SSH-2.0-OpenSSH_9.2\r\n", HANG], ProtocolFailure, "head"),
    "bad-header-line": ([b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", HANG], ProtocolFailure, "head"),
    "bad-chunk-size": ([_CHUNKED + b"zz\r\n", HANG], ProtocolFailure, "body"),
    "headers-without-end": (
        [b"HTTP/1.1 200 OK\r\n", *[b"X-Pad: " + b"a" * 1000 + b"\r\n"] * 100, HANG],
        ProtocolFailure,
        "head",
    ),
    "not-gzip": ([sized(b"not gzip at all", _gzip_header("gzip"))], ProtocolFailure, "body"),
    "gzip-bad-checksum": ([sized(gzipped(BODY)[:-12] + b"\x00" * 12, _gzip_header("gzip"))], ProtocolFailure, "body"),
}


@pytest.mark.parametrize("broken", list(BROKEN))
@pytest.mark.parametrize("how", ["read", "pieces"])
async def test_a_broken_answer_raises_its_failure_and_the_pool_goes_on(broken: str, how: str) -> None:
    script, failure, during = BROKEN[broken]
    async with RawServer(in_turn(script, [sized(b"fine")])) as server, pool_at(server.url, limit=1) as pool:
        with pytest.raises(failure):
            await _request_and_body(pool, how, during)
        assert await asyncio.wait_for(fetch(pool), 1.0) == b"fine"
        assert pool._open == 1
    assert server.connections in {1, 2}  # a body that did not decode may leave a sound connection


@pytest.mark.parametrize("how", ["read", "pieces"])
async def test_a_gzip_body_cut_short_is_a_protocol_failure(how: str) -> None:
    cut = gzipped(BIG[:100_000])[:-100]
    script: list[Step] = [sized(cut, _gzip_header("gzip"))]
    async with RawServer(in_turn(script, [sized(b"fine")])) as server, pool_at(server.url) as pool:
        response = await pool.request("GET", "/cut")
        with pytest.raises(ProtocolFailure, match="compressed body"):
            await _body(response, how)
        assert await fetch(pool) == b"fine"  # the answer's framing was sound: the connection goes on
    assert server.connections == 1


async def test_no_answer_within_the_limit_is_a_timeout_and_closes_the_connection() -> None:
    async with RawServer(in_turn([HANG], [sized(b"fine")])) as server, pool_at(server.url, limit=1) as pool:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            await pool.request("GET", "/hang", within=0.2)
        assert 0.18 <= loop.time() - started < 0.5
        assert await server.client_closed(0) - started < 0.5
        assert pool._open == 0
        assert await fetch(pool) == b"fine"


@pytest.mark.parametrize("how", ["read", "pieces", "lines"])
async def test_a_body_past_the_limit_is_a_timeout_and_closes_the_connection(how: str) -> None:
    slow: list[Step] = [head(headers=[("Content-Length", "30")]), b"line 1\n", Pause(0.1), b"line 2\n", HANG]
    async with RawServer(in_turn(slow, [sized(b"fine")])) as server, pool_at(server.url, limit=1) as pool:
        loop = asyncio.get_running_loop()
        started = loop.time()
        response = await pool.request("GET", "/slow", within=0.3)
        got: list[bytes] = []
        with pytest.raises(TimeoutError):
            await _collect(response, how, got)
        assert b"".join(got) == (b"" if how == "read" else b"line 1\nline 2\n")
        assert 0.28 <= loop.time() - started < 0.6
        assert await server.client_closed(0) - started < 0.6
        assert pool._open == 0
        assert await fetch(pool) == b"fine"


async def test_a_slow_answer_inside_the_limit_arrives_whole() -> None:
    slow: list[Step] = [
        head(headers=[("Content-Length", "6")]),
        Pause(0.03),
        b"sl",
        Pause(0.03),
        b"ow",
        Pause(0.03),
        b"ly",
    ]
    async with RawServer(always(*slow)) as server, pool_at(server.url) as pool:
        assert await fetch(pool, within=0.2) == b"slowly"
        assert await fetch(pool, within=0.2) == b"slowly"
        await asyncio.sleep(0.25)  # past both limits: their timers were cancelled, the idle connection is sound
        assert await fetch(pool) == b"slowly"
    assert server.connections == 1


# -- cancellation and leaving early -----------------------------------------------------------------


async def cancel_closes_the_connection(task: asyncio.Task[Any], server: RawServer, pool: Pool) -> None:
    """Cancel ``task``: its connection (the server's first) closes at once, its slot is free, and
    the next request (answered ``fine``) goes through."""
    cancelled_at = asyncio.get_running_loop().time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await server.client_closed(0) - cancelled_at < 0.1
    assert pool._open == 0
    assert await fetch(pool) == b"fine"


async def test_cancelling_a_request_awaiting_its_head_closes_the_connection() -> None:
    async with RawServer(in_turn([HANG], [sized(b"fine")])) as server, pool_at(server.url, limit=1) as pool:
        task = asyncio.create_task(pool.request("GET", "/hang"))
        await until(lambda: len(server.requests) == 1)
        await cancel_closes_the_connection(task, server, pool)


async def test_cancelling_a_read_mid_body_closes_the_connection() -> None:
    slow: list[Step] = [head(headers=[("Content-Length", "100")]), b"x" * 10, HANG]
    async with RawServer(in_turn(slow, [sized(b"fine")])) as server, pool_at(server.url, limit=1) as pool:
        response = await pool.request("GET", "/slow")
        task = asyncio.create_task(response.read())
        await asyncio.sleep(0.05)
        await cancel_closes_the_connection(task, server, pool)


async def test_leaving_a_response_before_its_end_closes_the_connection() -> None:
    answer: list[Step] = [head(headers=[("Content-Length", "20")]), b"0123456789", Pause(0.05), b"abcdefghij"]
    async with RawServer(always(*answer)) as server, pool_at(server.url) as pool:
        async with await pool.request("GET", "/part") as response:
            async for piece in response.pieces():
                assert piece == b"0123456789"
                break
        await server.client_closed(0)
        assert pool._open == 0
        assert await fetch(pool) == b"0123456789abcdefghij"
    assert server.connections == 2


async def test_a_response_read_to_its_end_gives_the_connection_back() -> None:
    async with RawServer(always(sized(b"whole"))) as server, pool_at(server.url) as pool:
        async with await pool.request("GET", "/") as response:
            assert [line async for line in lines_of(response)] == [b"whole"]
        assert (pool._open, len(pool._idle)) == (1, 1)
        assert await fetch(pool) == b"whole"
        async with await pool.request("GET", "/"):
            pass  # its body came with the head but was never taken: left unread, it is closed
        assert (pool._open, len(pool._idle)) == (0, 0)
        assert await fetch(pool) == b"whole"
    assert server.connections == 2


# -- closing the pool -------------------------------------------------------------------------------


async def test_aclose_closes_idle_connections_and_later_requests_fail() -> None:
    async with RawServer(always(sized(b"ok"))) as server:
        pool = Pool(server.url)
        assert await fetch(pool) == b"ok"
        await pool.aclose()
        await server.client_closed(0)
        with pytest.raises(ConnectFailed, match="closed"):
            await fetch(pool)
    assert server.connections == 1


async def test_aclose_fails_waiters_and_closes_busy_connections_when_they_finish() -> None:
    async with RawServer(always(sized(b"ok"))) as server:
        pool = Pool(server.url, limit=1)
        busy = await pool.request("GET", "/busy")
        waiter = asyncio.create_task(fetch(pool))
        await until(lambda: len(pool._waiters) == 1)
        await pool.aclose()
        with pytest.raises(ConnectFailed, match="closed"):
            await waiter
        assert await busy.read() == b"ok"
        await server.client_closed(0)
        assert (pool._open, pool._idle) == (0, [])


# -- a real nginx -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nginx() -> Iterator[NginxUrls]:
    with nginx_upstream() as urls:
        yield urls


def _local_port(response: Response) -> int:
    assert response._conn is not None
    assert response._conn.transport is not None
    return int(response._conn.transport.get_extra_info("sockname")[1])


async def test_nginx_keeps_one_connection_for_sequential_requests(nginx: NginxUrls) -> None:
    ports = set()
    async with pool_at(nginx.json) as pool:
        for _ in range(20):
            async with await pool.request("GET", "/models", within=2.0) as response:
                ports.add(_local_port(response))
                assert (response.status, await response.read()) == (200, models_body(JSON_MODEL))
    assert len(ports) == 1


async def test_nginx_concurrent_requests_stay_within_the_limit(nginx: NginxUrls) -> None:
    ports: list[int] = []

    async def one() -> bytes:
        async with await pool.request("GET", "/models", within=2.0) as response:
            ports.append(_local_port(response))
            return await response.read()

    async with pool_at(nginx.json, limit=3) as pool:
        bodies = await asyncio.gather(*(one() for _ in range(12)))
        assert pool._open <= 3
    assert bodies == [models_body(JSON_MODEL)] * 12
    assert 1 <= len(set(ports)) <= 3


async def test_nginx_sse_stream_comes_through_lines(nginx: NginxUrls) -> None:
    async with pool_at(nginx.sse, headers={"Content-Type": "application/json"}) as pool:
        for _ in range(2):
            async with await pool.request("POST", "/chat/completions", b'{"stream":true}', within=2.0) as response:
                assert response.status == 200
                assert response.header("content-type") == "text/event-stream"
                lines = [line async for line in lines_of(response)]
            assert lines == stream_body().splitlines(keepends=True)
        assert (pool._open, len(pool._idle)) == (1, 1)


# -- when a request goes out ------------------------------------------------------------------------


async def test_a_request_goes_out_at_once_alone_and_at_the_turns_end_beside_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = asyncio.Event()

    def answer(request: RawRequest) -> Sequence[Step]:
        return [Until(release), sized(b"held")] if request.target == "/held" else [sized(request.target.encode())]

    async with RawServer(answer) as server, pool_at(server.url) as pool:
        await asyncio.gather(fetch(pool, "/warm-1"), fetch(pool, "/warm-2"))  # two idle connections
        writes = record_socket_writes(monkeypatch)

        def sent(target: bytes) -> bool:
            return any(w.startswith(b"GET " + target + b" ") for w in writes)

        held = asyncio.create_task(fetch(pool, "/held"))
        await asyncio.sleep(0)  # its first step takes an idle connection and writes: it is alone
        assert sent(b"/held")
        beside = asyncio.create_task(fetch(pool, "/beside"))
        await asyncio.sleep(0)  # the same, with "/held" in flight: the write waits for the turn's end
        assert not sent(b"/beside")
        await asyncio.sleep(0)
        assert sent(b"/beside")
        assert await beside == b"/beside"
        release.set()
        assert await held == b"held"
    assert server.connections == 2
