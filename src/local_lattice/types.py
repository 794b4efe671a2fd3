"""The small shared vocabulary every layer speaks.

Owns plain value types only (no I/O, no behaviour beyond trivial helpers). Everything else
imports from here; this module imports nothing of the package.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Literal

Endpoint = Literal["chat", "completions", "embeddings"]
ModelKind = Literal["chat", "embedding"]

JSONObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model one backend can serve, with the facts the backend reports.

    ``None`` means "the backend does not say"; profiles fill such gaps.
    """

    id: str
    backend: str
    kind: ModelKind = "chat"
    loaded: bool | None = None
    context_length: int | None = None
    supports_vision: bool | None = None
    supports_tools: bool | None = None
    supports_json_mode: bool | None = None
    size_bytes: int | None = None
    # In-process engines load a model when asked, in seconds: an unloaded one is still ready to serve
    # (unlike LM Studio's just-in-time loads, which strict loading avoids).
    loads_on_demand: bool = False
    # Fields the backend's own model list reports beyond ours (LM Studio's publisher, arch, state …),
    # shown on /v1/models beside ours; never part of a model's identity.
    listing: JSONObject | None = field(default=None, compare=False, hash=False)

    @property
    def ready(self) -> bool:
        """Servable now: loaded, not reporting, or loaded on demand."""
        return self.loaded is not False or self.loads_on_demand


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None  # set by billing for priced backends

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(slots=True)
class BackendRequest:
    """What a backend is asked to run: the OpenAI body with ``model`` already set to a concrete id."""

    endpoint: Endpoint
    model: str
    body: JSONObject
    timeout: float | None = None
    # The conversation this call belongs to (a hex digest), when several backends serve its model:
    # a backend may pass it on to a server that keeps a prompt cache per session.
    session: str | None = None


@dataclass(frozen=True, slots=True)
class BackendResponse:
    """A whole (non-streamed) answer: the OpenAI JSON object, encoded, plus its usage."""

    content: bytes
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """One streamed event: a JSON-encoded OpenAI chunk object (never SSE framing).

    ``more`` says more of the stream (the next chunk, or its end) is already at hand: it arrived
    with this one, so a writer may hold this chunk and write it with what follows at no cost in
    time."""

    payload: bytes
    usage: Usage | None = None
    more: bool = False


ChunkStream = AsyncGenerator[StreamChunk, None]


@dataclass(frozen=True, slots=True)
class BackendHealth:
    ok: bool
    detail: str = ""
    extra: JSONObject = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FleetRow:
    """One backend that shares a model id with others, as metrics and the dashboard show it."""

    backend: str
    outstanding: int
    latency: float | None  # EWMA seconds to the first byte
    affinity: dict[str, int]  # outcome ("hit", "new", "moved", "spilled") -> requests
    hedges_started: int
    hedges_won: int
