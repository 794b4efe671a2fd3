"""Build backends from their config entries: the one map from ``type`` to class."""

from __future__ import annotations

from local_lattice.backends.base import Backend
from local_lattice.backends.ollama import OllamaBackend
from local_lattice.backends.openai_compat import OpenAIBackend
from local_lattice.config import BackendConfig


def build_backend(config: BackendConfig) -> Backend:
    if config.type == "ollama":
        return OllamaBackend(config)
    if config.type == "anthropic":
        # Imported here so the gateway starts without the optional ``anthropic`` client installed.
        from local_lattice.backends.anthropic import AnthropicBackend

        return AnthropicBackend(config)
    return OpenAIBackend(config)
