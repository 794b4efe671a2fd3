"""The dashboard's snapshot: one JSON document with everything the page draws.

Read-only: it looks at the gateway (backends, inventory, observer, preferences, roles) and never
changes it. Backend health checks run concurrently with a short timeout so a dead backend cannot
stall the page. Error texts are cut to ``dashboard.max_error_chars`` (MLX_DASHBOARD_MAX_ERROR_CHARS).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from local_lattice import __version__
from local_lattice.backends.base import Backend, ModelLoader
from local_lattice.gateway import Gateway

HEALTH_TIMEOUT = 2.0


async def _health(backend: Backend) -> dict[str, Any]:
    try:
        result = await asyncio.wait_for(backend.health(), HEALTH_TIMEOUT)
    except TimeoutError:
        return {"ok": False, "detail": f"no answer in {HEALTH_TIMEOUT:g}s"}
    except Exception as exc:  # a health probe must never break the page
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
    return {"ok": result.ok, "detail": result.detail}


def _cut(text: str | None, limit: int) -> str | None:
    return text if text is None or len(text) <= limit else text[: limit - 1] + "…"


async def build(gateway: Gateway, recent_limit: int = 100) -> dict[str, Any]:
    limit = gateway.config.dashboard.max_error_chars
    names = list(gateway.backends)
    health, inventory = await asyncio.gather(
        asyncio.gather(*(_health(gateway.backends[n]) for n in names)),
        gateway.inventory.snapshot(),
    )
    observer = gateway.observer
    observer.flush()  # the charts include requests that finished a moment ago
    backends = [
        {
            "name": name,
            "type": type(gateway.backends[name]).__name__,
            "can_load": isinstance(gateway.backends[name], ModelLoader),
            "models": sum(1 for m in inventory.models if m.backend == name),
            "error": _cut(inventory.errors.get(name), limit),
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
    }
