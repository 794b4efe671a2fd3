"""The dashboard's snapshot: one JSON document with everything the page draws.

Read-only: it looks at the gateway (backends, inventory, observer, preferences, roles) and never
changes it. Backend health checks run concurrently with a short timeout so a dead backend cannot
stall the page. Error texts are cut to ``dashboard.max_error_chars`` (MLX_DASHBOARD_MAX_ERROR_CHARS).
The original dashboard's fields (``events``, ``models_available`` …) come first, ours after, under
their own names.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from local_lattice import __version__, original_state
from local_lattice.backends.base import Backend, ModelLoader
from local_lattice.gateway import Gateway
from local_lattice.routing.inventory import InventorySnapshot
from local_lattice.types import FleetRow

HEALTH_TIMEOUT = 2.0


async def _health(backend: Backend) -> dict[str, Any]:
    try:
        result = await asyncio.wait_for(backend.health(), HEALTH_TIMEOUT)
    except TimeoutError:
        return {"ok": False, "detail": f"no answer in {HEALTH_TIMEOUT:g}s"}
    except Exception as exc:  # a health probe must never break the page
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
    load_errors = result.extra.get("load_errors")
    return {"ok": result.ok, "detail": result.detail, **({"load_errors": load_errors} if load_errors else {})}


def _original(gateway: Gateway, inventory: InventorySnapshot, health: list[dict[str, Any]]) -> dict[str, Any]:
    """The original snapshot's fields (ours follow and keep their own names)."""
    limit = gateway.config.dashboard.max_error_chars
    errors = {m: _cut(error, limit) for state in health for m, error in state.get("load_errors", {}).items()}
    admission = original_state.admission_state(gateway)
    return {
        "dashboard_enabled": True,
        "note": original_state.DASHBOARD_NOTE,
        "mlx_available": any(b.type in original_state.IN_PROCESS for b in gateway.config.backends),
        "grab_mode": bool(gateway.config.engines.grab_model),
        "mlx_root": gateway.config.engines.model_root,
        "models_available": list(dict.fromkeys(m.id for m in inventory.models)),
        "models_loaded": list(dict.fromkeys(m.id for m in inventory.models if m.loaded)),
        "memory": original_state.memory(gateway, inventory),
        "recent_load_errors": errors,
        "load_error_count": len(errors),
        "active_by_alias": admission["inflight_by_alias"],
        "events": gateway.observer.events.original_events(),
        "config": original_state.config_summary(gateway),
    }


def _cut(text: str | None, limit: int) -> str | None:
    return text if text is None or len(text) <= limit else text[: limit - 1] + "…"


def _fleet(row: FleetRow) -> dict[str, Any]:
    """A backend's share of a fleet (several backends serving one id)."""
    return {
        "outstanding": row.outstanding,
        "latency_ms": None if row.latency is None else round(row.latency * 1000, 1),
        "affinity": row.affinity,
        "affinity_hits": row.affinity.get("hit", 0),
        "hedges_started": row.hedges_started,
        "hedges_won": row.hedges_won,
    }


async def build(gateway: Gateway, recent_limit: int = 100) -> dict[str, Any]:
    limit = gateway.config.dashboard.max_error_chars
    names = list(gateway.backends)
    health, inventory = await asyncio.gather(
        asyncio.gather(*(_health(gateway.backends[n]) for n in names)),
        gateway.inventory.snapshot(),
    )
    observer = gateway.observer
    observer.flush()  # the charts include requests that finished a moment ago
    fleet = {row.backend: row for row in gateway.fleet.rows(gateway.tracker.in_flight)}
    backends = [
        {
            "name": name,
            "type": type(gateway.backends[name]).__name__,
            "can_load": isinstance(gateway.backends[name], ModelLoader),
            "models": sum(1 for m in inventory.models if m.backend == name),
            "error": _cut(inventory.errors.get(name), limit),
            "fleet": _fleet(fleet[name]) if name in fleet else None,
            **state,
            "detail": _cut(state.get("detail"), limit),
        }
        for name, state in zip(names, health, strict=True)
    ]
    models = [
        {"id": m.id, "backend": m.backend, "kind": m.kind, "loaded": m.loaded}
        for m in sorted(inventory.models, key=lambda m: (m.backend, m.id))
    ]
    return {
        **_original(gateway, inventory, list(health)),
        "version": __version__,
        "now": time.time(),
        "backends": backends,
        "models": models,
        "roles": gateway.policy.roles.as_json(),  # what role:<name> resolves by, built-ins included
        "preferences": gateway.preferences.model_dump(),
        "totals": observer.totals(),
        "series": {"step": observer.series.step, "points": observer.series.points(since=observer.started_at)},
        "recent": observer.events.recent(recent_limit),
        "swarm_runs": observer.events.recent_swarm_runs(),
        "capture_prompts": observer.capture_prompts,
        # Replicas sharing a store: whether it is reached (degraded: limits and caps counted here).
        "state": gateway.shared_state() if gateway.shared_state is not None else None,
    }
