"""The official ``openai`` client against the live gateway: sync, async, streaming, tools,
``response_format``, embeddings, the model list and its typed errors (the 429 case lives in
test_overload.py, where admission is configured to produce one)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from tests.compat.conftest import EMBED_ID, KEY
from tests.support.models import SMOLLM2_ID

pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture
def client(base_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0) as sdk:
        yield sdk


def test_sync_chat(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=SMOLLM2_ID, messages=QUESTION, max_tokens=24, temperature=0)  # type: ignore[arg-type]
    assert reply.model == SMOLLM2_ID
    assert "paris" in (reply.choices[0].message.content or "").lower()
    assert reply.usage is not None
    assert reply.usage.completion_tokens > 0


def test_raw_response_exposes_routing_headers(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=QUESTION,  # type: ignore[arg-type]
        max_tokens=8,
    )
    assert raw.headers["x-model-routed-to"] == f"llama/{SMOLLM2_ID}"
    assert raw.headers["x-request-id"]
    assert raw.parse().choices[0].message.content


def test_sync_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=SMOLLM2_ID,
        messages=QUESTION,  # type: ignore[arg-type]
        max_tokens=24,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "paris" in text.lower()
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1
    assert usage[0].completion_tokens > 0


async def test_async_chat_and_stream(base_url: str) -> None:
    async with openai.AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0) as sdk:
        reply = await sdk.chat.completions.create(model=SMOLLM2_ID, messages=QUESTION, max_tokens=24, temperature=0)  # type: ignore[arg-type]
        assert "paris" in (reply.choices[0].message.content or "").lower()
        stream = await sdk.chat.completions.create(
            model=SMOLLM2_ID,
            messages=QUESTION,  # type: ignore[arg-type]
            max_tokens=24,
            temperature=0,
            stream=True,
        )
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        assert "paris" in "".join(parts).lower()


def test_forced_tool_call(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=SMOLLM2_ID,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=64,
        temperature=0,
    )
    calls = reply.choices[0].message.tool_calls
    assert calls
    call = calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments)["city"], str)


def test_json_object_response_format(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=SMOLLM2_ID,
        messages=[{"role": "user", "content": 'Reply with a JSON object with the key "capital" for France.'}],
        response_format={"type": "json_object"},
        max_tokens=96,
        temperature=0,
    )
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)


def test_embeddings(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model=EMBED_ID, input=["The cat sat.", "Stock prices fell sharply."])
    vectors = [item.embedding for item in result.data]
    assert len(vectors) == 2
    assert len(vectors[0]) == len(vectors[1]) > 0
    assert vectors[0] != vectors[1]
    assert all(isinstance(x, float) for x in vectors[0])
    capability = client.embeddings.create(model="*embed*", input="hello")
    assert len(capability.data[0].embedding) == len(vectors[0])


def test_models_list(client: openai.OpenAI) -> None:
    models = {m.id: m.owned_by for m in client.models.list()}
    assert models[SMOLLM2_ID] == "llama"
    assert models[EMBED_ID] == "embedder"


def test_bad_key_is_authentication_error(base_url: str) -> None:
    with (
        openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0) as stranger,
        pytest.raises(openai.AuthenticationError) as caught,
    ):
        stranger.models.list()
    assert caught.value.status_code == 401
    assert "key" in caught.value.message.lower()


def test_unknown_model_is_answered_by_an_available_one_that_says_so(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="no-such-model",
        messages=QUESTION,  # type: ignore[arg-type]
        max_tokens=4,
    )
    assert raw.status_code == 200
    assert raw.headers["x-model-resolution"].startswith("fallback (requested 'no-such-model', not present) -> ")
    assert raw.parse().model == SMOLLM2_ID


def test_chat_model_never_serves_embeddings(client: openai.OpenAI) -> None:
    raw = client.embeddings.with_raw_response.create(model=SMOLLM2_ID, input="hello")
    assert raw.headers["x-model-routed-to"] == f"embedder/{EMBED_ID}"  # an embedding model answered instead
    assert raw.headers["x-model-resolution"].startswith(f"fallback (requested '{SMOLLM2_ID}', not present)")


def test_bad_request_names_the_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=SMOLLM2_ID, messages=[], max_tokens=4)
    assert "messages" in caught.value.message
