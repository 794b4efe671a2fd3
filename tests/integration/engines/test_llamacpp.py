"""The real SmolLM2 (and Gemma 3 270M) through the in-process llama.cpp backend."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest

from local_lattice.errors import BackendUnavailable, ContextTooLong, ModelNotFound, NotFound
from tests.support.engines import chat, engine_backends
from tests.support.models import GEMMA_ID, SMOLLM2_ID, smollm2_path

pytestmark = pytest.mark.slow

SMOL = {"name": "local", "type": "llamacpp", "n_ctx": 1024, "model_files": {SMOLLM2_ID: str(smollm2_path())}}
QUESTION = "What is the capital of France? Answer in one sentence."


async def test_complete_gives_a_real_answer_with_real_usage(tmp_path: Path) -> None:
    async with engine_backends(tmp_path, [SMOL]) as backends:
        answer = await backends["local"].complete(chat(SMOLLM2_ID, QUESTION, temperature=0, max_tokens=24))
    body = orjson.loads(answer.content)
    assert body["object"] == "chat.completion"
    assert "Paris" in body["choices"][0]["message"]["content"]
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] > 10
    assert 0 < body["usage"]["completion_tokens"] <= 24
    assert answer.usage is not None
    assert answer.usage.total_tokens == body["usage"]["total_tokens"]


async def test_max_tokens_ends_with_length_and_stop_strings_cut(tmp_path: Path) -> None:
    async with engine_backends(tmp_path, [SMOL]) as backends:
        local = backends["local"]
        long = orjson.loads((await local.complete(chat(SMOLLM2_ID, "Write a long story.", max_tokens=5))).content)
        cut = orjson.loads(
            (await local.complete(chat(SMOLLM2_ID, QUESTION, temperature=0, max_tokens=24, stop=["Paris"]))).content
        )
    assert long["choices"][0]["finish_reason"] == "length"
    assert long["usage"]["completion_tokens"] == 5
    assert cut["choices"][0]["finish_reason"] == "stop"
    assert "Paris" not in cut["choices"][0]["message"]["content"]
    assert cut["choices"][0]["message"]["content"].startswith("The capital")


async def test_seed_makes_sampling_repeatable(tmp_path: Path) -> None:
    async with engine_backends(tmp_path, [SMOL]) as backends:
        request = chat(SMOLLM2_ID, "Invent a name for a cat.", temperature=1.0, top_p=0.9, seed=42, max_tokens=12)
        first = orjson.loads((await backends["local"].complete(request)).content)
        second = orjson.loads((await backends["local"].complete(request)).content)
    assert first["choices"][0]["message"] == second["choices"][0]["message"]


async def test_stream_yields_tokens_as_produced_then_finish_and_usage(tmp_path: Path) -> None:
    async with engine_backends(tmp_path, [SMOL]) as backends:
        request = chat(SMOLLM2_ID, QUESTION, temperature=0, max_tokens=24, stream_options={"include_usage": True})
        chunks = [orjson.loads(c.payload) async for c in backends["local"].stream(request)]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert "Paris" in text
    assert len(chunks) > 5  # token by token, not one lump
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == len(chunks) - 3 or chunks[-1]["usage"]["completion_tokens"] > 0
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}


async def test_closing_the_stream_stops_generation_within_a_token(tmp_path: Path) -> None:
    async with engine_backends(tmp_path, [SMOL]) as backends:
        local = backends["local"]
        stream = local.stream(chat(SMOLLM2_ID, "Write a very long story about dragons.", max_tokens=2000))
        for _ in range(3):
            await stream.__anext__()
        closed_at = time.perf_counter()
        await stream.aclose()
        # the worker lets go of the model (its pin) once it has stopped generating
        while local.manager.resident()[0]["pins"]:
            await asyncio.sleep(0.005)
            assert time.perf_counter() - closed_at < 2.0
        # the engine is free again at once: a new request is not stuck behind 2000 tokens
        started = time.perf_counter()
        await local.complete(chat(SMOLLM2_ID, "Hi", max_tokens=2))
        assert time.perf_counter() - started < 10


async def test_concurrent_requests_all_complete(tmp_path: Path) -> None:
    async with engine_backends(tmp_path, [SMOL]) as backends:
        prompts = ["Name a color.", "Name a fruit.", "Name an animal.", QUESTION]
        answers = await asyncio.gather(
            *(backends["local"].complete(chat(SMOLLM2_ID, p, temperature=0, max_tokens=12)) for p in prompts)
        )
    bodies = [orjson.loads(a.content) for a in answers]
    assert all(b["choices"][0]["message"]["content"] for b in bodies)
    assert "Paris" in bodies[3]["choices"][0]["message"]["content"]


async def test_event_loop_stays_responsive_while_generating(tmp_path: Path) -> None:
    async with engine_backends(tmp_path, [SMOL]) as backends:
        task = asyncio.ensure_future(backends["local"].complete(chat(SMOLLM2_ID, "Tell a story.", max_tokens=64)))
        worst = 0.0
        while not task.done():
            mark = time.perf_counter()
            await asyncio.sleep(0.01)
            worst = max(worst, time.perf_counter() - mark - 0.01)
        await task
    assert worst < 0.25


async def test_prompt_longer_than_the_context_is_a_400_naming_both_numbers(tmp_path: Path) -> None:
    small = {**SMOL, "n_ctx": 128}
    long_text = "Paris is lovely in spring. " * 60
    async with engine_backends(tmp_path, [small]) as backends:
        with pytest.raises(ContextTooLong) as info:
            await backends["local"].complete(chat(SMOLLM2_ID, long_text))
    assert info.value.status == 400
    tokens, context = info.value.extra["prompt_tokens"], info.value.extra["context_length"]
    assert tokens > context >= 128  # llama.cpp rounds a context up to its own minimum
    assert f"{tokens} tokens" in info.value.message
    assert f"context of {context} tokens" in info.value.message


async def test_trim_mode_drops_old_turns_to_fit(tmp_path: Path) -> None:
    small = {**SMOL, "n_ctx": 256}
    history = [{"role": "user", "content": "Old news. " * 40}, {"role": "assistant", "content": "Noted."}]
    messages = [*history, {"role": "user", "content": QUESTION}]
    async with engine_backends(tmp_path, [small], context_over_budget="trim", context_trim_buffer=64) as backends:
        request = chat(SMOLLM2_ID, "", temperature=0, max_tokens=24)
        request.body["messages"] = messages
        body = orjson.loads((await backends["local"].complete(request)).content)
    assert body["usage"]["prompt_tokens"] <= 256 - 24 - 64  # room for the answer and the buffer's slack
    assert "Paris" in body["choices"][0]["message"]["content"]


async def test_corrupt_and_truncated_models_fail_clearly_while_others_serve(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"not a gguf at all" * 100)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(smollm2_path().read_bytes()[:4_000_000])
    models = {SMOLLM2_ID: str(smollm2_path()), "garbage": str(garbage), "truncated": str(truncated)}
    async with engine_backends(tmp_path, [{**SMOL, "model_files": models}]) as backends:
        local = backends["local"]
        for bad in ("garbage", "truncated"):
            with pytest.raises(BackendUnavailable) as info:
                await local.complete(chat(bad, "hi"))
            assert bad in info.value.message
            assert "re-download" in info.value.message
        good = orjson.loads((await local.complete(chat(SMOLLM2_ID, QUESTION, temperature=0, max_tokens=24))).content)
        health = await local.health()
    assert "Paris" in good["choices"][0]["message"]["content"]
    assert health.ok
    assert set(health.extra["load_errors"]) == {"garbage", "truncated"}


async def test_unload_load_and_unknown_ids(tmp_path: Path) -> None:
    async with engine_backends(tmp_path, [SMOL]) as backends:
        local = backends["local"]
        with pytest.raises(NotFound):
            await local.unload(SMOLLM2_ID)  # listed but not resident
        with pytest.raises(ModelNotFound):
            await local.unload("no-such-model")
        await local.load(SMOLLM2_ID)
        assert local.resident() == [SMOLLM2_ID]
        stream = local.stream(chat(SMOLLM2_ID, "Count to fifty.", max_tokens=60))
        await stream.__anext__()
        assert await local.unload(SMOLLM2_ID) is False  # deferred while generating
        assert local.resident() == [SMOLLM2_ID]
        rest = [c async for c in stream]
        assert rest
        await asyncio.sleep(0.05)
        assert local.resident() == []
        await local.load(SMOLLM2_ID)
        assert await local.unload(SMOLLM2_ID) is True


async def test_one_resident_model_alternating_requests_evict_and_reload(tmp_path: Path, gemma_gguf: Path) -> None:
    models = {SMOLLM2_ID: str(smollm2_path()), GEMMA_ID: str(gemma_gguf)}
    async with engine_backends(tmp_path, [{**SMOL, "model_files": models}], max_concurrent_models=1) as backends:
        local = backends["local"]
        for model in (SMOLLM2_ID, GEMMA_ID, SMOLLM2_ID, GEMMA_ID):
            body = orjson.loads((await local.complete(chat(model, "Hello", max_tokens=4))).content)
            assert body["model"] == model
            assert local.resident() == [model]
        assert local.manager.evictions == 3


async def test_an_in_flight_model_is_never_evicted(tmp_path: Path, gemma_gguf: Path) -> None:
    models = {SMOLLM2_ID: str(smollm2_path()), GEMMA_ID: str(gemma_gguf)}
    async with engine_backends(tmp_path, [{**SMOL, "model_files": models}], max_concurrent_models=1) as backends:
        local = backends["local"]
        stream = local.stream(chat(SMOLLM2_ID, "Count from one to thirty.", max_tokens=40, temperature=0))
        first = orjson.loads((await stream.__anext__()).payload)
        other = asyncio.ensure_future(local.complete(chat(GEMMA_ID, "The sky is", max_tokens=4)))
        chunks = [orjson.loads(c.payload) async for c in stream]
        stream_done = time.perf_counter()
        assert not other.done() or local.manager.evictions == 1
        gemma = orjson.loads((await other).content)
        assert time.perf_counter() >= stream_done
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert gemma["model"] == GEMMA_ID
    assert local.manager.evictions == 1
