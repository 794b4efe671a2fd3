"""The original's environment variables that name something this gateway does another way.

Each is either read as the variable that means the same here (``RENAMED``, applied before the
environment reaches the config, only when the current name is unset) or, when nothing here
corresponds, reported once at start with what to use instead (``RETIRED``; ``start_notes``).
Every other variable the original read keeps its name and meaning (``config_env.ENV_SETTINGS``).
Pure: reads the mapping it is given.
"""

from __future__ import annotations

from collections.abc import Mapping

# Old name → the name that means the same here.
RENAMED: Mapping[str, str] = {
    "MLX_PER_MODEL_ADMISSION_CAP": "MLX_PER_MODEL_INFLIGHT_CAP",  # the original's own earlier name
    "TARGET_MODEL": "DEFAULT_MODEL",  # its LM Studio launcher's input for the default model
}
# Renamed variables worth a word at start (the original itself warned about these).
_SAY_RENAMED = frozenset({"MLX_PER_MODEL_ADMISSION_CAP"})

# Names of things that do not exist here → what to use instead.
RETIRED: Mapping[str, str] = {
    "USE_LITELLM_FOR_ANTHROPIC": "the anthropic backend calls Anthropic's Messages API itself, with no LiteLLM "
    "in between; ANTHROPIC_API_KEY, ANTHROPIC_MODEL and ANTHROPIC_BASE_URL configure it",
    "MAX_WORKERS": "the gateway is asynchronous and has no worker pool; cap model calls with "
    "MAX_PARALLEL_MODEL_CALLS and MLX_PER_MODEL_INFLIGHT_CAP",
    "MLX_SKIP_STARTUP_MODEL_PROMPT": "the gateway never asks for a default model at start; set DEFAULT_MODEL "
    "or pick one on the dashboard",
    "MLX_SKIP_STARTUP_ROOT_PROMPT": "the gateway never asks for a model folder at start; set MLX_MODEL_ROOT "
    "or pass --model-root",
}


def with_renamed(env: Mapping[str, str]) -> Mapping[str, str]:
    """``env`` with every renamed variable also under its current name, unless that one is set."""
    moved = {new: env[old] for old, new in RENAMED.items() if old in env and new not in env}
    return {**env, **moved} if moved else env


def start_notes(env: Mapping[str, str]) -> list[str]:
    """One sentence per variable of ``env`` that is read under another name or not at all."""
    notes = []
    for old in sorted(_SAY_RENAMED & env.keys()):
        new = RENAMED[old]
        if new in env:
            notes.append(f"{old} is ignored: {new}, its current name, is set too")
        else:
            notes.append(f"{old} is read as {new}, its current name; rename it")
    for name, instead in RETIRED.items():
        if name in env:
            notes.append(f"{name} has no effect here: {instead}")
    return notes
