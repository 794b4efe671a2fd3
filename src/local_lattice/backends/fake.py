"""A scripted in-memory backend for unit tests of the layers above backends (no sockets).

``FakeBackend(name, models=[...])`` answers every chat with ``reply`` (or what ``script`` returns
for a request), streams it word by word, can fail on demand, and records every request it saw.
A word is a token: a ``max_tokens`` below the reply's length cuts it there (``finish_reason: length``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from local_lattice.errors import LatticeError
from local_lattice.types import (
    BackendHealth,
    BackendRequest,
    BackendResponse,
    ChunkStream,
    ModelInfo,
    StreamChunk,
    Usage,
)


@dataclass
class FakeBackend:
    """A ``Backend`` in memory for unit tests: answers with ``reply`` (or ``script``), streams it word
    by word, fails with ``fail_with``, waits ``delay``/``token_delay``, and records what it saw."""

    name: str
    model_list: list[ModelInfo] = field(default_factory=list)
    reply: str = "hello from fake"
    script: Callable[[BackendRequest], str] | None = None
    fail_with: LatticeError | None = None
    delay: float = 0.0
    token_delay: float = 0.0
    seen: list[BackendRequest] = field(default_factory=list)
    closed_streams: int = 0
    healthy: bool = True

    @classmethod
    def with_models(cls, name: str, *ids: str, loaded: bool | None = None, **kw: object) -> FakeBackend:
        models = [ModelInfo(id=i, backend=name, loaded=loaded) for i in ids]
        return cls(name, models, **kw)  # type: ignore[arg-type]

    def _text(self, request: BackendRequest) -> tuple[str, str]:
        """The reply and its finish reason, cut at ``max_tokens`` words."""
        text = self.script(request) if self.script else self.reply
        limit = request.body.get("max_tokens")
        words = text.split(" ")
        if isinstance(limit, int) and not isinstance(limit, bool) and 0 < limit < len(words):
            return " ".join(words[:limit]), "length"
        return text, "stop"

    async def models(self) -> list[ModelInfo]:
        return list(self.model_list)

    async def complete(self, request: BackendRequest) -> BackendResponse:
        self.seen.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_with is not None:
            raise self.fail_with
        text, finish = self._text(request)
        usage = Usage(prompt_tokens=3, completion_tokens=len(text.split()))
        body: dict[str, Any]
        if request.endpoint == "embeddings":
            body = {
                "object": "list",
                "model": request.model,
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
            }
        elif request.endpoint == "completions":
            body = {
                "object": "text_completion",
                "model": request.model,
                "choices": [{"index": 0, "text": text, "finish_reason": finish}],
            }
        else:
            message = {"role": "assistant", "content": text}
            body = {
                "object": "chat.completion",
                "model": request.model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            }
        body |= {"id": "fake-1", "created": int(time.time()), "usage": usage.as_dict()}
        return BackendResponse(orjson.dumps(body), usage)

    def stream(self, request: BackendRequest) -> ChunkStream:
        return self._stream(request)

    async def _stream(self, request: BackendRequest) -> AsyncGenerator[StreamChunk, None]:
        self.seen.append(request)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.fail_with is not None:
                raise self.fail_with
            text, finish = self._text(request)
            words = text.split(" ")
            for i, word in enumerate(words):
                delta = {"content": word if i == 0 else " " + word}
                yield StreamChunk(
                    orjson.dumps(
                        {
                            "object": "chat.completion.chunk",
                            "model": request.model,
                            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                        }
                    )
                )
                if self.token_delay:
                    await asyncio.sleep(self.token_delay)
            yield StreamChunk(
                orjson.dumps(
                    {
                        "object": "chat.completion.chunk",
                        "model": request.model,
                        "choices": [{"index": 0, "delta": {}, "finish_reason": finish}],
                    }
                )
            )
        finally:
            self.closed_streams += 1

    async def health(self) -> BackendHealth:
        return BackendHealth(ok=self.healthy, detail="fake")

    async def aclose(self) -> None:
        return None
