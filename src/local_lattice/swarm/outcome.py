"""A swarm's result and how it is reported: the ``chat.completion`` with the ``swarm`` object, the
``swarm.fanout`` object, usage summed over every call and per candidate, and the X-Swarm headers.

The original's names sit beside ours: a fanout also lists its ``responses[]`` rows, a pipeline's and a
debate's ``model`` read ``swarm/pipeline/<last step's model>`` and ``swarm/debate/<judge>``, and a
strategy may add its own headers (``X-Swarm-Steps``, ``X-Swarm-Rounds``, ``X-Swarm-Models``)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote

from local_lattice.observability.record import SwarmCandidate, SwarmRun
from local_lattice.swarm.candidates import Candidate, error_kinds_header, total_usage
from local_lattice.types import JSONObject, Usage

# Printable ASCII but the list separator and the escape character.
_ITEM_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in ",%")


def header_list(items: Iterable[str]) -> str:
    """A comma-separated header value (``X-Swarm-Steps``, ``X-Swarm-Models``): each item as it is
    when printable ASCII, else percent-encoded as UTF-8, so a client's step name can neither break
    the head nor be mistaken for two items."""
    return ",".join(quote(item, safe=_ITEM_SAFE, errors="backslashreplace") for item in items)


@dataclass(slots=True)
class SwarmOutcome:
    """A finished swarm run: the winner and its text, every candidate and extra call, and what the
    answer's body and headers say of them."""

    strategy: str
    winner: Candidate | None
    text: str
    candidates: list[Candidate]
    rationale: str = ""
    calls: list[Candidate] = field(default_factory=list)  # judge, aggregator, pipeline steps …
    extra: JSONObject = field(default_factory=dict)
    model_name: str | None = None  # the answer's ``model`` when not ``swarm/<winner>``
    extra_headers: dict[str, str] = field(default_factory=dict)
    elapsed_ms: float = 0.0  # the whole run, wall clock (set by whoever timed it)

    @property
    def winner_model(self) -> str:
        return self.winner.model if self.winner is not None else "none"

    @property
    def finish_reason(self) -> str:
        """The answer's own ending: the winner's ``length`` (cut off at max_tokens) or
        ``content_filter`` shows through; anything else is a plain ``stop``."""
        reason = self.winner.finish_reason if self.winner is not None else None
        return reason if reason in ("length", "content_filter") else "stop"

    def usage(self) -> Usage:
        return total_usage([*self.candidates, *self.calls])

    def cost(self) -> JSONObject:
        """What the run cost against one single call: every call made, tokens, wall time, and the
        median answering agent's call as the single call it stands against."""
        made = [c for c in [*self.candidates, *self.calls] if not c.cancelled]
        tokens = self.usage().total_tokens
        agents = sorted((c for c in self.candidates if c.ok), key=lambda c: c.usage.total_tokens)
        single = agents[len(agents) // 2] if agents else None
        cost: JSONObject = {"calls": len(made), "tokens": tokens, "latency_ms": round(self.elapsed_ms, 3)}
        if single is not None:
            one_tokens, one_ms = single.usage.total_tokens, single.latency_ms
            cost["single"] = {"calls": 1, "tokens": one_tokens, "latency_ms": round(one_ms, 3)}
            cost["tokens_ratio"] = round(tokens / one_tokens, 3) if one_tokens else None
            cost["latency_ratio"] = round(self.elapsed_ms / one_ms, 3) if one_ms and self.elapsed_ms else None
        return cost

    def meta(self) -> JSONObject:
        return {
            "strategy": self.strategy,
            "winner": self.winner_model,
            "winner_agent": self.winner.agent_id if self.winner else None,
            "rationale": self.rationale,
            "candidates": [c.row() for c in self.candidates],
            "usage": {
                "total": self.usage().as_dict(),
                "per_candidate": {c.agent_id: c.usage.as_dict() for c in [*self.candidates, *self.calls]},
            },
            "cost": self.cost(),
            **self.extra,
        }

    def dashboard_run(self, request_id: str) -> SwarmRun:
        """This run as the dashboard's swarm table shows it."""
        rows = tuple(SwarmCandidate(c.model, c.ok, c.latency_ms / 1000, c.error_kind) for c in self.candidates)
        return SwarmRun(request_id, self.strategy, rows, self.winner.model if self.winner else None, self.rationale)

    def completion(self) -> JSONObject:
        return {
            "id": f"chatcmpl-swarm-{uuid.uuid4().hex[:16]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name or f"swarm/{self.winner_model}",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.text},
                    "finish_reason": self.finish_reason,
                }
            ],
            "usage": self.usage().as_dict(),
            "swarm": self.meta(),
        }

    def fanout(self) -> JSONObject:
        """Every answer, for ``/swarm/fanout`` (no judge)."""
        ok = [c for c in self.candidates if c.ok]
        return {
            "id": f"swarm-fanout-{uuid.uuid4().hex[:16]}",
            "object": "swarm.fanout",
            "created": int(time.time()),
            "candidates": [c.row() for c in self.candidates],
            "responses": [c.original_row() for c in self.candidates],
            "results": [{"agent_id": c.agent_id, "model": c.model, "text": c.text} for c in ok],
            "usage": self.usage().as_dict(),
            "swarm": self.meta(),
        }

    def headers(self) -> dict[str, str]:
        headers = {"X-Swarm-Strategy": self.strategy, "X-Model-Routed-To": f"swarm/{self.winner_model}"}
        if self.strategy == "fanout":
            # Every answer counts alike: no winner, the models that answered (the original's header).
            headers["X-Swarm-Models"] = header_list(c.model for c in self.candidates)
        else:
            headers["X-Swarm-Winner"] = self.winner_model
        kinds = error_kinds_header(self.candidates)
        if kinds:
            headers["X-Swarm-Error-Kinds"] = kinds
        headers.update(self.extra_headers)
        return headers
