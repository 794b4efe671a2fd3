"""Build in-process engine backends for tests from plain dicts, with discovery kept inside a
temporary HOME so the machine's own model folders never leak into a test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from local_lattice.backends.base import Backend
from local_lattice.backends.registry import build_backends
from local_lattice.config import Config
from local_lattice.engines.engine import EngineBackend
from local_lattice.types import BackendRequest


def chat(model: str, text: str, **body: Any) -> BackendRequest:
    return BackendRequest("chat", model, {"messages": [{"role": "user", "content": text}], **body})


@asynccontextmanager
async def engine_backends(
    home: Path, backends: list[Mapping[str, Any]], **engines: Any
) -> AsyncIterator[dict[str, EngineBackend[Any]]]:
    config = Config.model_validate({"backends": [{"discover": False, **b} for b in backends], "engines": engines})
    built: dict[str, Backend] = build_backends(config, {"HOME": str(home)})
    typed = {name: b for name, b in built.items() if isinstance(b, EngineBackend)}
    try:
        yield typed
    finally:
        for backend in built.values():
            await backend.aclose()
