"""Finding the local servers that answer: a server's model list probed, ``kind=url`` entries parsed.

``lattice serve`` with nothing configured probes the usual local servers here; ``lattice init``
probes them too, and more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from local_lattice.backends.registry import build_backend
from local_lattice.config import BackendConfig
from local_lattice.errors import LatticeError
from local_lattice.types import ModelInfo


@dataclass
class Probe:
    """What one source held: a server's models, or a folder's."""

    source: str
    models: list[ModelInfo] = field(default_factory=list)
    error: str | None = None


async def probe_server(config: BackendConfig) -> Probe:
    backend = build_backend(config)
    try:
        return Probe(f"{config.name} ({config.url})", await backend.models())
    except LatticeError as exc:
        return Probe(f"{config.name} ({config.url})", error=exc.message)
    finally:
        await backend.aclose()


def server_config(name: str, kind: str, url: str) -> BackendConfig:
    return BackendConfig.model_validate({"name": name, "type": kind, "url": url, "connect_timeout": 2.0})


def parse_server(entry: str) -> BackendConfig:
    """``kind=url`` (``lmstudio``, ``ollama`` or ``openai``) as a backend named after it."""
    kind, _, url = entry.partition("=")
    kind, url = kind.strip(), url.strip()
    if kind not in ("lmstudio", "ollama", "openai") or not url:
        raise ValueError(f"expected lmstudio=URL, ollama=URL or openai=URL, got {entry!r}")
    port = url.rstrip("/").removesuffix("/v1").rsplit(":", 1)[-1]
    name = kind if kind != "openai" else f"local-{port if port.isdigit() else 'server'}"
    return server_config(name, kind, url)


PROBE_SECONDS = 2.0  # a local server answers its model list at once; start-up must not wait longer


async def discover_servers(entries: Sequence[str]) -> list[BackendConfig]:
    """The servers among ``entries`` (``kind=url``) that answer with at least one model, probed
    at once; a silent or empty one is left out. Names stay unique."""
    configs = [parse_server(entry) for entry in entries]

    async def answers(config: BackendConfig) -> bool:
        try:
            probe = await asyncio.wait_for(probe_server(config), PROBE_SECONDS)
        except TimeoutError:
            return False
        return probe.error is None and bool(probe.models)

    found = await asyncio.gather(*(answers(c) for c in configs))
    chosen: list[BackendConfig] = []
    for config, ok in zip(configs, found, strict=True):
        if ok and all(c.name != config.name for c in chosen):
            chosen.append(config)
    return chosen
