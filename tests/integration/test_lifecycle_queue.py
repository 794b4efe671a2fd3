"""A client that leaves while its call waits in the admission queue is dropped from it at once.

The real gateway with one call per model at a time, in front of the upstream process that takes
its time (``tests/support/hostile_upstream.py``). One call holds the slot; a second client queues
behind it and hangs up. Its place must go at once (``/healthz`` admission ``waiting`` and the
``lattice_queue_depth`` gauge back to 0), the upstream must never see its call, and once the first
call ends nothing is left held.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.hostile_upstream import HostileUpstream, hostile_upstream
from tests.support.lifecycle import admission, leave_after, requests_with_status, until, wait_idle
from tests.support.procs import RunningProcess
from tests.support.servers import backends_toml, gateway_process

pytestmark = pytest.mark.slow

CHAT = [{"role": "user", "content": "hi"}]
QUEUE_DEPTH = re.compile(r'^lattice_queue_depth\{model="([^"]+)"\} (\S+)$', re.MULTILINE)


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[HostileUpstream, RunningProcess]]:
    with (
        hostile_upstream(["wait-2500"]) as upstream,
        gateway_process(backends_toml([("hostile", upstream.url)]), env={"MLX_PER_MODEL_INFLIGHT_CAP": "1"}) as gateway,
    ):
        yield upstream, gateway


def queue_depth(url: str) -> float:
    return sum(float(value) for _, value in QUEUE_DEPTH.findall(httpx.get(url + "/metrics", timeout=10).text))


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
async def test_a_client_that_leaves_the_queue_is_dropped_at_once(
    lab: tuple[HostileUpstream, RunningProcess], stream: bool
) -> None:
    upstream, gateway = lab
    tag = f"queued-{stream}"
    before = requests_with_status(gateway.url, "/v1/chat/completions", 499)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        holder = asyncio.create_task(
            client.post("/v1/chat/completions", json={"model": "wait-2500", "messages": CHAT, "user": "holder"})
        )
        await until(lambda: admission(gateway.url)["inflight"] == 1)
        body = {"model": "wait-2500", "messages": CHAT, "user": tag, "stream": stream}
        leaving = asyncio.create_task(leave_after(gateway.url, "/v1/chat/completions", body, 0.8))
        await until(lambda: admission(gateway.url)["waiting"] == 1)
        assert queue_depth(gateway.url) == 1
        left = await leaving
        await until(lambda: admission(gateway.url)["waiting"] == 0, seconds=0.5)
        dropped_after = time.monotonic() - left.closed_at
        assert queue_depth(gateway.url) == 0
        if stream:  # a waiting stream has its head and queue-position comments already
            assert b": queue position 1" in left.received
        answer = await holder
    assert answer.status_code == 200
    wait_idle(gateway.url)
    assert upstream.events(user=tag) == []  # nobody was served for the client that left
    assert requests_with_status(gateway.url, "/v1/chat/completions", 499) == before + 1
    print(f"queue place freed {dropped_after * 1000:.1f} ms after the client left")


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
async def test_a_deadline_that_passes_in_the_queue(lab: tuple[HostileUpstream, RunningProcess], stream: bool) -> None:
    """Its place goes at the deadline; a plain 504 (with the queue details), or on a stream that
    has shown queue positions, the error event and ``[DONE]``."""
    upstream, gateway = lab
    tag = f"queue-deadline-{stream}"
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        holder = asyncio.create_task(
            client.post("/v1/chat/completions", json={"model": "wait-2500", "messages": CHAT, "user": "holder"})
        )
        await until(lambda: admission(gateway.url)["inflight"] == 1)
        body = {"model": "wait-2500", "messages": CHAT, "user": tag, "stream": stream, "queue": {"deadline_ms": 500}}
        started = time.monotonic()
        answer = await client.post("/v1/chat/completions", json=body)
        took = time.monotonic() - started
        assert admission(gateway.url)["waiting"] == 0
        await holder
    assert took < 2.0  # well before the holder's call ends
    if stream:
        assert answer.status_code == 200
        frames = [frame for frame in answer.content.split(b"\n\n") if frame]
        assert frames[0] == b": queue position 1"
        assert frames[-1] == b"data: [DONE]"
        assert b'"code":"deadline_exceeded"' in frames[-2]
    else:
        assert answer.status_code == 504
        error = answer.json()["error"]
        assert error["code"] == "deadline_exceeded"
    wait_idle(gateway.url)
    assert upstream.events(user=tag) == []
