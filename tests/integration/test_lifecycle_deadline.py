"""A request's deadline bounds the whole request: queue, upstream call, stream, swarm.

The real gateway in front of the upstream process that takes 4 s (``tests/support/hostile_upstream.py``).
Past the deadline the upstream call is closed and the client gets ``504 deadline_exceeded`` — or,
on a stream whose head is out, an error event and ``[DONE]`` and a proper end of the chunked body.
Every way of setting it (``queue.deadline_ms``, ``X-Lattice-Deadline-Ms``, ``X-MLX-Deadline-Ms``)
counts, and nothing is left held afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.support.hostile_upstream import HostileUpstream, hostile_upstream
from tests.support.lifecycle import send_and_read, until, wait_idle
from tests.support.procs import RunningProcess
from tests.support.servers import backends_toml, gateway_process

pytestmark = pytest.mark.slow

CHAT = [{"role": "user", "content": "hi"}]
DEADLINE_MS = 600
# The upstream would take 4 s: an answer within this many seconds was cut by the deadline.
WELL_BEFORE_THE_UPSTREAM = 2.5


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[HostileUpstream, RunningProcess]]:
    models = ["fast", "wait-4000", "drip-4000", "embed-wait-4000"]
    with hostile_upstream(models) as upstream, gateway_process(backends_toml([("hostile", upstream.url)])) as gateway:
        yield upstream, gateway


async def closed_upstream(upstream: HostileUpstream, since: float, calls: int = 1) -> None:
    """The calls made since ``since`` (the tests of this module run one after the other) all ended
    with the gateway hanging up, none answered."""
    await until(lambda: all(e.ended is not None for e in upstream.events(since=since)))
    events = upstream.events(since=since)
    assert len(events) == calls, events
    assert all(e.hung_up and not e.answered for e in events), events


async def post(
    gateway: RunningProcess, path: str, body: dict[str, Any], **headers: str
) -> tuple[httpx.Response, float, float]:
    """The answer, how long it took and when it was sent."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        answer = await client.post(path, json=body, headers=headers)
    return answer, time.monotonic() - started, started


WAYS = [
    pytest.param({"queue": {"deadline_ms": DEADLINE_MS}}, {}, id="body"),
    pytest.param({}, {"X-Lattice-Deadline-Ms": str(DEADLINE_MS)}, id="x-lattice-header"),
    pytest.param({}, {"X-MLX-Deadline-Ms": str(DEADLINE_MS)}, id="x-mlx-header"),
]


@pytest.mark.parametrize(("extra", "headers"), WAYS)
async def test_a_deadline_cuts_the_upstream_call(
    lab: tuple[HostileUpstream, RunningProcess], extra: dict[str, Any], headers: dict[str, str]
) -> None:
    upstream, gateway = lab
    body = {"model": "wait-4000", "messages": CHAT, **extra}
    answer, took, sent = await post(gateway, "/v1/chat/completions", body, **headers)
    assert answer.status_code == 504, answer.text
    error = answer.json()["error"]
    assert error["code"] == error["type"] == "deadline_exceeded"
    assert DEADLINE_MS / 1000 <= took < WELL_BEFORE_THE_UPSTREAM
    await closed_upstream(upstream, sent)
    wait_idle(gateway.url)


ROUTES = [
    pytest.param("/v1/completions", {"model": "wait-4000", "prompt": "hi"}, id="completions"),
    pytest.param("/v1/embeddings", {"model": "embed-wait-4000", "input": "hi"}, id="embeddings"),
    pytest.param("/v1/responses", {"model": "wait-4000", "input": "hi"}, id="responses"),
    pytest.param("/v1/messages", {"model": "wait-4000", "max_tokens": 8, "messages": CHAT}, id="messages"),
]


@pytest.mark.parametrize(("path", "body"), ROUTES)
async def test_every_route_answers_504_past_its_deadline(
    lab: tuple[HostileUpstream, RunningProcess], path: str, body: dict[str, Any]
) -> None:
    upstream, gateway = lab
    answer, took, sent = await post(gateway, path, {**body}, **{"X-Lattice-Deadline-Ms": str(DEADLINE_MS)})
    assert answer.status_code == 504, answer.text
    assert took < WELL_BEFORE_THE_UPSTREAM
    data = answer.json()
    if path == "/v1/messages":  # Anthropic's error shape on Anthropic's route
        assert data["type"] == "error"
        assert "deadline" in data["error"]["message"]
    else:
        assert data["error"]["code"] == "deadline_exceeded"
    await closed_upstream(upstream, sent)
    wait_idle(gateway.url)


