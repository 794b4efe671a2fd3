"""Launch profiles (``lattice serve --profile``): the original's launcher presets.

A profile is a set of environment values applied under the real environment (a variable the
operator set always wins), the values the original's ``scripts/start.sh --profile …`` exported:

- ``lmstudio``: one LM Studio at ``LM_STUDIO_URL`` on port 5000, its backend named ``local`` (so
  answers say ``X-Model-Routed-To: local/<id>``), only loaded models (``PREFER_LOADED_MODELS=strict``),
  swarms over the loaded set that return the first success, one model call at a time;
- ``mlx``: the in-process engines on port 5001 with the original's generation and queue defaults;
- ``stable[=safe|balanced|faster]`` (``stable`` alone is ``safe``, as the original's): ``mlx`` with
  one resident model, smaller queues and token budgets, trimming instead of refusing long prompts.

``lmstudio`` and ``mlx`` keep the original's ``ON_MODEL_MISS=fallback``; ``stable`` says ``error``.
The original's roles and profiles files are used when they sit in the working folder (or the one
above it), as its launcher found them next to itself: ``lmstudio_roles.json`` (``lmstudio``, else
``mlx_roles.json``), ``mlx_roles.json`` and ``model_profiles.json`` (``mlx``, ``stable``).
Reads the environment mapping it is given and whether those files exist; nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

_MLX_BASE = {
    "PORT": "5001",
    "MAX_CONCURRENT_MODELS": "2",
    "MAX_PARALLEL_MODEL_CALLS": "2",
    "MLX_PER_MODEL_INFLIGHT_CAP": "1",
    "MLX_QUEUE_MAX_PER_MODEL": "32",
    "MLX_QUEUE_MAX_TOTAL": "128",
    "MLX_QUEUE_WAIT_TIMEOUT_SEC": "20",
    "DEFAULT_MAX_TOKENS": "1024",
    "MAX_TOKENS_CEILING": "16384",
    "ON_MODEL_MISS": "fallback",
}


def _stable(parallel: int, per_model: int, total: int, max_tokens: int, ceiling: int) -> dict[str, str]:
    return {
        **_MLX_BASE,
        "MAX_CONCURRENT_MODELS": "1",
        "MAX_PARALLEL_MODEL_CALLS": str(parallel),
        "MLX_PER_MODEL_INFLIGHT_CAP": "1",
        "MLX_QUEUE_MAX_PER_MODEL": str(per_model),
        "MLX_QUEUE_MAX_TOTAL": str(total),
        "DEFAULT_MAX_TOKENS": str(max_tokens),
        "MAX_TOKENS_CEILING": str(ceiling),
        "MLX_QUEUE_WAIT_TIMEOUT_SEC": "20",
        "MLX_CONTEXT_OVER_BUDGET": "trim",
        "MLX_CONTEXT_TRIM_BUFFER": "16",
        "ON_MODEL_MISS": "error",
        "ANTHROPIC_AUTO_ROUTE": "0",
    }


PROFILES: Mapping[str, Mapping[str, str]] = {
    "lmstudio": {
        "PORT": "5000",
        "LM_STUDIO_URL": "http://127.0.0.1:1234",
        "LATTICE_LMSTUDIO_NAME": "local",
        "PREFER_LOADED_MODELS": "strict",
        "SWARM_CHAT_DEFAULT_MODELS": "auto",
        "SWARM_CHAT_DEFAULT_STRATEGY": "first-success",
        "MAX_PARALLEL_MODEL_CALLS": "1",
        "ON_MODEL_MISS": "fallback",
    },
    "mlx": _MLX_BASE,
    "stable=safe": _stable(1, 8, 16, 256, 2048),
    "stable=balanced": _stable(2, 12, 24, 384, 3072),
    "stable=faster": _stable(2, 16, 32, 512, 4096),
}
ALIASES = {"stable": "stable=safe"}

# The original's files a profile picks up from the working folder: variable → names, first found wins.
_FILES: Mapping[str, Mapping[str, Sequence[str]]] = {
    "lmstudio": {"MODEL_ROLES_FILE": ("lmstudio_roles.json", "mlx_roles.json")},
    "mlx": {"MODEL_ROLES_FILE": ("mlx_roles.json",), "MODEL_PROFILES_FILE": ("model_profiles.json",)},
}


class UnknownProfile(ValueError):
    pass


def canonical(name: str) -> str:
    """The profile ``name`` means (``stable`` → ``stable=safe``). Raises ``UnknownProfile``."""
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in PROFILES:
        choices = ", ".join([*PROFILES, *ALIASES])
        raise UnknownProfile(f"unknown profile {name!r} (choose one of: {choices})")
    return key


def _found(names: Sequence[str], folder: Path) -> str | None:
    for place in (folder, folder.parent):
        for name in names:
            if (place / name).is_file():
                return str(place / name)
    return None


def profile_env(name: str, env: Mapping[str, str], folder: Path | None = None) -> dict[str, str]:
    """``env`` over the profile's values (and the original's files found in ``folder``)."""
    key = canonical(name)
    values = dict(PROFILES[key])
    if folder is not None:
        for variable, names in _FILES["lmstudio" if key == "lmstudio" else "mlx"].items():
            path = _found(names, folder)
            if path is not None:
                values[variable] = path
    return {**values, **env}
