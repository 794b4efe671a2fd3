"""The original product's state documents, in its field names, built from a running ``Gateway``:
the full ``/healthz`` state, the extra ``/swarm/models`` fields and the dashboard's ``config`` and
``admission`` objects. They sit beside our own fields; nothing here changes the gateway.

Where the original had two gateways, the names of both are given: ``mlx_*`` lists the in-process
engines' models (the original's MLX gateway ran its models in process), ``lmstudio_*`` the models of
upstream servers (the original's LM Studio gateway proxied one). Read-only; no I/O of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from local_lattice.gateway import Gateway
from local_lattice.routing.inventory import InventorySnapshot
from local_lattice.types import ModelInfo

IN_PROCESS = frozenset({"llamacpp", "mlx"})
DASHBOARD_URL = "http://<host>:<port>/dashboard/"
DASHBOARD_NOTE = "This dashboard shows routing and I/O metadata only, not internal chain-of-thought."
# The original's sentinels for "the loaded models" (they all mean the same here).
AUTO_TOKENS = ("*", "all", "all-loaded", "auto", "loaded")


def _ids(models: Iterable[ModelInfo]) -> list[str]:
    return list(dict.fromkeys(m.id for m in models))


def _types(gateway: Gateway) -> dict[str, str]:
    return {b.name: b.type for b in gateway.config.backends}


def admission_state(gateway: Gateway) -> dict[str, Any]:
    """The original's admission object: caps, totals and counts by model id."""
    scheduler = gateway.admission.scheduler
    inflight: dict[str, int] = {}
    queued: dict[str, int] = {}
    for counts, tickets in ((inflight, scheduler.inflight()), (queued, scheduler.waiting())):
        for ticket in tickets:
            model = ticket.model[len(ticket.backend) + 1 :]
            counts[model] = counts.get(model, 0) + 1
    settings = gateway.config.admission
    return {
        "enabled": True,
        "inflight_cap_per_model": settings.per_model_inflight_cap,
        "queue_max_per_model": settings.queue_max_per_model,
        "queue_max_total": settings.queue_max_total,
        "inflight_total": sum(inflight.values()),
        "queued_total": sum(queued.values()),
        "inflight_by_alias": inflight,
        "queued_by_alias": queued,
    }


