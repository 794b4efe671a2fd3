"""Stopping the gateway with a real SIGTERM: what finishes within the drain time finishes; a stream
still open after it ends with an error event ``server_shutting_down``, ``[DONE]`` and the chunked
body's terminator; a non-streamed call still running gets a 503; the upstream calls are closed and
the process exits on its own. The drain time is set by the config key, the environment variable
or ``lattice serve --drain-seconds``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import orjson
import pytest

from tests.support.hostile_upstream import HostileUpstream, hostile_upstream
from tests.support.lifecycle import send_and_read
from tests.support.procs import RunningProcess
from tests.support.servers import backends_toml, gateway_process

pytestmark = pytest.mark.slow

CHAT = [{"role": "user", "content": "hi"}]
DRAIN = 1.0


@pytest.fixture(scope="module")
def upstream() -> Iterator[HostileUpstream]:
    with hostile_upstream(["drip-10000", "drip-600", "wait-10000"]) as found:
        yield found


def dechunked(raw: bytes) -> tuple[bytes, bytes]:
    """The head and body of a chunked answer, asserting the body ends with its terminator."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    body = b""
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert rest == b"\r\n", rest
            return head, body
        body, rest = body + rest[:size], rest[size + 2 :]


def frames(body: bytes) -> list[bytes]:
    return [frame for frame in body.split(b"\n\n") if frame]


async def stop_during(gateway: RunningProcess) -> tuple[bytes, bytes, bytes, float, float]:
    """Open a long stream, a short one and a long non-streamed call; SIGTERM the gateway while
    they run. Returns the three raw answers, when the signal went and when the process was gone."""
    url, path = gateway.url, "/v1/chat/completions"
    long = asyncio.create_task(send_and_read(url, path, {"model": "drip-10000", "messages": CHAT, "stream": True}))
    short = asyncio.create_task(send_and_read(url, path, {"model": "drip-600", "messages": CHAT, "stream": True}))
    whole = asyncio.create_task(send_and_read(url, path, {"model": "wait-10000", "messages": CHAT}))
    await asyncio.sleep(0.4)
    signalled = time.monotonic()
    os.kill(gateway.proc.pid, signal.SIGTERM)
    answers = await asyncio.gather(long, short, whole)
    await asyncio.to_thread(gateway.proc.wait, 15)
    return answers[0], answers[1], answers[2], signalled, time.monotonic()


WAYS = [
    pytest.param({}, {}, ("--drain-seconds", str(DRAIN)), id="flag"),
    pytest.param({}, {"LATTICE_DRAIN_SECONDS": str(DRAIN)}, (), id="env"),
    pytest.param({"drain_seconds": DRAIN}, {}, (), id="config"),
]


@pytest.mark.parametrize(("server", "env", "args"), WAYS)
async def test_sigterm_drains_then_ends_open_streams_properly(
    upstream: HostileUpstream, server: dict[str, float], env: dict[str, str], args: tuple[str, ...]
) -> None:
    toml = backends_toml([("hostile", upstream.url)])
    if server:
        toml = toml.replace("[server]", "[server]\n" + "".join(f"{k} = {v}\n" for k, v in server.items()), 1)
    sent = time.monotonic()
    with gateway_process(toml, env=env, extra_args=args) as gateway:
        long, short, whole, signalled, gone = await stop_during(gateway)
        log = gateway.log()
    # uvicorn raises the signal again once it has shut down: the exit status of a SIGTERM, after cleanup.
    assert gateway.proc.returncode == -signal.SIGTERM, log[-3000:]

    head, body = dechunked(long)
    assert head.startswith(b"HTTP/1.1 200"), head
    *chunks, error, done = frames(body)
    assert done == b"data: [DONE]"
    assert orjson.loads(error.removeprefix(b"data: "))["error"]["code"] == "server_shutting_down"
    assert len(chunks) >= 3  # it streamed until the drain time was over

    head, body = dechunked(short)  # finished within the drain time: untouched
    assert frames(body)[-1] == b"data: [DONE]"
    assert b"server_shutting_down" not in body

    head, _, data = whole.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503"), head
    assert orjson.loads(data)["error"]["code"] == "server_shutting_down"

    assert DRAIN <= gone - signalled < DRAIN + 4
    calls = {e.model: e for e in upstream.events(since=sent)}
    assert calls["drip-10000"].hung_up
    assert calls["wait-10000"].hung_up
    assert calls["drip-600"].answered
    assert "Traceback" not in log
    assert "timeout graceful shutdown exceeded" not in log  # nothing was left for uvicorn to cancel
