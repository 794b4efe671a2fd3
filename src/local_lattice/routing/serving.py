"""What a gateway started from a config serves: the one place that decides it.

A config that names backends (besides a cloud one) is served as written. One that names none is
served by the in-process defaults (the embedded demo model, GGUF and MLX models in the usual
folders) plus the usual local servers that answer (``LATTICE_DISCOVER_SERVERS``). ``lattice serve``,
``lattice doctor``, ``lattice models`` and ``lattice init`` all build their inventory here, so what
the commands show is what the server serves. Nothing here starts a server or loads a model.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from local_lattice.backends.base import Backend
from local_lattice.backends.registry import build_backends
from local_lattice.config import Config
from local_lattice.engines.defaults import with_default_backends
from local_lattice.routing.inventory import Inventory, InventorySnapshot

log = logging.getLogger("lattice.routing")


def configured(config: Config) -> bool:
    """Whether ``config`` names a backend of its own (a cloud one alone does not count)."""
    return any(b.type != "anthropic" for b in config.backends)


async def serving_config(config: Config) -> Config:
    """``config`` with the backends a server started from it serves (probing the usual local servers
    when it names none; each probe waits at most a couple of seconds)."""
    if configured(config):
        return config
    base = with_default_backends(config)
    if not config.routing.discover_servers or config.engines.grab_model:
        return base  # grab mode serves its one model and nothing else
    from local_lattice.routing.discovery import discover_servers  # only a gateway with nothing configured probes

    servers = await discover_servers(config.routing.discover_servers)
    if servers:
        log.info("found local servers: %s", ", ".join(f"{b.name} ({b.url})" for b in servers))
    return base.model_copy(update={"backends": [*base.backends, *servers]})


@dataclass(frozen=True, slots=True)
class Served:
    """The serving config, its backends (open while the ``served`` block runs) and one fresh snapshot."""

    config: Config
    backends: dict[str, Backend]
    snapshot: InventorySnapshot


@asynccontextmanager
async def served(config: Config) -> AsyncIterator[Served]:
    """The inventory a server started from ``config`` would have, taken once; every backend is closed
    when the block ends. In-process engines list their models without loading any."""
    serving = await serving_config(config)
    backends = build_backends(serving)
    try:
        snapshot = await Inventory(backends).snapshot(fresh=True)
        yield Served(serving, backends, snapshot)
    finally:
        for backend in backends.values():
            await backend.aclose()
