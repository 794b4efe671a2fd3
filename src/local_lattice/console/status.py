"""``lattice ps``: what a running gateway is doing now, as ``ollama ps`` shows it — each backend's
health, every model with its loaded state, the memory a resident model takes, where it runs, when
it leaves memory, calls in flight and waiting, and the measured service time. Reads ``/healthz``
(public) and ``/v1/models`` (needs the key when the gateway has one)."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from local_lattice.console.client import GatewayClient


def _backends(health: dict[str, Any]) -> Table:
    table = Table(title=f"Gateway: {health.get('status', '?')}", title_justify="left")
    for column in ("backend", "health", "detail"):
        table.add_column(column)
    for name, state in sorted((health.get("backends") or {}).items()):
        ok = bool(state.get("ok"))
        table.add_row(name, Text("ok" if ok else "DOWN", style="green" if ok else "red"), str(state.get("detail", "")))
    return table


def _size(size: Any) -> str:
    if not isinstance(size, int) or size <= 0:
        return "-"
    return f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


def _resident(backends: dict[str, Any]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """``backend/model`` → (its resident row, its backend's state), for in-process engines."""
    found = {}
    for name, state in backends.items():
        for row in state.get("resident") or ():
            found[f"{name}/{row.get('model')}"] = (row, state)
    return found


def _runs_on(backend: dict[str, Any] | None) -> str:
    """Where a backend's models run: an in-process engine says its device; a server decides itself."""
    if backend is None or "engine" not in backend:
        return "upstream server"
    return f"{backend.get('device', '?')} · in-process {backend['engine']}"


def _until(row: dict[str, Any], state: dict[str, Any]) -> str:
    residency = state.get("residency") or {}
    if residency.get("idle_timeout_s"):
        return f"idle {row.get('idle_s', 0):.0f} s of {residency['idle_timeout_s']:.0f} s"
    return "evicted (LRU)" + (f", idle {row['idle_s']:.0f} s" if row.get("idle_s") else ", in use")


def _models(models: list[dict[str, Any]], admission: dict[str, Any], backends: dict[str, Any]) -> Table:
    per_model: dict[str, dict[str, Any]] = admission.get("models") or {}
    title = (
        f"Models: {admission.get('inflight', 0)} in flight, {admission.get('waiting', 0)} waiting "
        f"(queue ≤ {admission.get('queue_max_per_model')} per model, ≤ {admission.get('queue_max_total')} in all)"
    )
    table = Table(title=title, title_justify="left", caption=_caption(backends), caption_justify="left")
    numeric = ("in flight", "waiting", "service s", "memory")
    for column in ("model", "backend", "kind", "loaded", "memory", "runs on", "until", *numeric[:3]):
        table.add_column(column, justify="right" if column in numeric else "left")
    # Admission counts per "backend/model"; the model list names the backend in owned_by.
    rows = [(m["id"], str(m.get("owned_by", "?")), m.get("kind", "?"), m.get("loaded")) for m in models]
    listed = {f"{backend}/{model_id}" for model_id, backend, _, _ in rows}
    rows += [(key.split("/", 1)[-1], key.split("/", 1)[0], "?", None) for key in per_model if key not in listed]
    resident = _resident(backends)
    for model_id, backend, kind, loaded in rows:
        key = f"{backend}/{model_id}"
        queue = per_model.get(key, {})
        service = queue.get("service_sec")
        memory, until = "-", "-" if backends.get(backend, {}).get("engine") else "the server's policy"
        if key in resident:
            row, state = resident[key]
            memory, until = _size(row.get("size_bytes")), _until(row, state)
        table.add_row(
            model_id, backend, kind, "?" if loaded is None else ("yes" if loaded else "no"), memory,
            _runs_on(backends.get(backend)), until,
            str(queue.get("inflight", 0)), str(queue.get("waiting", 0)), "-" if service is None else f"{service:.2f}",
        )  # fmt: skip
    return table


def _caption(backends: dict[str, Any]) -> str:
    """How in-process models leave memory (there is no idle timeout: say so)."""
    for state in backends.values():
        residency = state.get("residency")
        if residency:
            budget = residency.get("memory_budget_bytes")
            limit = f"at most {residency.get('max_models')} resident" + (f" within {_size(budget)}" if budget else "")
            if residency.get("idle_timeout_s"):
                return f"In-process models: {limit}; unloaded after {residency['idle_timeout_s']:.0f} s idle."
            return (
                f"In-process models: {limit}; no idle timeout: a model stays loaded until a new one needs its "
                "room (the least recently used idle one goes) or it is unloaded (DELETE /v1/models/{id})."
            )
    return ""


async def gateway_status(url: str, api_key: str | None) -> tuple[int, Group]:
    """(exit code, what to print). Exit 1 when the gateway is unhealthy or the model list is refused."""
    async with GatewayClient(url, api_key, timeout=10) as client:
        health = await client.get("/healthz")
        listing = await client.get("/v1/models")
    if not isinstance(health.body, dict) or "status" not in health.body:
        return 1, Group(Text(f"{url} does not look like a Local Lattice gateway ({health.error})", style="red"))
    if "admission" not in health.body:  # the public answer: the state needs the key
        return 1, Group(Text(f"{url} shows its state only with a key: pass --api-key or set MIDDLE_LAYER_API_KEY"))
    parts: list[Any] = [_backends(health.body)]
    models: list[dict[str, Any]] = []
    if listing.status == 200 and isinstance(listing.body, dict):
        models = list(listing.body.get("data") or [])
    else:
        hint = " (pass --api-key or set MIDDLE_LAYER_API_KEY)" if listing.status == 401 else ""
        parts.append(Text(f"model list refused: {listing.error}{hint}", style="yellow"))
    parts.append(_models(models, health.body["admission"], health.body.get("backends") or {}))
    code = 0 if health.status == 200 and listing.status == 200 else 1
    return code, Group(*parts)
