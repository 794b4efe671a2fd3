"""What a request asks of a local generation: sampling settings, limits and stop strings.

Owns reading those fields from an OpenAI body (already shape-checked by the wire models) and the
stop-string matcher both engines use. Pure: no I/O, no engine imports.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from local_lattice.errors import InvalidRequest

DEFAULT_TEMPERATURE = 0.8  # llama.cpp's own default: 1.0 makes very small models ramble
DEFAULT_TOP_P = 0.95


@dataclass(frozen=True, slots=True)
class Sampling:
    """The sampling settings of one engine call, read from the request with the config's defaults."""

    max_tokens: int
    temperature: float
    top_p: float
    seed: int
    stop: tuple[str, ...]
    include_usage: bool


def _number(body: dict[str, Any], name: str, default: float) -> float:
    value = body.get(name)
    return default if value is None else float(value)


def sampling_of(body: dict[str, Any], default_max_tokens: int) -> Sampling:
    if (body.get("n") or 1) != 1:
        raise InvalidRequest("local engines generate one choice per request (n must be 1)", param="n")
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or default_max_tokens
    stop = body.get("stop") or ()
    stops = (stop,) if isinstance(stop, str) else tuple(s for s in stop if s)
    seed = body.get("seed")
    options = body.get("stream_options") or {}
    return Sampling(
        max_tokens=int(max_tokens),
        temperature=_number(body, "temperature", DEFAULT_TEMPERATURE),
        top_p=_number(body, "top_p", DEFAULT_TOP_P),
        seed=int(seed) if seed is not None else random.randrange(2**31),
        stop=stops,
        include_usage=bool(options.get("include_usage")) if isinstance(options, dict) else False,
    )


class StopMatcher:
    """Finds stop strings across token boundaries, holding back only text that may start one."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = stops
        self._held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """``(text safe to emit, hit)``; on a hit the text ends just before the stop string."""
        if not self.stops:
            return text, False
        buffer = self._held + text
        hits = [i for i in (buffer.find(s) for s in self.stops) if i >= 0]
        if hits:
            self._held = ""
            return buffer[: min(hits)], True
        keep = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(buffer)), 0, -1):
                if buffer.endswith(stop[:size]):
                    keep = max(keep, size)
                    break
        self._held = buffer[len(buffer) - keep :]
        return buffer[: len(buffer) - keep], False

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held
