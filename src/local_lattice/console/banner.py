"""The banner ``lattice serve`` prints once the gateway is built: where it listens, whether it asks
for a key, each backend and its health, the models with the roles they win, the dashboard URL."""

from __future__ import annotations

import asyncio
import logging

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from local_lattice import __version__
from local_lattice.config import Config
from local_lattice.gateway import Gateway
from local_lattice.routing.listing import role_winners
from local_lattice.types import BackendHealth

log = logging.getLogger("lattice.console")
HEALTH_TIMEOUT = 3.0  # seconds: the banner must never hold the start for long


def base_url(config: Config) -> str:
    host = config.server.host
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{config.server.port}"


async def _health(gateway: Gateway) -> dict[str, BackendHealth]:
    async def one(name: str) -> BackendHealth:
        try:
            return await asyncio.wait_for(gateway.backends[name].health(), HEALTH_TIMEOUT)
        except TimeoutError:
            return BackendHealth(ok=False, detail=f"no answer in {HEALTH_TIMEOUT:.0f} s")

    names = list(gateway.backends)
    return dict(zip(names, await asyncio.gather(*(one(n) for n in names)), strict=True))


def _backend_table(config: Config, health: dict[str, BackendHealth]) -> Table:
    table = Table(title="Backends", title_justify="left")
    for column in ("name", "type", "url", "health"):
        table.add_column(column)
    for backend in config.backends:
        state = health.get(backend.name)
        shown = Text("?") if state is None else Text(("ok: " if state.ok else "DOWN: ") + state.detail)
        shown.stylize("green" if state is not None and state.ok else "red")
        table.add_row(backend.name, backend.type, backend.url or "(default)", shown)
    return table


async def render(gateway: Gateway) -> Group:
    """The whole banner as one renderable (asks each backend for its health, bounded in time)."""
    config = gateway.config
    url = base_url(config)
    keys = len(config.server.named_keys())
    auth = f"on ({keys} key{'s' if keys != 1 else ''})" if keys else "off (no API key configured)"
    lines = [
        Text(f"Local Lattice {__version__}", style="bold"),
        Text(f"  listening   {url}   (OpenAI base URL {url}/v1)"),
        Text(f"  auth        {auth}"),
        Text(f"  dashboard   {url}/dashboard/" if config.dashboard.enabled else "  dashboard   off"),
    ]
    if not config.backends:
        lines.append(Text("  no backends configured: see lattice.example.toml or set LM_STUDIO_URL", style="yellow"))
        return Group(*lines)
    health, snapshot = await asyncio.gather(_health(gateway), gateway.inventory.snapshot(fresh=True))
    roles = role_winners([m for m in snapshot.models if m.kind == "chat"], gateway.policy)
    models = Table(title=f"Models ({len(snapshot.models)})", title_justify="left")
    for column in ("model", "backend", "kind", "loaded", "roles"):
        models.add_column(column)
    for model in snapshot.models:
        loaded = "?" if model.loaded is None else ("yes" if model.loaded else "no")
        models.add_row(model.id, model.backend, model.kind, loaded, ", ".join(roles.get((model.backend, model.id), ())))
    return Group(*lines, _backend_table(config, health), models)


async def print_banner(gateway: Gateway) -> None:
    """Print the banner; a failure to draw it is logged and never stops the gateway."""
    try:
        banner = await render(gateway)
    except Exception:
        log.exception("could not draw the start banner")
        return
    Console(width=140, soft_wrap=True).print(banner)
