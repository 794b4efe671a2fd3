"""MLX on the CPU with tiny random llama models the tests generate: load, stream, LRU, unload."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest

from local_lattice.errors import ContextTooLong, NotFound
from tests.support.engines import chat, engine_backends

pytestmark = pytest.mark.slow


def mlx_backend(root: Path) -> dict[str, object]:
    return {"name": "mlx", "type": "mlx", "model_paths": [str(root)]}


async def test_models_are_discovered_by_folder_name(tmp_path: Path, tiny_mlx_root: Path) -> None:
    async with engine_backends(tmp_path, [mlx_backend(tiny_mlx_root)]) as backends:
        models = await backends["mlx"].models()
    assert sorted(m.id for m in models) == ["tiny-a", "tiny-b"]


async def test_complete_and_stream_count_real_tokens(tmp_path: Path, tiny_mlx_root: Path) -> None:
    async with engine_backends(tmp_path, [mlx_backend(tiny_mlx_root)]) as backends:
        mlx = backends["mlx"]
        whole = orjson.loads((await mlx.complete(chat("tiny-a", "Hello, how are you?", max_tokens=16))).content)
        request = chat("tiny-a", "Hello", max_tokens=12, stream_options={"include_usage": True}, seed=7)
        chunks = [orjson.loads(c.payload) async for c in mlx.stream(request)]
    assert whole["object"] == "chat.completion"
    assert whole["usage"]["prompt_tokens"] > 3
    assert whole["usage"]["completion_tokens"] <= 16
    assert whole["choices"][0]["finish_reason"] in ("stop", "length")
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["usage"]["completion_tokens"] <= 12
    finish = chunks[-2]["choices"][0]["finish_reason"]
    assert finish == ("length" if chunks[-1]["usage"]["completion_tokens"] == 12 else "stop")


async def test_text_completion_shape(tmp_path: Path, tiny_mlx_root: Path) -> None:
    async with engine_backends(tmp_path, [mlx_backend(tiny_mlx_root)]) as backends:
        request = chat("tiny-a", "")
        request.endpoint = "completions"
        request.body = {"prompt": "The quick brown fox", "max_tokens": 5}
        body = orjson.loads((await backends["mlx"].complete(request)).content)
    assert body["object"] == "text_completion"
    assert isinstance(body["choices"][0]["text"], str)
    assert body["usage"]["completion_tokens"] <= 5


async def test_lru_with_one_resident_model_and_unload(tmp_path: Path, tiny_mlx_root: Path) -> None:
    async with engine_backends(tmp_path, [mlx_backend(tiny_mlx_root)], max_concurrent_models=1) as backends:
        mlx = backends["mlx"]
        for model in ("tiny-a", "tiny-b", "tiny-a"):
            await mlx.complete(chat(model, "Hi", max_tokens=3))
            assert mlx.resident() == [model]
        assert mlx.manager.evictions == 2
        assert await mlx.unload("tiny-a") is True
        assert mlx.resident() == []
        with pytest.raises(NotFound):
            await mlx.unload("tiny-a")


async def test_closing_an_mlx_stream_frees_the_engine(tmp_path: Path, tiny_mlx_root: Path) -> None:
    async with engine_backends(tmp_path, [mlx_backend(tiny_mlx_root)]) as backends:
        mlx = backends["mlx"]
        stream = mlx.stream(chat("tiny-b", "Hello", max_tokens=100_000))
        await stream.__anext__()
        await stream.aclose()
        closed_at = time.perf_counter()
        while mlx.manager.resident()[0]["pins"]:
            await asyncio.sleep(0.005)
            assert time.perf_counter() - closed_at < 2.0


async def test_context_overflow_names_both_numbers(tmp_path: Path, tiny_mlx_root: Path) -> None:
    backend = {**mlx_backend(tiny_mlx_root), "n_ctx": 64}
    async with engine_backends(tmp_path, [backend]) as backends:
        with pytest.raises(ContextTooLong) as info:
            await backends["mlx"].complete(chat("tiny-a", "The quick brown fox jumps. " * 40))
    assert "context of 64 tokens" in info.value.message
    assert f"{info.value.extra['prompt_tokens']} tokens" in info.value.message
