"""Agent specs: what one swarm member is (a model spec plus per-agent overrides), how the request's
``models`` value is parsed, and how sentinels (``auto``, ``loaded``, ``*``, ``all``, ``all-loaded``)
expand over the inventory. Pure functions; raises ``InvalidRequest`` for bad shapes."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from local_lattice.errors import InvalidRequest, ModelNotFound
from local_lattice.types import JSONObject, ModelInfo

SENTINELS = frozenset({"auto", "loaded", "*", "all", "all-loaded"})
# Names that mark an embedding model even when a backend does not say so.
_EMBED_WORDS = ("embed", "bge-", "e5-", "minilm", "gte-")
_OVERRIDES = ("max_tokens", "temperature", "top_p")


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """One member: ``model`` is any routing spec; the rest override the request for this agent."""

    model: str
    system: str | None = None
    messages: tuple[JSONObject, ...] | None = None
    overrides: JSONObject = field(default_factory=dict)
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class CallContext:
    """The parent request's priority and absolute deadline (``time.monotonic``), passed to every call."""

    priority: int = 0
    deadline: float | None = None

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()


def _agent(raw: Any, where: str) -> AgentSpec:
    if isinstance(raw, str):
        if not raw.strip():
            raise InvalidRequest(f"{where}: empty model spec", param=where)
        return AgentSpec(model=raw.strip())
    if not isinstance(raw, dict) or not isinstance(raw.get("model"), str) or not raw["model"].strip():
        raise InvalidRequest(f"{where}: expected a model spec string or an object with a 'model'", param=where)
    messages = raw.get("messages")
    if messages is not None and (not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages)):
        raise InvalidRequest(f"{where}.messages: expected a list of message objects", param=where)
    system = raw.get("system")
    timeout = raw.get("timeout")
    return AgentSpec(
        model=raw["model"].strip(),
        system=system if isinstance(system, str) else None,
        messages=tuple(messages) if messages is not None else None,
        overrides={k: raw[k] for k in _OVERRIDES if raw.get(k) is not None},
        timeout=float(timeout) if isinstance(timeout, int | float) and timeout > 0 else None,
    )


def parse_agents(raw: Any, where: str = "models") -> list[AgentSpec]:
    """``models`` as a comma-separated string, a list of strings/objects, or one object."""
    if raw is None or raw == "" or raw == []:
        raise InvalidRequest(f"'{where}' is required: a list of model specs or a sentinel such as 'auto'", param=where)
    if isinstance(raw, str):
        items: list[Any] = [part for part in (p.strip() for p in raw.split(",")) if part]
    elif isinstance(raw, dict):
        items = [raw]
    elif isinstance(raw, list):
        items = raw
    else:
        raise InvalidRequest(f"'{where}' must be a string or a list", param=where)
    return [_agent(item, f"{where}[{i}]") for i, item in enumerate(items)]


def _chat_capable(model: ModelInfo) -> bool:
    return model.kind == "chat" and not any(word in model.id.lower() for word in _EMBED_WORDS)


def sentinel_models(models: Sequence[ModelInfo]) -> list[str]:
    """Every sentinel means the same, as in the original: the loaded chat-capable ids, or every
    installed chat-capable id when none reports loaded (backends that cannot tell count as installed)."""
    chat = [m for m in models if _chat_capable(m)]
    loaded = [m for m in chat if m.loaded]
    return list(dict.fromkeys(m.id for m in (loaded or chat)))


def expand(agents: Sequence[AgentSpec], models: Sequence[ModelInfo], cap: int = 0) -> list[AgentSpec]:
    """Replace sentinel members by the models they stand for (at most ``cap`` each; 0 = all)."""
    out: list[AgentSpec] = []
    for agent in agents:
        if agent.model.lower() not in SENTINELS:
            out.append(agent)
            continue
        ids = sentinel_models(models)
        if cap > 0:
            ids = ids[:cap]
        out.extend(replace(agent, model=model_id) for model_id in ids)
    if not out:
        raise ModelNotFound(
            "no chat model is available for the swarm (the sentinel matched nothing)",
            param="models",
            code="no_models_loaded",
        )
    return out
