"""Overload as each client sees it: with one call per model and no queue, a second concurrent call is
answered 429 by admission, which the ``openai`` and ``anthropic`` clients raise as ``RateLimitError``;
and the openai client's own retry waits the ``Retry-After`` the gateway computed, then succeeds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import anthropic
import httpx
import openai
import pytest

from tests.support.models import SMOLLM2_ID
from tests.support.procs import RunningProcess
from tests.support.servers import backends_toml, gateway_process

pytestmark = pytest.mark.slow

KEY = "overload-key"
LONG = [{"role": "user", "content": "Count from 1 to 300, separated by commas."}]
SHORT = [{"role": "user", "content": "Say hi."}]


@pytest.fixture(scope="module")
def gateway(smollm2_server: RunningProcess) -> Iterator[RunningProcess]:
    admission = "\n[admission]\nper_model_inflight_cap = 1\nqueue_max_per_model = 0\n"
    with gateway_process(backends_toml([("llama", smollm2_server.url)], api_key=KEY, extra=admission)) as proc:
        yield proc


async def _inflight(http: httpx.AsyncClient) -> int:
    return int((await http.get("/healthz")).json()["admission"]["inflight"])


@asynccontextmanager
async def model_busy(gateway: RunningProcess, max_tokens: int = 200) -> AsyncIterator[asyncio.Task[int]]:
    """A long call holds the model's only slot while the body runs; yields the call's task."""
    async with httpx.AsyncClient(base_url=gateway.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as http:
        body = {"model": SMOLLM2_ID, "messages": LONG, "max_tokens": max_tokens, "temperature": 0}
        task = asyncio.create_task(http.post("/v1/chat/completions", json=body))
        status = asyncio.create_task(_status(task))
        deadline = time.monotonic() + 30
        while await _inflight(http) < 1:
            assert time.monotonic() < deadline, "the long call never started"
            assert not task.done(), task.result().text
            await asyncio.sleep(0.02)
        yield status
        await status


async def _status(task: asyncio.Task[httpx.Response]) -> int:
    return (await task).status_code


async def test_openai_rate_limit_error(gateway: RunningProcess) -> None:
    async with (
        openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0) as sdk,
        model_busy(gateway) as busy,
    ):
        with pytest.raises(openai.RateLimitError) as caught:
            await sdk.chat.completions.create(model=SMOLLM2_ID, messages=SHORT, max_tokens=4)  # type: ignore[arg-type]
        error = caught.value
        assert error.status_code == 429
        assert int(error.response.headers["retry-after"]) >= 1
        assert error.type == "queue_overloaded_model"
        assert "retry after" in error.message
    assert busy.result() == 200


async def test_anthropic_rate_limit_error(gateway: RunningProcess) -> None:
    async with (
        anthropic.AsyncAnthropic(base_url=gateway.url, api_key=KEY, max_retries=0) as claude,
        model_busy(gateway) as busy,
    ):
        with pytest.raises(anthropic.RateLimitError) as caught:
            await claude.messages.create(model=SMOLLM2_ID, messages=SHORT, max_tokens=4)  # type: ignore[arg-type]
        assert caught.value.status_code == 429
        assert int(caught.value.response.headers["retry-after"]) >= 1
    assert busy.result() == 200


async def test_openai_retry_waits_for_retry_after(gateway: RunningProcess) -> None:
    seen: list[tuple[float, int | None, str | None]] = []  # (time, status or None for a request, Retry-After)

    async def on_request(request: httpx.Request) -> None:
        seen.append((time.monotonic(), None, None))

    async def on_response(response: httpx.Response) -> None:
        seen.append((time.monotonic(), response.status_code, response.headers.get("retry-after")))

    hooks = {"request": [on_request], "response": [on_response]}
    async with (
        openai.DefaultAsyncHttpxClient(event_hooks=hooks) as http,  # type: ignore[arg-type]
        openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=5, http_client=http) as sdk,
        model_busy(gateway, max_tokens=120),
    ):
        reply = await sdk.chat.completions.create(model=SMOLLM2_ID, messages=SHORT, max_tokens=4)  # type: ignore[arg-type]
    assert reply.choices[0].message.content is not None
    responses = [(at, status, retry) for at, status, retry in seen if status is not None]
    requests = [at for at, status, _ in seen if status is None]
    assert responses[0][1] == 429
    assert responses[-1][1] == 200
    for number, (answered_at, status, retry_after) in enumerate(responses[:-1]):
        assert status == 429
        assert retry_after is not None
        waited = requests[number + 1] - answered_at
        assert waited >= float(retry_after) - 0.05, (waited, retry_after)
