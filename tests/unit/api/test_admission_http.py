"""Admission through the HTTP layer with a fake backend: 429 envelopes, queue headers, SSE queue
comments, /healthz counts."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from local_lattice.api.app import create_app
from local_lattice.backends.fake import FakeBackend
from local_lattice.config import load
from local_lattice.gateway import Gateway

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def setup() -> AsyncIterator[tuple[httpx.AsyncClient, FakeBackend, Gateway]]:
    config = load(
        None,
        {"MLX_PER_MODEL_INFLIGHT_CAP": "1", "MLX_QUEUE_MAX_PER_MODEL": "1", "MLX_QUEUE_RETRY_JITTER_SEC": "0.25"},
    )
    backend = FakeBackend.with_models("fake", "m", delay=0.3, token_delay=0.01)
    app = create_app(config, {"fake": backend})
    gateway = Gateway(config, {"fake": backend})
    app.state.gateway = gateway
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield client, backend, gateway
    await gateway.aclose()


async def test_overload_is_a_plain_429_with_the_originals_details(
    setup: tuple[httpx.AsyncClient, FakeBackend, Gateway],
) -> None:
    client, _, _ = setup
    answers = await asyncio.gather(*(client.post("/v1/chat/completions", json=CHAT) for _ in range(3)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 200, 429]
    ok = [a for a in answers if a.status_code == 200]
    assert max(float(a.headers["X-Lattice-Queue-Ms"]) for a in ok) > 200  # the second one really waited
    for answer in ok:  # the original's legacy headers: whole milliseconds, agreeing with ours
        assert answer.headers["X-MLX-Queue-Wait-Ms"] == str(round(float(answer.headers["X-Lattice-Queue-Ms"])))
        assert answer.headers["X-MLX-Latency-Ms"] == str(round(float(answer.headers["X-Lattice-Upstream-Ms"])))
    rejected = next(a for a in answers if a.status_code == 429)
    error = rejected.json()["error"]
    assert error["type"] == "queue_overloaded_model"
    assert error["retry"]["strategy"]
    assert error["retry"]["jitter_sec"] == 0.25
    assert error["queue"]["model_depth"] == 1
    # The original's names for the same counts, beside ours.
    assert (error["queue"]["queued_for_model"], error["queue"]["inflight_for_model"]) == (1, 1)
    assert (error["queue"]["queued_total"], error["queue"]["inflight_total"], error["queue"]["waited_ms"]) == (1, 1, 0)
    assert error["status"] == 429
    assert int(rejected.headers["Retry-After"]) >= 1
    assert rejected.headers["X-MLX-Retry-Jitter-Sec"] == "0.25"
    assert rejected.headers["X-MLX-Queue-Depth"] == "1"
    assert rejected.headers["X-MLX-InFlight"] == "1"


async def test_past_deadline_and_negative_wait(setup: tuple[httpx.AsyncClient, FakeBackend, Gateway]) -> None:
    client, backend, _ = setup
    late = await client.post("/v1/chat/completions", json={**CHAT, "queue": {"deadline_ms": 1_000_000_000_000}})
    assert late.status_code == 504  # a deadline that has passed: waiting cannot help, so not a 429
    assert late.json()["error"]["type"] == late.json()["error"]["code"] == "deadline_exceeded"
    bad = await client.post("/v1/chat/completions", json=CHAT, headers={"X-MLX-Max-Queue-Wait-Ms": "-1"})
    assert bad.status_code == 400
    assert not backend.seen


async def test_a_waiting_stream_sees_its_queue_position(
    setup: tuple[httpx.AsyncClient, FakeBackend, Gateway],
) -> None:
    client, backend, gateway = setup
    backend.delay = 1.3
    blocker = asyncio.create_task(client.post("/v1/chat/completions", json=CHAT))
    await asyncio.sleep(0.05)
    streamed = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    await blocker
    assert streamed.status_code == 200
    text = streamed.text
    assert text.startswith(": queue position 1\n\n")
    assert "data: [DONE]" in text
    assert '"content"' in text
    assert gateway.admission.snapshot()["inflight"] == 0


async def test_a_stream_that_times_out_in_the_queue_ends_with_the_429_envelope(
    setup: tuple[httpx.AsyncClient, FakeBackend, Gateway],
) -> None:
    client, backend, gateway = setup
    backend.delay = 1.0
    blocker = asyncio.create_task(client.post("/v1/chat/completions", json=CHAT))
    await asyncio.sleep(0.05)
    streamed = await client.post(
        "/v1/chat/completions", json={**CHAT, "stream": True}, headers={"X-Lattice-Max-Queue-Wait-Ms": "200"}
    )
    await blocker
    assert ": queue position 1" in streamed.text
    assert '"type":"queue_timeout"' in streamed.text
    assert streamed.text.endswith("data: [DONE]\n\n")
    assert gateway.admission.snapshot()["waiting"] == 0


async def test_a_stream_admitted_at_once_frees_its_slot_when_done(
    setup: tuple[httpx.AsyncClient, FakeBackend, Gateway],
) -> None:
    client, _, gateway = setup
    streamed = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert not streamed.text.startswith(":")
    assert gateway.admission.snapshot()["inflight"] == 0


async def test_healthz_shows_depths(setup: tuple[httpx.AsyncClient, FakeBackend, Gateway]) -> None:
    client, backend, _ = setup
    backend.delay = 0.5
    tasks = [asyncio.create_task(client.post("/v1/chat/completions", json=CHAT)) for _ in range(2)]
    await asyncio.sleep(0.1)
    health = (await client.get("/healthz")).json()["admission"]
    assert health["models"]["fake/m"]["inflight"] == 1
    assert health["models"]["fake/m"]["waiting"] == 1
    await asyncio.gather(*tasks)


async def test_a_queue_timeout_logs_the_wait_its_429_reports(
    setup: tuple[httpx.AsyncClient, FakeBackend, Gateway], caplog: pytest.LogCaptureFixture
) -> None:
    client, backend, gateway = setup
    backend.delay = 1.0
    caplog.set_level(logging.INFO, logger="lattice.request")
    blocker = asyncio.create_task(client.post("/v1/chat/completions", json=CHAT))
    await asyncio.sleep(0.05)
    wait = {"X-Lattice-Max-Queue-Wait-Ms": "200"}
    refused = await client.post("/v1/chat/completions", json=CHAT, headers=wait)
    streamed = await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=wait)
    await blocker
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "queue_timeout"
    header = refused.headers["X-Lattice-Queue-Ms"]
    assert float(header) >= 200  # the real wait
    gateway.observer.flush()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("lattice.request ")]
    refusal = next(line for line in lines if "status=429" in line)
    assert f"queue_ms={header} " in refusal
    assert "error=queue_timeout" in refusal
    # The stream got its 200 before it had to wait; its line still shows the wait and why it ended.
    assert '"type":"queue_timeout"' in streamed.text
    ended = next(line for line in lines if "status=200" in line and "error=queue_timeout" in line)
    found = re.search(r"queue_ms=([0-9.]+)", ended)
    assert found is not None
    assert float(found.group(1)) >= 200
