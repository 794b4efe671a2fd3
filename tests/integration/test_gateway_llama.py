"""The real gateway process in front of llama.cpp's server running the real SmolLM2, driven with the
official ``openai`` client (sync, async, streaming) and raw HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.support.models import SMOLLM2_ID
from tests.support.procs import RunningProcess
from tests.support.servers import backends_toml, gateway_process

pytestmark = pytest.mark.slow

KEY = "test-key-123"
QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


@pytest.fixture(scope="module")
def gateway(smollm2_server: RunningProcess) -> Iterator[RunningProcess]:
    with gateway_process(backends_toml([("llama", smollm2_server.url)], api_key=KEY)) as gw:
        yield gw


@pytest.fixture
def client(gateway: RunningProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)


def test_models_lists_the_upstream_model_with_its_backend(client: openai.OpenAI) -> None:
    models = client.models.list().data
    assert [(m.id, m.owned_by) for m in models] == [(SMOLLM2_ID, "llama")]


def test_chat_answers_with_a_real_model(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=SMOLLM2_ID, messages=QUESTION, max_tokens=24, temperature=0
    )
    answer = raw.parse()
    assert "paris" in (answer.choices[0].message.content or "").lower()
    assert answer.usage is not None
    assert answer.usage.completion_tokens > 0
    assert raw.headers["x-model-routed-to"] == f"llama/{SMOLLM2_ID}"
    timings = {name: float(raw.headers[f"x-lattice-{name}-ms"]) for name in ("resolve", "queue", "upstream", "total")}
    assert timings["upstream"] > 0
    assert timings["total"] >= timings["upstream"] + timings["resolve"]
    assert raw.headers["x-content-type-options"] == "nosniff"
    assert raw.headers["x-request-id"]


def test_stream_passes_chunks_and_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=SMOLLM2_ID,
        messages=QUESTION,
        max_tokens=24,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "paris" in text.lower()
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3  # not coalesced
    usage = [c.usage for c in chunks if c.usage is not None]
    assert usage
    assert usage[-1].completion_tokens > 0


async def test_async_client_and_text_completions(gateway: RunningProcess) -> None:
    client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)
    answer = await client.completions.create(
        model=SMOLLM2_ID, prompt="The capital of France is", max_tokens=8, temperature=0
    )
    assert answer.choices[0].text.strip()
    stream = await client.completions.create(
        model=SMOLLM2_ID, prompt="The capital of France is", max_tokens=8, temperature=0, stream=True
    )
    parts = [c.choices[0].text async for c in stream if c.choices]
    assert "".join(parts).strip()
    await client.close()


def test_wrong_or_missing_key_is_401_in_openai_shape(gateway: RunningProcess) -> None:
    bad = openai.OpenAI(base_url=gateway.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.models.list()
    assert info.value.status_code == 401
    response = httpx.get(gateway.url + "/v1/models")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert httpx.get(gateway.url + "/healthz").status_code == 200  # public


def test_bearer_header_works_too(gateway: RunningProcess) -> None:
    response = httpx.get(gateway.url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200


def test_healthz_reports_backends_to_a_key_holder_only(gateway: RunningProcess) -> None:
    body = httpx.get(gateway.url + "/healthz", headers={"X-API-Key": KEY}).json()
    assert body["status"] == "ok"
    assert body["backends"]["llama"]["ok"] is True
    assert httpx.get(gateway.url + "/healthz").json() == {"status": "ok", "ok": True}


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[]", 400, "JSON object"),
        (json.dumps({"model": SMOLLM2_ID}).encode(), 400, "messages"),
        (json.dumps({"model": SMOLLM2_ID, "messages": []}).encode(), 400, "messages"),
        (
            json.dumps(
                {"model": SMOLLM2_ID, "messages": [{"role": "user", "content": "x"}], "max_tokens": "many"}
            ).encode(),
            400,
            "max_tokens",
        ),
        (json.dumps({"model": SMOLLM2_ID, "messages": [{"role": "wizard", "content": "x"}]}).encode(), 400, "role"),
    ],
)
def test_bad_input_gets_an_openai_error(gateway: RunningProcess, body: bytes, status: int, needle: str) -> None:
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        content=body,
        headers={"X-API-Key": KEY, "Content-Type": "application/json"},
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert needle in error["message"]
    assert set(error) >= {"message", "type", "code"}


def test_unknown_model_falls_back_and_says_so(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="no-such-model", messages=QUESTION, max_tokens=4)
    assert raw.headers["x-model-routed-to"] == f"llama/{SMOLLM2_ID}"
    assert raw.headers["x-model-resolution"].startswith("fallback (requested 'no-such-model', not present)")


def test_a_chat_model_never_serves_embeddings(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.embeddings.create(model="no-such-model", input="x")
    assert info.value.code == "model_not_found"


def test_oversized_body_is_413(gateway: RunningProcess) -> None:
    huge = b'{"model": "x", "messages": [{"role": "user", "content": "' + b"a" * (11 * 1024 * 1024) + b'"}]}'
    response = httpx.post(gateway.url + "/v1/chat/completions", content=huge, headers={"X-API-Key": KEY})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
