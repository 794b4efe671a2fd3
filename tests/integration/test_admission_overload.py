"""A burst of ten times the capacity against the real gateway in front of llama.cpp's server with
the real SmolLM2, one call at a time per model and a small queue."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.support.models import SMOLLM2_ID
from tests.support.procs import RunningProcess
from tests.support.servers import gateway_process

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

GRACE = 0.75  # seconds: event-loop and process scheduling on a busy 2-core machine
KINDS = {"queue_overloaded_total", "queue_overloaded_model", "queue_timeout"}
PROMPT = "Count from 1 to 200, separated by commas."


@dataclass
class Answer:
    status: int
    seconds: float
    queue_ms: float | None
    retry_after: str | None
    kind: str | None
    priority: int
    key: str
    deadline_ms: float


@pytest.fixture(scope="module")
def gateway(smollm2_server: RunningProcess) -> Iterator[RunningProcess]:
    toml = f'[[backends]]\nname = "llama"\ntype = "openai"\nurl = "{smollm2_server.url}"\n'
    env = {"MLX_PER_MODEL_INFLIGHT_CAP": "1", "MLX_QUEUE_MAX_PER_MODEL": "4", "MLX_QUEUE_MAX_TOTAL": "8"}
    with gateway_process(toml, env=env) as proc:
        yield proc


async def ask(client: httpx.AsyncClient, priority: int, deadline_ms: float, key: str = "k") -> Answer:
    body = {
        "model": SMOLLM2_ID,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 64,
        "temperature": 0,
        "queue": {"priority": priority, "deadline_ms": deadline_ms, "max_queue_wait_ms": deadline_ms},
    }
    started = time.perf_counter()
    reply = await client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
    seconds = time.perf_counter() - started
    queue_ms = reply.headers.get("X-Lattice-Queue-Ms")
    kind = reply.json()["error"]["type"] if reply.status_code != 200 else None
    return Answer(
        reply.status_code,
        seconds,
        None if queue_ms is None else float(queue_ms),
        reply.headers.get("Retry-After"),
        kind,
        priority,
        key,
        deadline_ms,
    )


def check_answer(answer: Answer) -> None:
    assert answer.status in (200, 429, 504), answer
    if answer.status == 504:  # the deadline bounds the whole call, not only its wait
        assert answer.kind == "deadline_exceeded", answer
        assert answer.seconds <= answer.deadline_ms / 1000 + GRACE, answer
    elif answer.status == 429:
        assert answer.kind in KINDS
        assert answer.retry_after is not None
        assert answer.retry_after.isdigit()
        assert int(answer.retry_after) >= 1
        assert answer.seconds <= answer.deadline_ms / 1000 + GRACE, answer
    else:
        assert answer.queue_ms is not None
        assert answer.queue_ms / 1000 <= answer.deadline_ms / 1000 + GRACE, answer
        assert answer.seconds <= answer.deadline_ms / 1000 + GRACE, answer  # never a success after it


async def service_seconds(client: httpx.AsyncClient) -> float:
    """One call's time right now: the machine is shared, so deadlines are set in multiples of it."""
    answer = await ask(client, 0, 600_000, key="calibrate")
    assert answer.status == 200
    return answer.seconds


async def test_burst_of_ten_times_capacity(gateway: RunningProcess) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=None) as client:
        service = await service_seconds(client)
        blocker = asyncio.create_task(ask(client, 0, 60_000 * service))
        await asyncio.sleep(min(0.3, service / 4))
        # 3 urgent calls with room to spare, 7 background calls that must start within 2.5 calls' time
        plan = [(5, 20 * service) if i in (1, 4, 7) else (-5, 2.5 * service) for i in range(10)]
        burst = [ask(client, p, d * 1000) for p, d in plan]
        answers = [*await asyncio.gather(*burst), await blocker]
    for answer in answers:
        check_answer(answer)
    assert 200 in {a.status for a in answers}
    assert {429, 504} & {a.status for a in answers}
    high = [a.queue_ms for a in answers if a.priority == 5 and a.status == 200 and a.queue_ms is not None]
    low = [a.queue_ms for a in answers if a.priority == -5 and a.status == 200 and a.queue_ms is not None]
    assert high, answers
    assert len(high) >= len(low)
    if low:
        assert statistics.median(high) < statistics.median(low)
    # the background calls are the ones shed (or, their deadline passed, cut)
    assert any(a.status in (429, 504) for a in answers if a.priority == -5)


async def test_a_flood_from_one_key_cannot_push_another_past_its_deadline(gateway: RunningProcess) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=None) as client:
        service = await service_seconds(client)
        flood = [asyncio.create_task(ask(client, 0, 60_000 * service, key="flood")) for _ in range(6)]
        await asyncio.sleep(min(0.3, service / 4))
        # first-come-first-served would finish the second polite call after ~8 service times (6 flood
        # calls and the first polite one ahead of it); taking turns, after ~4. The deadline sits between.
        polite = await asyncio.gather(*(ask(client, 0, 6_500 * service, key="polite") for _ in range(2)))
        flooded = await asyncio.gather(*flood)
    for answer in [*polite, *flooded]:
        check_answer(answer)
    assert [a.status for a in polite] == [200, 200], polite
    assert sum(a.status == 429 for a in flooded) >= 2  # the flood is what gets shed
