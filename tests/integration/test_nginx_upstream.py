"""The gateway, as a real process, proxies to a real nginx fixed-answer upstream; the official
``openai`` client talks to it with auth on, streaming and not."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.support.nginx import ANSWER, JSON_MODEL, SSE_CHUNKS, SSE_MODEL, nginx_upstream
from tests.support.procs import RunningProcess
from tests.support.servers import backends_toml, gateway_process

pytestmark = pytest.mark.slow

KEY = "test-key-nginx"


@pytest.fixture(scope="module")
def gateway() -> Iterator[RunningProcess]:
    with (
        nginx_upstream() as urls,
        gateway_process(backends_toml([("nginx-json", urls.json), ("nginx-sse", urls.sse)], api_key=KEY)) as gw,
    ):
        yield gw


def test_models_list_both_backends(gateway: RunningProcess) -> None:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY) as client:
        owners = {m.id: m.owned_by for m in client.models.list()}
    assert owners == {JSON_MODEL: "nginx-json", SSE_MODEL: "nginx-sse"}


def test_non_streaming_answer_passes_through(gateway: RunningProcess) -> None:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=JSON_MODEL, messages=[{"role": "user", "content": "hi"}]
        )
    answer = raw.parse()
    assert answer.choices[0].message.content == ANSWER
    assert answer.usage is not None
    assert answer.usage.total_tokens == 9
    assert raw.headers["x-model-routed-to"] == f"nginx-json/{JSON_MODEL}"


async def test_streaming_answer_passes_every_chunk(gateway: RunningProcess) -> None:
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=KEY) as client:
        stream = await client.chat.completions.create(
            model=SSE_MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        chunks = [chunk async for chunk in stream]
    assert len(chunks) == SSE_CHUNKS
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "tok " * (SSE_CHUNKS - 1)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_wrong_key_is_refused_before_the_upstream(gateway: RunningProcess) -> None:
    with (
        openai.OpenAI(base_url=gateway.url + "/v1", api_key="wrong", max_retries=0) as client,
        pytest.raises(openai.AuthenticationError),
    ):
        client.chat.completions.create(model=JSON_MODEL, messages=[{"role": "user", "content": "hi"}])
