"""Whatever fails inside the stream writer, its cleanup runs: the admission slot, the in-flight
gauge and the request's record.

The app with a fake backend and one call per model at a time, driven at the ASGI level with a
``send`` that fails the way a server refusing a head or a write does; then ``/healthz``,
``/metrics`` and the next call, through the same app, show that nothing is held.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from local_lattice.api.app import GatewayApp, create_app
from local_lattice.backends.fake import FakeBackend
from local_lattice.config import load
from local_lattice.gateway import Gateway

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
IN_FLIGHT = re.compile(r"^lattice_requests_in_flight\{[^}]*\} (\S+)$", re.MULTILINE)


@pytest.fixture
async def app() -> AsyncIterator[GatewayApp]:
    config = load(None, {"MLX_PER_MODEL_INFLIGHT_CAP": "1", "LATTICE_LEDGER_PATH": "off"})
    backend = FakeBackend.with_models("fake", "m", token_delay=0.01)
    application = create_app(config, {"fake": backend})
    gateway = Gateway(config, {"fake": backend})
    application.state.gateway = gateway
    yield application
    await gateway.aclose()


def scope_of(path: str) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"t"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2), "state": {},
    }  # fmt: skip


async def drive_with_failing_send(app: GatewayApp, fail_on: int, body: dict[str, Any]) -> BaseException | None:
    """One request whose ``send`` raises on its ``fail_on``-th message (0: the head)."""
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": orjson.dumps(body), "more_body": False}
        await asyncio.Event().wait()  # the client stays
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if len(sent) == fail_on:
            raise RuntimeError("Invalid HTTP header value." if fail_on == 0 else "the write failed")
        sent.append(message)

    try:
        await app(scope_of("/v1/chat/completions"), receive, send)
    except Exception as exc:
        return exc
    return None


async def nothing_held(app: GatewayApp) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        admission = (await client.get("/healthz")).json()["admission"]
        assert (admission["waiting"], admission["inflight"]) == (0, 0), admission
        metrics = (await client.get("/metrics")).text
        assert sum(float(v) for v in IN_FLIGHT.findall(metrics)) == 0
        assert 'status="500"' in metrics  # the broken stream is recorded, as a server-side failure
        for stream in (True, False):  # the model's one slot admits the next call
            answer = await client.post("/v1/chat/completions", json={**CHAT, "stream": stream})
            assert answer.status_code == 200


@pytest.mark.parametrize("fail_on", [0, 1, 2], ids=["head", "first-chunk", "second-chunk"])
async def test_a_failing_stream_writer_frees_the_slot_gauge_and_record(app: GatewayApp, fail_on: int) -> None:
    failure = await drive_with_failing_send(app, fail_on, CHAT)
    assert isinstance(failure, RuntimeError)  # the server sees it (and closes the connection)
    gateway: Gateway = app.state.gateway
    record = gateway.observer.events.requests[-1]
    assert (record.status, record.error_kind) == (500, "stream_write_failed")
    await nothing_held(app)


async def test_a_failing_writer_of_a_queued_stream_frees_its_place(app: GatewayApp) -> None:
    """A stream that had to wait writes its head and queue comments before it holds a slot."""
    gateway: Gateway = app.state.gateway
    backend = gateway.backends["fake"]
    assert isinstance(backend, FakeBackend)
    backend.delay = 0.5
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        holder = asyncio.create_task(client.post("/v1/chat/completions", json={**CHAT, "stream": False}))
        await asyncio.sleep(0.1)
        failure = await drive_with_failing_send(app, 1, CHAT)  # the first queue comment fails
        await holder
    assert isinstance(failure, RuntimeError)
    backend.delay = 0.0
    await nothing_held(app)
