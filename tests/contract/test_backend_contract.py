"""The Backend contract: every backend proves itself by passing these same tests.

A new backend joins by adding a factory to ``BACKENDS``: an async context manager yielding the
backend and the id of a chat model it serves. Every type is here, each in front of real parts where
they exist: ``openai`` on llama.cpp's server with SmolLM2; ``ollama`` on nginx answering Ollama's
model lists and passing ``/v1`` on to that server; ``anthropic`` on a second gateway process serving
``/v1/messages`` from it; ``lmstudio`` on the scripted LM Studio server (its ``/api/v0`` listing);
``llamacpp`` and ``mlx`` in process; ``fake``. How each fails (unreachable, out of time, closed
mid-stream) is ``test_backend_errors.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import orjson
import pytest

from local_lattice.backends.base import Backend
from local_lattice.backends.fake import FakeBackend
from local_lattice.backends.openai_compat import OpenAIBackend
from local_lattice.config import BackendConfig
from local_lattice.errors import InvalidRequest
from local_lattice.types import BackendRequest
from tests.support.engines import engine_backends
from tests.support.models import SMOLLM2_ID, smollm2_path
from tests.support.procs import RunningProcess
from tests.support.servers import gateway_process

Factory = Callable[[pytest.FixtureRequest], contextlib.AbstractAsyncContextManager[tuple[Backend, str]]]


@contextlib.asynccontextmanager
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Backend, str]]:
    yield FakeBackend.with_models("fake", "fake-model", reply="the capital of France is Paris"), "fake-model"


@contextlib.asynccontextmanager
async def openai_upstream(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Backend, str]]:
    server = request.getfixturevalue("smollm2_server")
    backend = OpenAIBackend(BackendConfig(name="llama", url=server.url))
    try:
        yield backend, SMOLLM2_ID
    finally:
        await backend.aclose()


@contextlib.asynccontextmanager
async def ollama_upstream(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Backend, str]]:
    from local_lattice.backends.ollama import OllamaBackend
    from tests.support.nginx import ollama_front

    server = request.getfixturevalue("smollm2_server")
    with ollama_front(server.url, [SMOLLM2_ID]) as root:
        backend = OllamaBackend(BackendConfig(name="ollama", type="ollama", url=root, keep_alive="5m"))
        try:
            yield backend, SMOLLM2_ID
        finally:
            await backend.aclose()


MESSAGES_KEY = "messages-gateway-key"


@pytest.fixture(scope="module")
def messages_gateway(smollm2_server: RunningProcess) -> Iterator[RunningProcess]:
    """A second gateway serving Anthropic's ``/v1/messages`` from the real model."""
    config = f'[[backends]]\nname = "llama"\ntype = "openai"\nurl = "{smollm2_server.url}"\n'
    with gateway_process(config, env={"MIDDLE_LAYER_API_KEY": MESSAGES_KEY}) as proc:
        yield proc


@contextlib.asynccontextmanager
async def anthropic_upstream(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Backend, str]]:
    from local_lattice.backends.anthropic import AnthropicBackend

    gateway = request.getfixturevalue("messages_gateway")
    config = BackendConfig.model_validate(
        {"name": "anthropic", "type": "anthropic", "url": gateway.url, "api_key": MESSAGES_KEY, "models": [SMOLLM2_ID]}
    )
    backend = AnthropicBackend(config)
    try:
        yield backend, SMOLLM2_ID
    finally:
        await backend.aclose()


@contextlib.asynccontextmanager
async def lmstudio_upstream(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Backend, str]]:
    from local_lattice.backends.lmstudio import LMStudioBackend
    from tests.support.lmstudio_server import lmstudio_server

    models = [{"id": "qwen2.5-7b-instruct", "state": "not-loaded"}, {"id": "nomic-embed", "type": "embeddings"}]
    with lmstudio_server(models) as server:
        backend = LMStudioBackend(BackendConfig(name="lms", type="lmstudio", url=server.url + "/v1"))
        try:
            yield backend, "qwen2.5-7b-instruct"
        finally:
            await backend.aclose()


@contextlib.asynccontextmanager
async def llamacpp_in_process(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Backend, str]]:
    home = request.getfixturevalue("tmp_path")
    entry = {"name": "llamacpp", "type": "llamacpp", "n_ctx": 1024, "model_files": {SMOLLM2_ID: str(smollm2_path())}}
    async with engine_backends(home, [entry]) as backends:
        yield backends["llamacpp"], SMOLLM2_ID