def sse_events(raw: bytes) -> tuple[bytes, bytes]:
    """The head and the de-chunked body of a raw chunked answer (asserting it ends properly)."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower(), head
    body = b""
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert rest == b"\r\n", rest  # the chunked body's terminator, then nothing
            return head, body
        body, rest = body + rest[:size], rest[size + 2 :]


STREAMS = [
    pytest.param("/v1/chat/completions", {"model": "drip-4000", "messages": CHAT}, id="chat"),
    pytest.param("/v1/completions", {"model": "drip-4000", "prompt": "hi"}, id="completions"),
    pytest.param("/v1/responses", {"model": "drip-4000", "input": "hi"}, id="responses"),
    pytest.param("/v1/messages", {"model": "drip-4000", "max_tokens": 8, "messages": CHAT}, id="messages"),
    pytest.param("/swarm/vote", {"models": ["drip-4000"], "messages": CHAT, "strategy": "first-success"}, id="swarm"),
]


@pytest.mark.parametrize(("path", "body"), STREAMS)
async def test_a_stream_past_its_deadline_ends_with_an_error_event(
    lab: tuple[HostileUpstream, RunningProcess], path: str, body: dict[str, Any]
) -> None:
    upstream, gateway = lab
    request = {**body, "stream": True, "queue": {"deadline_ms": 900}}
    sent = time.monotonic()
    raw = await send_and_read(gateway.url, path, request)
    took = time.monotonic() - sent
    head, events = sse_events(raw)
    assert head.startswith(b"HTTP/1.1 200"), head
    assert took < WELL_BEFORE_THE_UPSTREAM
    frames = [frame for frame in events.split(b"\n\n") if frame]
    if path in ("/v1/responses", "/v1/messages"):  # named events, no [DONE]
        kind, data = frames[-1].split(b"\n", 1)
        assert kind == b"event: error"
        assert b"deadline" in data
    else:
        assert frames[-1] == b"data: [DONE]"
        error = orjson.loads(frames[-2].removeprefix(b"data: "))["error"]
        assert error["code"] == "deadline_exceeded"
        assert len(frames) > 3  # chunks came before the deadline cut the stream
    await closed_upstream(upstream, sent)
    wait_idle(gateway.url)


async def test_a_stream_whose_first_byte_misses_the_deadline_is_a_plain_504(
    lab: tuple[HostileUpstream, RunningProcess],
) -> None:
    upstream, gateway = lab
    body = {"model": "wait-4000", "messages": CHAT, "stream": True, "user": "first-byte"}
    answer, took, sent = await post(gateway, "/v1/chat/completions", body, **{"X-MLX-Deadline-Ms": str(DEADLINE_MS)})
    assert answer.status_code == 504
    assert answer.json()["error"]["code"] == "deadline_exceeded"
    assert took < WELL_BEFORE_THE_UPSTREAM
    await closed_upstream(upstream, sent)
    wait_idle(gateway.url)


SWARMS = [
    pytest.param("/swarm/vote", {"models": ["wait-4000", "wait-4000"], "judge": "fast"}, 2, id="vote"),
    pytest.param("/swarm/fanout", {"models": ["wait-4000", "wait-4000"]}, 2, id="fanout"),
    pytest.param("/swarm/pipeline", {"steps": [{"name": "a", "model": "wait-4000"}]}, 1, id="pipeline"),
    pytest.param("/swarm/debate", {"models": ["wait-4000", "wait-4000"], "rounds": 1, "judge": "fast"}, 2, id="debate"),
    pytest.param(
        "/v1/chat/completions",
        {"model": "swarmCouncil", "swarm": {"models": ["wait-4000", "wait-4000"], "judge": "fast"}},
        2,
        id="chat-meta-model",
    ),
]


@pytest.mark.parametrize(("path", "body", "calls"), SWARMS)
async def test_a_deadline_bounds_the_whole_swarm(
    lab: tuple[HostileUpstream, RunningProcess], path: str, body: dict[str, Any], calls: int
) -> None:
    upstream, gateway = lab
    request = {**body, "messages": CHAT, "queue": {"deadline_ms": 700}}
    answer, took, sent = await post(gateway, path, request)
    assert answer.status_code == 504, answer.text
    assert answer.json()["error"]["code"] == "deadline_exceeded"
    assert took < WELL_BEFORE_THE_UPSTREAM
    await closed_upstream(upstream, sent, calls)
    wait_idle(gateway.url)


async def test_a_request_that_finishes_in_time_is_untouched(lab: tuple[HostileUpstream, RunningProcess]) -> None:
    _, gateway = lab
    answer, _, _ = await post(
        gateway, "/v1/chat/completions", {"model": "fast", "messages": CHAT}, **{"X-Lattice-Deadline-Ms": "10000"}
    )
    assert answer.status_code == 200
    wait_idle(gateway.url)
