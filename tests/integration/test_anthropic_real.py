"""Both directions of the Anthropic protocol with real processes and a real model (SmolLM2 on llama.cpp):

    official anthropic client -> gateway B /v1/messages -> llama.cpp server
    official openai client -> gateway A (anthropic backend) -> gateway B /v1/messages -> llama.cpp server

The tool round trip uses a forced ``tool_choice``: llama.cpp's server then constrains SmolLM2 with a
grammar built from the tool's schema, so the tool call is the real model's output.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.support.models import SMOLLM2_ID
from tests.support.procs import RunningProcess
from tests.support.servers import gateway_process

pytestmark = pytest.mark.slow

B_KEY = "gateway-b-key"
WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
}
BIG = " ".join(["Explain step by step how a small team should plan the migration of a large service."] * 6)


@pytest.fixture(scope="module")
def gateway_b(smollm2_server: RunningProcess) -> Iterator[RunningProcess]:
    config = f'[[backends]]\nname = "llama"\ntype = "openai"\nurl = "{smollm2_server.url}"\n'
    # ON_MODEL_MISS=error: an unknown model is the 404 the typed-errors test expects.
    with gateway_process(config, env={"MIDDLE_LAYER_API_KEY": B_KEY, "ON_MODEL_MISS": "error"}) as proc:
        yield proc


@pytest.fixture(scope="module")
def gateway_a(smollm2_server: RunningProcess, gateway_b: RunningProcess) -> Iterator[RunningProcess]:
    config = f"""
[[backends]]
name = "local"
type = "openai"
url = "{smollm2_server.url}"

[[backends]]
name = "anthropic"
type = "anthropic"
url = "{gateway_b.url}"
api_key = "${{env:UPSTREAM_ANTHROPIC_KEY}}"
models = ["{SMOLLM2_ID}"]
input_usd_per_mtok = 3.0
output_usd_per_mtok = 15.0

