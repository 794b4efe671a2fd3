"""In-process MLX (mlx-lm) for MLX model folders: Metal on Apple silicon, ``mlx[cpu]`` elsewhere.

Owns the MLX specifics only: loading a folder, the tokenizer's chat template, and the sampling
loop over ``generate_step``. It holds decoding to no grammar, so it is no ``SchemaDecoding``
engine: requests with tools or a JSON ``response_format`` get a 400 naming the field, and its
models do not count as tool- or JSON-capable in routing. All MLX work runs on one resident thread (MLX streams are per
thread). ``mlx`` and ``mlx_lm`` are imported on that thread at the first load, so a gateway with
an idle MLX backend (the default wherever mlx-lm is installed) starts without paying for them.
"""

from __future__ import annotations

import json
import platform
import sys
import threading
from collections.abc import Iterator
from typing import Any

from local_lattice.config import BackendConfig
from local_lattice.engines.discovery import LocalModel
from local_lattice.engines.engine import EngineBackend, Loaded, Message, Shared
from local_lattice.engines.sampling import Sampling
from local_lattice.engines.worker import ResidentThreadExecutor

_DEFAULT_CONTEXT = 4096


class MLXModel:
    """A loaded MLX model and its tokenizer."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model = model
        self.tokenizer = tokenizer


def _context_length(model: LocalModel, cap: int) -> int:
    try:
        config = json.loads((model.path / "config.json").read_text())
    except (OSError, ValueError):
        return cap
    own = config.get("max_position_embeddings") or config.get("max_seq_len") or _DEFAULT_CONTEXT
    return min(int(own), cap)


class MLXBackend(EngineBackend[MLXModel]):
    """The in-process MLX engine (``type = "mlx"``): MLX folders run by ``mlx_lm`` on one resident thread."""

    format = "mlx"
    engine = "mlx"

    def __init__(self, config: BackendConfig, shared: Shared) -> None:
        super().__init__(config, shared, ResidentThreadExecutor(f"mlx-{config.name}"))

    def device(self) -> str:
        # Metal on Apple silicon; the mlx[cpu] build everywhere else (asked without importing mlx).
        return "gpu" if sys.platform == "darwin" and platform.machine() == "arm64" else "cpu"

    def open_model(self, model: LocalModel) -> Loaded[MLXModel]:
        from mlx_lm import load as mlx_load

        loaded = mlx_load(str(model.path))
        return Loaded(MLXModel(loaded[0], loaded[1]), _context_length(model, self.config.n_ctx), threading.Lock())

    def close_model(self, loaded: Loaded[MLXModel]) -> None:
        import mlx.core as mx

        loaded.model = MLXModel(None, None)
        mx.clear_cache()

    def encode_chat(self, loaded: Loaded[MLXModel], messages: list[Message]) -> list[int]:
        tokens: list[int] = loaded.model.tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        return tokens

    def encode_text(self, loaded: Loaded[MLXModel], prompt: str) -> list[int]:
        tokens: list[int] = loaded.model.tokenizer.encode(prompt)
        return tokens

    def token_steps(
        self, loaded: Loaded[MLXModel], tokens: list[int], sampling: Sampling, constraint: Any = None
    ) -> Iterator[str | None]:
        import mlx.core as mx
        from mlx_lm.generate import generate_step
        from mlx_lm.sample_utils import make_sampler

        tokenizer = loaded.model.tokenizer
        mx.random.seed(sampling.seed)
        sampler = make_sampler(temp=sampling.temperature, top_p=sampling.top_p if sampling.top_p < 1 else 0.0)
        detokenizer = tokenizer.detokenizer
        detokenizer.reset()
        eos = tokenizer.eos_token_ids
        for token, _ in generate_step(mx.array(tokens), loaded.model.model, max_tokens=-1, sampler=sampler):
            if token in eos:
                detokenizer.finalize()
                tail: str = detokenizer.last_segment
                if tail:
                    yield tail
                yield None
                return
            detokenizer.add_token(token)
            segment: str = detokenizer.last_segment
            yield segment
