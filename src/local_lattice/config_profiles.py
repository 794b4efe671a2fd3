"""Launch profiles of ``lattice serve --profile``: the original's tuned environment presets.

A profile is a set of environment values applied under the real environment (a variable the
operator set always wins). ``stable`` alone means ``stable=balanced``. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

_MLX_BASE = {
    "PORT": "5001",
    "MAX_CONCURRENT_MODELS": "2",
    "MAX_PARALLEL_MODEL_CALLS": "2",
    "MLX_PER_MODEL_INFLIGHT_CAP": "1",
    "MLX_QUEUE_MAX_PER_MODEL": "32",
    "MLX_QUEUE_MAX_TOTAL": "128",
    "MLX_QUEUE_WAIT_TIMEOUT_SEC": "20",
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
        "ON_MODEL_MISS": "error",
        "ANTHROPIC_AUTO_ROUTE": "0",
    }


PROFILES: Mapping[str, Mapping[str, str]] = {
    "lmstudio": {"PORT": "5000", "LM_STUDIO_URL": "http://127.0.0.1:1234"},
    "mlx": _MLX_BASE,
    "stable=safe": _stable(1, 8, 16, 256, 2048),
    "stable=balanced": _stable(2, 12, 24, 384, 3072),
    "stable=faster": _stable(2, 16, 32, 512, 4096),
}
ALIASES = {"stable": "stable=balanced"}


class UnknownProfile(ValueError):
    pass


def profile_env(name: str, env: Mapping[str, str]) -> dict[str, str]:
    """``env`` over the profile's values. Raises ``UnknownProfile`` naming the choices."""
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    values = PROFILES.get(key)
    if values is None:
        choices = ", ".join([*PROFILES, *ALIASES])
        raise UnknownProfile(f"unknown profile {name!r} (choose one of: {choices})")
    return {**values, **env}