[escalation]
auto_route = true
"""
    with gateway_process(config, env={"UPSTREAM_ANTHROPIC_KEY": B_KEY}) as proc:
        yield proc


@pytest.fixture
def claude(gateway_b: RunningProcess) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key=B_KEY, base_url=gateway_b.url, max_retries=0) as client:
        yield client


def test_messages_non_stream(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model=SMOLLM2_ID,
        max_tokens=24,
        system="You answer in one short sentence.",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        extra_body={"temperature": 0},
    )
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.content[0].type == "text"
    assert message.content[0].text.strip()
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.usage.input_tokens > 0
    assert message.usage.output_tokens > 0


def test_messages_stream(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model=SMOLLM2_ID,
        max_tokens=24,
        messages=[{"role": "user", "content": "Say hello."}],
        extra_body={"temperature": 0},
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.strip()
    assert final.content[0].type == "text"
    assert final.content[0].text == text
    assert final.usage.output_tokens > 0


def test_tool_round_trip(claude: anthropic.Anthropic) -> None:
    question: Any = {"role": "user", "content": "What is the weather in Paris?"}
    first = claude.messages.create(
        model=SMOLLM2_ID,
        max_tokens=64,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[question],
        extra_body={"temperature": 0},
    )
    uses = [block for block in first.content if block.type == "tool_use"]
    assert first.stop_reason == "tool_use"
    assert uses[0].name == "get_weather"
    assert isinstance(uses[0].input, dict)
    assert "location" in uses[0].input
    result = {"type": "tool_result", "tool_use_id": uses[0].id, "content": "15 degrees and sunny"}
    second = claude.messages.create(
        model=SMOLLM2_ID,
        max_tokens=32,
        tools=[WEATHER],
        messages=[question, {"role": "assistant", "content": first.content}, {"role": "user", "content": [result]}],
        extra_body={"temperature": 0},
    )
    assert second.content[0].type == "text"
    assert second.content[0].text.strip()


def test_tool_use_streams_as_input_json_delta(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model=SMOLLM2_ID,
        max_tokens=64,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Weather in Rome?"}],
        extra_body={"temperature": 0},
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert "input_json" in kinds
    tool = next(block for block in final.content if block.type == "tool_use")
    assert "location" in tool.input
    assert final.stop_reason == "tool_use"


def test_errors_arrive_as_the_clients_typed_exceptions(gateway_b: RunningProcess, claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        claude.messages.create(model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert "no-such-model" in str(missing.value.message)
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.create(model=SMOLLM2_ID, max_tokens=5, messages=[{"role": "human", "content": "x"}])  # type: ignore[typeddict-item]
    with (
        anthropic.Anthropic(api_key="wrong", base_url=gateway_b.url, max_retries=0) as stranger,
        pytest.raises(anthropic.AuthenticationError),
    ):
        stranger.messages.create(model=SMOLLM2_ID, max_tokens=5, messages=[{"role": "user", "content": "x"}])


def test_anthropic_backend_through_a_second_gateway(gateway_a: RunningProcess) -> None:
    client = openai.OpenAI(base_url=gateway_a.url + "/v1", api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=f"anthropic:{SMOLLM2_ID}",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}],
        max_tokens=16,
        extra_body={"temperature": 0},
    )
    assert raw.headers["x-model-routed-to"] == f"anthropic/{SMOLLM2_ID}"
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0
    assert completion.usage.model_extra is not None
    assert completion.usage.model_extra["cost_usd"] > 0

    chunks = list(
        client.chat.completions.create(
            model=f"role:reasoner,anthropic:{SMOLLM2_ID}",
            messages=[{"role": "user", "content": "Say hi."}],
            max_tokens=16,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0

    tool = {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER["input_schema"]}}
    called = client.chat.completions.create(
        model=f"anthropic:{SMOLLM2_ID}",
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[tool],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=64,
        extra_body={"temperature": 0},
    )
    calls = called.choices[0].message.tool_calls
    assert calls
    assert calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert called.choices[0].finish_reason == "tool_calls"


def test_big_task_escalates_and_streams(gateway_a: RunningProcess) -> None:
    client = openai.OpenAI(base_url=gateway_a.url + "/v1", api_key="unused", max_retries=0)
    with client.chat.completions.with_streaming_response.create(
        model=SMOLLM2_ID, messages=[{"role": "user", "content": BIG}], max_tokens=16, stream=True
    ) as resp:
        assert resp.headers["x-model-routed-to"] == f"anthropic/{SMOLLM2_ID}"
        assert "big task" in resp.headers["x-model-resolution"]
        text = "".join(c.choices[0].delta.content or "" for c in resp.parse() if c.choices)
    assert text.strip()
    small = client.chat.completions.with_raw_response.create(
        model=SMOLLM2_ID, messages=[{"role": "user", "content": "Say hi."}], max_tokens=8
    )
    assert small.headers["x-model-routed-to"] == f"local/{SMOLLM2_ID}"


@pytest.mark.parametrize(
    "model",
    [SMOLLM2_ID, f"anthropic:{SMOLLM2_ID}"],
    ids=["openai-compatible upstream", "anthropic messages upstream"],
)
def test_a_cut_answer_is_max_tokens_on_every_path(gateway_a: RunningProcess, model: str) -> None:
    ask: Any = [{"role": "user", "content": "Write a long story about a dragon."}]
    with anthropic.Anthropic(api_key="unused", base_url=gateway_a.url, max_retries=0) as client:
        assert client.messages.create(model=model, max_tokens=4, messages=ask).stop_reason == "max_tokens"
        with client.messages.stream(model=model, max_tokens=4, messages=ask) as live:
            assert live.get_final_message().stop_reason == "max_tokens"
    chat = httpx.post(
        gateway_a.url + "/v1/chat/completions", json={"model": model, "messages": ask, "max_tokens": 4}, timeout=120
    )
    assert chat.json()["choices"][0]["finish_reason"] == "length"
