"""The anthropic backend on the official client against a scripted Messages server on a real socket:
translation, streaming, retries on 429/529 honouring Retry-After, and errors mapped with the key redacted."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from local_lattice.backends.anthropic import AnthropicBackend
from local_lattice.config import BackendConfig
from local_lattice.errors import BackendUnavailable, RateLimited, UpstreamError, UpstreamStatusError
from local_lattice.types import BackendRequest
from tests.support.anthropic_upstream import KEY, Recorder, anthropic_upstream


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, Recorder]]:
    with anthropic_upstream() as pair:
        yield pair


def backend(url: str, key: str | None = KEY, retries: int = 2) -> AnthropicBackend:
    config = BackendConfig.model_validate(
        {"name": "cloud", "type": "anthropic", "url": url, "api_key": key, "max_retries": retries,
         "anthropic_version": "2023-06-01", "models": ["claude-a", "claude-b"]}
    )  # fmt: skip
    return AnthropicBackend(config)


def chat(model: str, **extra: object) -> BackendRequest:
    body = {"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}], **extra}
    return BackendRequest("chat", model, body)


async def test_complete_translates_both_ways_and_sends_key_and_version(upstream: tuple[str, Recorder]) -> None:
    url, rec = upstream
    b = backend(url)
    answer = await b.complete(chat("claude-a", max_tokens=9, stop="END"))
    data = orjson.loads(answer.content)
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"]["content"] == "Hello there"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (11, 7)
    sent = rec.bodies[-1]
    assert sent["system"] == "sys"
    assert sent["max_tokens"] == 9
    assert sent["stop_sequences"] == ["END"]
    # The client sends its key as x-api-key or, in newer releases, as a bearer token.
    headers = rec.headers[-1]
    assert KEY in (headers.get("x-api-key"), headers.get("authorization", "").removeprefix("Bearer "))
    assert rec.headers[-1]["anthropic-version"] == "2023-06-01"
    await b.aclose()


async def test_tools_come_back_as_tool_calls(upstream: tuple[str, Recorder]) -> None:
    url, _ = upstream
    b = backend(url)
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    data = orjson.loads((await b.complete(chat("claude-a", tools=[tool], tool_choice="required"))).content)
    call = data["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    assert orjson.loads(call["function"]["arguments"]) == {"location": "Paris"}
    assert data["choices"][0]["finish_reason"] == "tool_calls"
    await b.aclose()


async def test_stream_events_become_chunks_with_usage(upstream: tuple[str, Recorder]) -> None:
    url, _ = upstream
    b = backend(url)
    chunks = [chunk async for chunk in b.stream(chat("claude-a"))]
    decoded = [orjson.loads(c.payload) for c in chunks]
    assert "".join(d["choices"][0]["delta"].get("content") or "" for d in decoded) == "Hello there"
    assert decoded[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 13
    await b.aclose()


@pytest.mark.parametrize("model", ["flaky-429", "flaky-529"])
async def test_retries_honour_retry_after(upstream: tuple[str, Recorder], model: str) -> None:
    url, rec = upstream
    b = backend(url)
    answer = await b.complete(chat(model))
    assert orjson.loads(answer.content)["choices"][0]["message"]["content"] == "Hello there"
    assert rec.calls[model] == 2
    await b.aclose()


async def test_errors_map_to_ours_with_the_key_redacted(upstream: tuple[str, Recorder]) -> None:
    url, rec = upstream
    b = backend(url, retries=1)
    with pytest.raises(RateLimited) as limited:
        await b.complete(chat("always-429"))
    assert limited.value.status == 429
    assert rec.calls["always-429"] == 2
    with pytest.raises(UpstreamStatusError) as bad:
        await b.complete(chat("bad"))
    assert bad.value.status == 400
    assert "max_tokens too large" in bad.value.message
    assert KEY not in bad.value.message
    assert "[redacted]" in bad.value.message
    with pytest.raises(UpstreamError) as boom:
        await b.complete(chat("boom"))
    assert boom.value.status == 502
    wrong = backend(url, key="sk-ant-wrong")
    with pytest.raises(UpstreamStatusError) as denied:
        await wrong.complete(chat("claude-a"))
    assert denied.value.status == 401
    assert "sk-ant-wrong" not in denied.value.message
    await b.aclose()
    await wrong.aclose()


async def test_unreachable_and_keyless() -> None:
    b = backend("http://127.0.0.1:9", retries=0)
    with pytest.raises(BackendUnavailable):
        await b.complete(chat("claude-a"))
    keyless = backend("http://127.0.0.1:9", key=None)
    with pytest.raises(BackendUnavailable, match="ANTHROPIC_API_KEY"):
        await keyless.complete(chat("claude-a"))
    health = await keyless.health()
    assert not health.ok
    assert [m.id for m in await keyless.models()] == ["claude-a", "claude-b"]
    await b.aclose()


async def test_cookies_the_cloud_sets_never_travel_with_later_calls(upstream: tuple[str, Recorder]) -> None:
    url, rec = upstream
    # By name, not by address: cookie jars keep cookies from names and refuse them from bare IPs.
    b = backend(url.replace("127.0.0.1", "localhost"))
    await b.complete(chat("claude-a"))
    await b.complete(chat("claude-b"))
    assert "cookie" not in rec.headers[-1]  # the first answer set one; the client's jar takes none
    await b.aclose()
