"""Capability hints inferred from a request, and which models satisfy them.

Hard hints (vision, a long prompt's minimum context window, tools) remove models that cannot serve
the request; if none is left the request fails naming the unmet constraints. Soft hints (the fast
latency tier, JSON mode) narrow the pool only when something passes, and say when they could not.
Within the fast tier, models marked ``latency_tier = "fast"`` come before those that are merely small.
Pure functions over the request body and headers; no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from local_lattice.routing.profiles import Profile
from local_lattice.types import Endpoint, JSONObject

LATENCY_HEADERS = ("x-lattice-latency-tier", "x-mlx-latency-tier")
FAST_MEMORY_GB = 10.0


@dataclass(frozen=True, slots=True)
class Hints:
    needs_vision: bool = False
    min_context_window: int = 0
    prefers_fast: bool = False
    needs_tools: bool = False
    needs_json_mode: bool = False
    prompt_chars: int = 0

    @property
    def routing_key(self) -> tuple[bool, int, bool, bool, bool]:
        """What routing depends on: every hint but the prompt's length (which only sets
        ``min_context_window``)."""
        return (self.needs_vision, self.min_context_window, self.prefers_fast, self.needs_tools, self.needs_json_mode)

    @property
    def any(self) -> bool:
        return (
            self.needs_vision
            or self.min_context_window > 0
            or self.prefers_fast
            or self.needs_tools
            or (self.needs_json_mode)
        )

    def as_json(self) -> JSONObject:
        return {
            "needs_vision": self.needs_vision,
            "min_context_window": self.min_context_window,
            "prefers_fast": self.prefers_fast,
            "needs_tools": self.needs_tools,
            "needs_json_mode": self.needs_json_mode,
            "prompt_chars": self.prompt_chars,
        }


Check = Callable[[Profile], bool]


def _has_image(messages: Any) -> bool:
    if not isinstance(messages, list):
        return False
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        parts = content if isinstance(content, list) else [content]
        if any(isinstance(p, dict) and p.get("type") == "image_url" for p in parts):
            return True
    return False


def prompt_chars(body: Mapping[str, Any]) -> int:
    """Characters of prompt text: message strings and text parts, or ``prompt``."""
    total = 0
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(p["text"]) for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        total += len(prompt)
    elif isinstance(prompt, list):
        total += sum(len(p) for p in prompt if isinstance(p, str))
    return total


def _latency_tier(headers: Mapping[str, str]) -> str:
    for name in LATENCY_HEADERS:
        value = headers.get(name)
        if value is not None:
            return value.strip().lower()
    return ""


def infer_hints(
    endpoint: Endpoint, body: Mapping[str, Any], headers: Mapping[str, str], long_prompt_chars: int
) -> Hints:
    """The hints of one request; ``headers`` keys are lower-case (``api.dispatch.header_map``)."""
    if endpoint == "embeddings":
        return Hints()
    chars = prompt_chars(body)
    min_context = max(8192, min(2_000_000, chars // 3 + 4096)) if chars >= long_prompt_chars else 0
    response_format = body.get("response_format")
    json_mode = isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema")
    return Hints(
        needs_vision=_has_image(body.get("messages")),
        min_context_window=min_context,
        prefers_fast=_latency_tier(headers) == "fast",
        needs_tools=bool(body.get("tools")),
        needs_json_mode=json_mode,
        prompt_chars=chars,
    )


def hard_checks(hints: Hints) -> list[tuple[str, Check]]:
    checks: list[tuple[str, Check]] = []
    if hints.needs_vision:
        checks.append(("needs_vision", lambda p: p.supports_vision))
    if hints.min_context_window:
        need = hints.min_context_window
        checks.append((f"min_context_window>={need}", lambda p: p.context_window >= need))
    if hints.needs_tools:
        checks.append(("needs_tools", lambda p: p.supports_tools))
    return checks


def soft_checks(hints: Hints) -> list[tuple[str, Check]]:
    checks: list[tuple[str, Check]] = []
    if hints.prefers_fast:
        checks.append(
            ("latency_tier=fast", lambda p: p.latency_tier == "fast" or p.memory_gb_estimate <= FAST_MEMORY_GB)
        )
    if hints.needs_json_mode:
        checks.append(("supports_json_mode", lambda p: p.supports_json_mode))
    return checks


def _marked_fast(profile: Profile) -> bool:
    return profile.latency_tier == "fast"


def preferred_check(hints: Hints) -> Check | None:
    """Among the models the soft hints let through, the ones to try first (None: no preference)."""
    return _marked_fast if hints.prefers_fast else None
