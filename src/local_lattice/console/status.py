"""``lattice ps``: what a running gateway is doing now — each backend's health, every model with its
loaded state, calls in flight and waiting, and the measured service time. Reads ``/healthz`` (public)
and ``/v1/models`` (needs the key when the gateway has one)."""

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


def _models(models: list[dict[str, Any]], admission: dict[str, Any]) -> Table:
    per_model: dict[str, dict[str, Any]] = admission.get("models") or {}
    title = (
        f"Models: {admission.get('inflight', 0)} in flight, {admission.get('waiting', 0)} waiting "
        f"(queue ≤ {admission.get('queue_max_per_model')} per model, ≤ {admission.get('queue_max_total')} in all)"
    )
    table = Table(title=title, title_justify="left")
    for column in ("model", "backend", "kind", "loaded", "in flight", "waiting", "service s"):
        table.add_column(column, justify="right" if column in ("in flight", "waiting", "service s") else "left")
    # Admission counts per "backend/model"; the model list names the backend in owned_by.
    rows = [(m["id"], str(m.get("owned_by", "?")), m.get("kind", "?"), m.get("loaded")) for m in models]
    listed = {f"{backend}/{model_id}" for model_id, backend, _, _ in rows}
    rows += [(key.split("/", 1)[-1], key.split("/", 1)[0], "?", None) for key in per_model if key not in listed]
    for model_id, backend, kind, loaded in rows:
        queue = per_model.get(f"{backend}/{model_id}", {})
        service = queue.get("service_sec")
        table.add_row(
            model_id, backend, kind, "?" if loaded is None else ("yes" if loaded else "no"),
            str(queue.get("inflight", 0)), str(queue.get("waiting", 0)), "-" if service is None else f"{service:.2f}",
        )  # fmt: skip
    return table


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
    parts.append(_models(models, health.body["admission"]))
    code = 0 if health.status == 200 and listing.status == 200 else 1
    return code, Group(*parts)
