"""Build backends from their config entries: the one map from ``type`` to class.

Each backend class is imported only when configured: the in-process engines and the residency
manager they all share, so the gateway runs without their extras and a gateway of HTTP backends
never loads them; the HTTP backends too, so a gateway of in-process models alone never builds their
connection machinery.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from local_lattice.backends.base import Backend
from local_lattice.config import IN_PROCESS_TYPES, BackendConfig, Config

if TYPE_CHECKING:
    from local_lattice.engines.engine import Shared


def build_backend(config: BackendConfig) -> Backend:
    if config.type == "ollama":
        from local_lattice.backends.ollama import OllamaBackend

        return OllamaBackend(config)
    if config.type == "lmstudio":
        from local_lattice.backends.lmstudio import LMStudioBackend

        return LMStudioBackend(config)
    if config.type == "anthropic":
        # Imported here so the gateway starts without the optional ``anthropic`` client installed.
        from local_lattice.backends.anthropic import AnthropicBackend

        return AnthropicBackend(config)
    from local_lattice.backends.openai_compat import OpenAIBackend

    return OpenAIBackend(config)


def shared_engines(config: Config, env: Mapping[str, str]) -> Shared:
    from local_lattice.engines.engine import Shared
    from local_lattice.engines.residency import ModelManager

    settings = config.engines
    budget = None if settings.memory_budget_gb is None else int(settings.memory_budget_gb * 1024**3)
    manager = ModelManager(settings.max_concurrent_models, budget, force_gc=settings.force_gc_on_evict)
    return Shared(settings, manager, env, config.routing.default_max_tokens)


def build_engine(config: BackendConfig, shared: Shared) -> Backend:
    if config.type == "llamacpp":
        from local_lattice.backends.llamacpp import LlamaCppBackend

        return LlamaCppBackend(config, shared)
    from local_lattice.backends.mlx import MLXBackend

    return MLXBackend(config, shared)


def build_backends(config: Config, env: Mapping[str, str] | None = None) -> dict[str, Backend]:
    """Every configured backend by name (see ``engines.defaults.with_default_backends``)."""
    entries = list(config.backends)
    shared: Shared | None = None
    built: dict[str, Backend] = {}
    for entry in entries:
        if entry.type in IN_PROCESS_TYPES:
            shared = shared or shared_engines(config, os.environ if env is None else env)
            built[entry.name] = build_engine(entry, shared)
        else:
            built[entry.name] = build_backend(entry)
    return built