def fanout_budget(gateway: Gateway, agents: int = 3) -> float:
    """Seconds a fanout of ``agents`` may take: the overall swarm timeout, or the per-call timeout for
    each round of ``max_parallel`` calls, whichever ends first."""
    swarm = gateway.config.swarm
    rounds = -(-max(1, agents) // max_parallel(gateway))
    return float(min(swarm.fanout_timeout, swarm.per_call_timeout * rounds))


def max_parallel(gateway: Gateway) -> int:
    """Agent calls one swarm runs at once: its own bound, or the global cap on model calls when lower
    (the original's ``max_parallel`` was ``MAX_PARALLEL_MODEL_CALLS``, which sized its swarm pools)."""
    config = gateway.config
    cap = config.admission.max_parallel_model_calls
    return min(config.swarm.max_parallel, cap) if cap else config.swarm.max_parallel


def _cloud(gateway: Gateway) -> tuple[bool, str | None]:
    target = gateway.escalation.target
    return target is not None, None if target is None else target.model


def config_summary(gateway: Gateway) -> dict[str, Any]:
    """The ``config`` object of the original's dashboard snapshot."""
    config = gateway.config
    enabled, _ = _cloud(gateway)
    return {
        "model_roles": gateway.policy.roles.as_json(),
        "default_model_env": gateway.policy.default_model or None,
        "max_concurrent_models": config.engines.max_concurrent_models,
        "max_parallel_model_calls": config.admission.max_parallel_model_calls,
        "swarm_fanout_timeout_sec": config.swarm.fanout_timeout,
        "swarm_fanout_budget_example_sec": fanout_budget(gateway),
        "anthropic_enabled": enabled,
        "admission": admission_state(gateway),
    }


def memory(gateway: Gateway, snapshot: InventorySnapshot) -> dict[str, Any]:
    """The original's ``memory`` object: the in-process engines' resident models and their bound."""
    types = _types(gateway)
    loaded = _ids(m for m in snapshot.models if m.loaded and types.get(m.backend) in IN_PROCESS)
    return {"loaded": loaded, "count": len(loaded), "max": gateway.config.engines.max_concurrent_models}


def swarm_models_fields(gateway: Gateway) -> dict[str, Any]:
    """The original's ``/swarm/models`` fields that ours does not already carry."""
    config = gateway.config
    enabled, model = _cloud(gateway)
    return {
        "max_parallel": max_parallel(gateway),
        "max_concurrent_models": config.engines.max_concurrent_models,
        "anthropic_available": enabled,
        "anthropic_model": model,
        "swarm_chat_enabled": config.swarm.chat_enabled,
        "swarm_chat_default_models": config.swarm.chat_default_models,
        "swarm_chat_default_strategy": config.swarm.chat_default_strategy,
        "swarm_chat_auto_tokens_loaded": list(AUTO_TOKENS),
        "swarm_chat_auto_tokens_available": list(AUTO_TOKENS),
    }


def _by_family(gateway: Gateway, snapshot: InventorySnapshot) -> dict[str, Any]:
    types = _types(gateway)
    chat = [m for m in snapshot.models if m.kind == "chat" and not gateway.cloud.is_cloud(m.backend)]
    engine = [m for m in chat if types.get(m.backend) in IN_PROCESS]
    served = [m for m in chat if types.get(m.backend) not in IN_PROCESS]
    served_ids = _ids(served)
    return {
        "models": _ids(chat),
        "loaded": _ids(m for m in chat if m.loaded),
        "mlx_available": bool(engine),
        "mlx_root": gateway.config.engines.model_root,
        "mlx_models": _ids(engine),
        "mlx_loaded": _ids(m for m in engine if m.loaded),
        "memory": memory(gateway, snapshot),
        "lmstudio_model": served_ids[0] if served_ids else None,
        "lmstudio_models": served_ids,
        "lmstudio_loaded_models": _ids(m for m in served if m.loaded),
        "lmstudio_error": "; ".join(f"{name}: {error}" for name, error in sorted(snapshot.errors.items())) or None,
    }


def health_state(
    gateway: Gateway, snapshot: InventorySnapshot, ok: bool, swarm_aliases: Mapping[str, tuple[str, bool]]
) -> dict[str, Any]:
    """The original's full ``/healthz`` state (both of its gateways' fields). ``swarm_aliases`` maps
    each chat meta-model name to ``(intent, deprecated)``."""
    config, policy = gateway.config, gateway.policy
    enabled, model = _cloud(gateway)
    timeout = max((b.timeout for b in config.backends), default=300.0)
    swarm = config.swarm
    return {
        "ok": ok,
        **_by_family(gateway, snapshot),
        "model_roles": policy.roles.as_json(),
        "model_roles_source": policy.roles.source,
        "default_model": gateway.runtime_default or policy.default_model or None,
        "prefer_loaded_models": policy.prefer_loaded != "0",
        "strict_loaded_models": policy.prefer_loaded == "strict",
        "on_model_miss": policy.on_model_miss,
        "max_parallel": max_parallel(gateway),
        "per_model_inflight_cap": config.admission.per_model_inflight_cap,
        "mlx_per_model_inflight_cap": config.admission.per_model_inflight_cap,
        "mlx_per_model_admission_cap_legacy": None,  # its old cap variable now sets the in-flight cap
        "mlx_queue_max_per_model": config.admission.queue_max_per_model,
        "mlx_queue_max_total": config.admission.queue_max_total,
        "mlx_queue_wait_timeout_sec": config.admission.queue_wait_timeout_sec,
        "mlx_context_over_budget": config.engines.context_over_budget,
        "anthropic_enabled": enabled,
        "anthropic_model": model,
        "swarm_fanout_timeout_sec": swarm.fanout_timeout,
        "swarm_fanout_budget_example_sec": fanout_budget(gateway),
        "swarm_chat_enabled": swarm.chat_enabled,
        "swarm_chat_default_models": swarm.chat_default_models,
        "swarm_chat_default_strategy": swarm.chat_default_strategy,
        "swarm_chat_auto_tokens": list(AUTO_TOKENS),
        "swarm_chat_auto_tokens_loaded": list(AUTO_TOKENS),
        "swarm_chat_auto_tokens_available": list(AUTO_TOKENS),
        "swarm_chat_canonical": "swarmCouncil",
        "swarm_chat_aliases": {
            name: {"intent": intent, "deprecated": old} for name, (intent, old) in sorted(swarm_aliases.items())
        },
        "dashboard": DASHBOARD_URL if config.dashboard.enabled else None,
        "model_profiles_file": config.routing.profiles_file,
        "generation_advisory_timeout_sec": timeout,
        "generation_timeout_sec": timeout,
    }
