"""The original's legacy timing headers and its 429 queue details, black-box over a scripted upstream
process (one call per model at once; ``hang`` answers five seconds late, holding its model's slot)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.compat.original.conftest import settled

pytestmark = pytest.mark.slow

ASK = [{"role": "user", "content": "hi"}]


def assert_legacy_agree(response: httpx.Response, *, upstream: bool = True) -> None:
    """``X-MLX-*-Ms`` are whole milliseconds and say what ``X-Lattice-*-Ms`` say."""
    queue = response.headers["x-mlx-queue-wait-ms"]
    assert queue.isdigit()
    assert int(queue) == round(float(response.headers["x-lattice-queue-ms"]))
    if upstream:
        latency = response.headers["x-mlx-latency-ms"]
        assert latency.isdigit()
        assert int(latency) == round(float(response.headers["x-lattice-upstream-ms"]))


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"model": "fast-model", "messages": ASK}),
        ("/v1/completions", {"model": "fast-model", "prompt": "hi"}),
    ],
)
def test_legacy_timing_headers_beside_ours(scripted: httpx.Client, path: str, body: dict[str, object]) -> None:
    response = scripted.post(path, json=body)
    assert response.status_code == 200, response.text
    assert_legacy_agree(response)
    assert response.headers["x-model-routed-to"] == "upstream/fast-model"


def test_a_stream_sends_the_queue_wait_with_its_headers(scripted: httpx.Client) -> None:
    body = {"model": "fast-model", "messages": ASK, "stream": True}
    with scripted.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert_legacy_agree(response, upstream=False)
        assert response.read().endswith(b"data: [DONE]\n\n")


@contextmanager
def model_busy(client: httpx.Client) -> Iterator[threading.Thread]:
    """A call to ``hang`` holds that model's only slot while the body runs."""
    call = threading.Thread(
        target=lambda: client.post("/v1/chat/completions", json={"model": "hang", "messages": ASK}), daemon=True
    )
    call.start()
    deadline = time.monotonic() + 15
    while client.get("/healthz").json()["admission"]["inflight_by_alias"].get("hang", 0) < 1:
        assert time.monotonic() < deadline, "the long call never started"
        time.sleep(0.02)
    yield call
    call.join(30)


@pytest.mark.parametrize(
    ("headers", "queue"),
    [({"X-MLX-Max-Queue-Wait-Ms": "300"}, None), ({}, {"max_queue_wait_ms": 300, "priority": 3})],
    ids=["header", "body"],
)
def test_a_queue_timeout_carries_the_originals_queue_fields(
    scripted: httpx.Client, headers: dict[str, str], queue: dict[str, int] | None
) -> None:
    body: dict[str, object] = {"model": "hang", "messages": ASK, **({"queue": queue} if queue else {})}
    with model_busy(scripted):
        response = scripted.post("/v1/chat/completions", json=body, headers=headers)
    assert response.status_code == 429
    error = response.json()["error"]
    assert (error["type"], error["status"]) == ("queue_timeout", 429)
    assert error["retry"].keys() >= {"retry_after_sec", "jitter_sec", "strategy"}
    details = error["queue"]
    assert (details["inflight_for_model"], details["inflight_total"]) == (1, 1)
    assert details["queued_for_model"] >= 0
    assert details["queued_total"] >= details["queued_for_model"]
    assert 300 <= details["waited_ms"] < 3000
    assert response.headers["retry-after"].isdigit()
    assert response.headers["x-mlx-inflight"] == "1"
    assert response.headers["x-mlx-queue-depth"] == str(details["queued_for_model"])
    assert response.headers["x-mlx-queue-wait-ms"] == str(details["waited_ms"])
    assert settled(scripted) == {"inflight": 0, "queued": 0}
