"""The role registry: ``role:<name>`` → an ordered list of model specs (ids or substrings).

Sources, first present wins: ``MODEL_ROLES_JSON`` (inline), ``MODEL_ROLES_FILE`` (the original's JSON:
``{"_comment": "...", "coder": ["qwen3-coder", "coder"], ...}``), ``[roles]`` in the config, and the
built-in defaults. Keys starting with ``_`` are comments, never roles. A malformed source raises
``ConfigError`` naming the file and line, so the gateway refuses to start rather than guess.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local_lattice.config import Config, ConfigError

BUILTIN_ROLES: dict[str, tuple[str, ...]] = {
    "coder": ("coder", "code"),
    "reasoner": ("72b", "70b", "qwen2.5", "llama-3.3", "deepseek-r1", "deepseek"),
    "fast": ("3b", "7b", "phi", "mini", "small"),
    "vision": ("vl", "vision", "llava"),
    "default": (),
}


@dataclass(frozen=True, slots=True)
class Roles:
    """Role name (lower-case) → specs in preference order, and where they came from."""

    table: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(BUILTIN_ROLES))
    source: str = "built-in"

    def get(self, name: str) -> tuple[str, ...] | None:
        return self.table.get(name.lower())

    def as_json(self) -> dict[str, list[str]]:
        return {name: list(specs) for name, specs in self.table.items()}


def _line_of(text: str, key: str) -> int:
    """The line where ``key`` is written in ``text`` (1-based), for error messages."""
    needle = json.dumps(key)
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    return 1


def roles_from_mapping(data: Any, where: str, text: str = "") -> dict[str, tuple[str, ...]]:
    """Validate a decoded registry. ``where`` names the source in errors; ``text`` gives line numbers."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: the role registry must be a JSON object of role -> list of models")
    table: dict[str, tuple[str, ...]] = {}
    for key, value in data.items():
        if not isinstance(key, str) or key.startswith("_"):
            continue
        specs = [value] if isinstance(value, str) else value
        if not isinstance(specs, list) or not all(isinstance(s, str) for s in specs):
            line = f":{_line_of(text, key)}" if text else ""
            raise ConfigError(f"{where}{line}: role {key!r} must be a list of model ids or substrings")
        table[key.strip().lower()] = tuple(s.strip() for s in specs if s.strip())
    return table


def parse_roles_json(text: str, where: str) -> dict[str, tuple[str, ...]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    return roles_from_mapping(data, where, text)


def load_roles(config: Config) -> Roles:
    """The registry the config selects (see the module docstring for the order)."""
    routing = config.routing
    if routing.roles_json:
        return Roles(parse_roles_json(routing.roles_json, "MODEL_ROLES_JSON"), "MODEL_ROLES_JSON")
    if routing.roles_file:
        path = Path(routing.roles_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the role registry: {exc.strerror or exc}") from None
        return Roles(parse_roles_json(text, str(path)), str(path))
    if config.roles:
        return Roles(roles_from_mapping(config.roles, "config [roles]"), "config")
    return Roles()