@contextlib.asynccontextmanager
async def mlx_in_process(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Backend, str]]:
    from tests.support.tiny_mlx import make_tiny_mlx_model

    home = request.getfixturevalue("tmp_path")
    folder = make_tiny_mlx_model(home / "tiny-mlx")
    async with engine_backends(
        home, [{"name": "mlx", "type": "mlx", "model_files": {"tiny-mlx": str(folder)}}]
    ) as backends:
        yield backends["mlx"], "tiny-mlx"


BACKENDS: dict[str, Factory] = {
    "fake": fake,
    "openai-llama.cpp": openai_upstream,
    "ollama": ollama_upstream,
    "anthropic": anthropic_upstream,
    "lmstudio": lmstudio_upstream,
    "llamacpp": llamacpp_in_process,
    "mlx": mlx_in_process,
}
SLOW = {"openai-llama.cpp", "ollama", "anthropic", "lmstudio", "llamacpp", "mlx"}


def chat(model: str, **extra: Any) -> BackendRequest:
    body = {"messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 16, **extra}
    return BackendRequest("chat", model, body)


@pytest.fixture(params=[pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in BACKENDS])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Backend, str]]:
    async with BACKENDS[request.param](request) as pair:
        yield pair


async def test_lists_its_models(backend: tuple[Backend, str]) -> None:
    impl, model = backend
    models = await impl.models()
    assert model in [m.id for m in models]
    assert all(m.backend == impl.name for m in models)


async def test_complete_returns_an_openai_chat_completion(backend: tuple[Backend, str]) -> None:
    impl, model = backend
    answer = await impl.complete(chat(model, temperature=0))
    data = orjson.loads(answer.content)
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"]["content"].strip()
    assert answer.usage is not None
    assert answer.usage.completion_tokens > 0


async def test_stream_yields_chunks_as_json(backend: tuple[Backend, str]) -> None:
    impl, model = backend
    stream = impl.stream(chat(model, temperature=0))
    text = ""
    count = 0
    async for chunk in stream:
        data = orjson.loads(chunk.payload)
        assert data["object"] == "chat.completion.chunk"
        for choice in data["choices"]:
            text += choice["delta"].get("content") or ""
        count += 1
    assert count > 1
    assert text.strip()


async def test_closing_a_stream_early_is_clean(backend: tuple[Backend, str]) -> None:
    impl, model = backend
    stream = impl.stream(chat(model, max_tokens=64))
    first = await stream.__anext__()
    assert orjson.loads(first.payload)
    await stream.aclose()
    again = await impl.complete(chat(model, max_tokens=4))
    assert orjson.loads(again.content)["choices"]


async def test_health_is_ok_and_aclose_is_idempotent(backend: tuple[Backend, str]) -> None:
    impl, _ = backend
    assert (await impl.health()).ok
    await impl.aclose()
    await impl.aclose()


async def test_an_answer_cut_at_max_tokens_says_length(backend: tuple[Backend, str]) -> None:
    """Truncation is reported where it happens, so every surface above (swarms, the Responses and
    Messages APIs) can report it truthfully."""
    impl, model = backend
    long = {"messages": [{"role": "user", "content": "Write a long story about a dragon."}], "max_tokens": 3}
    answer = orjson.loads((await impl.complete(BackendRequest("chat", model, {**long, "temperature": 0}))).content)
    assert answer["choices"][0]["finish_reason"] == "length"
    finishes = []
    async for chunk in impl.stream(BackendRequest("chat", model, {**long, "temperature": 0})):
        finishes += [c["finish_reason"] for c in orjson.loads(chunk.payload)["choices"] if c.get("finish_reason")]
    assert finishes == ["length"]


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 24}},
            "required": ["city"],
        },
    },
}
FORCED = {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}


# Every backend that runs a real model takes this one (the fake and the scripted LM Studio only
# replay text written for the layers above them).
REAL_MODELS = ("llamacpp", "mlx", "openai-llama.cpp", "ollama", "anthropic")


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL_MODELS)
async def test_a_forced_call_is_honoured_or_refused_never_dropped(request: pytest.FixtureRequest, name: str) -> None:
    async with BACKENDS[name](request) as (impl, model):
        listed = {m.id: m for m in await impl.models()}
        if listed[model].supports_tools is False:  # it says so to routing, and refuses
            with pytest.raises(InvalidRequest) as refused:
                await impl.complete(chat(model, max_tokens=64, temperature=0, **FORCED))
            assert refused.value.param == "tool_choice"
            return
        answer = orjson.loads((await impl.complete(chat(model, max_tokens=64, temperature=0, **FORCED))).content)
        choice = answer["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        call = choice["message"]["tool_calls"][0]
        assert call["function"]["name"] == "get_weather"
        assert isinstance(orjson.loads(call["function"]["arguments"])["city"], str)
