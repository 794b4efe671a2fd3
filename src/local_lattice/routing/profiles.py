"""Model profiles: what each model can do and how to call it, and the generation defaults they imply.

A profile is layered, later wins: built-in defaults → what the id itself says (vision words, the
size token's latency tier and memory, see ``routing.sizes``) → ``defaults`` (profiles file, then
``[profiles]``) → facts the backend reports (context length, vision, tools, JSON mode) → every
``patterns`` entry whose substring is in the id, in order → the exact id's entry. The configured layers sit above the
built-in guesses: a file's ``defaults`` are never overridden by what the gateway guessed from a name.
A pattern that is itself a size (``"8b"``) matches only that size token of an id, never the ``8b``
inside ``8bit`` or the ``3b`` of ``a3b``.

The profiles file is the original's JSON
(``{"defaults": {...}, "patterns": [{"substring", "profile"}], "aliases": {id: {...}}}``); in TOML,
``[profiles.defaults]``, ``[profiles."*coder*"]`` (a star makes a pattern) and ``[profiles."<id>"]``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from local_lattice.config import Config, ConfigError
from local_lattice.errors import ContextTooLong
from local_lattice.routing.sizes import is_size_token, size_profile, size_tokens
from local_lattice.types import Endpoint, JSONObject, ModelInfo

_BOOL = ("supports_vision", "supports_tools", "supports_json_mode")
_INT = ("context_window", "default_max_tokens", "max_tokens_ceiling")
_FLOAT = ("temperature_default", "top_p_default", "memory_gb_estimate")
FIELDS = (*_INT, *_FLOAT, *_BOOL, "latency_tier")


@dataclass(frozen=True, slots=True)
class Profile:
    context_window: int = 131072
    default_max_tokens: int = 1024
    max_tokens_ceiling: int = 16384
    temperature_default: float = 0.7
    top_p_default: float = 0.95
    supports_vision: bool = False
    supports_tools: bool = True
    supports_json_mode: bool = False
    latency_tier: str = "medium"
    memory_gb_estimate: float = 8.0

    def as_json(self) -> JSONObject:
        return asdict(self)


def check_layer(layer: Any, where: str) -> dict[str, Any]:
    """One partial profile, validated: known fields with the right types (``None`` values dropped)."""
    if not isinstance(layer, dict):
        raise ConfigError(f"{where}: a profile must be an object of fields")
    out: dict[str, Any] = {}
    for key, value in layer.items():
        if value is None or key.startswith("_"):
            continue
        if key not in FIELDS:
            raise ConfigError(f"{where}: unknown profile field {key!r} (known: {', '.join(FIELDS)})")
        ok = (
            (key in _BOOL and isinstance(value, bool))
            or (key in _INT and isinstance(value, int) and not isinstance(value, bool) and value > 0)
            or (key in _FLOAT and isinstance(value, int | float) and not isinstance(value, bool))
            or (key == "latency_tier" and isinstance(value, str))
        )
        if not ok:
            raise ConfigError(f"{where}: profile field {key!r} has an invalid value {value!r}")
        out[key] = value.lower() if key == "latency_tier" else value
    return out


# Words most vision model ids carry; with the size token, the built-in guesses under every configured layer.
VISION_WORDS = ("vl", "vision", "llava", "pixtral")


def builtin_layer(model_id: str) -> dict[str, Any]:
    """What the gateway guesses from the id alone: vision from its words, tier and memory from its size."""
    lowered = model_id.lower()
    layer = size_profile(lowered)
    if any(word in lowered for word in VISION_WORDS):
        layer["supports_vision"] = True
    return layer


class ProfileBook:
    """Every profile layer, and the effective profile of a model (memoised per ``ModelInfo``)."""

    def __init__(
        self,
        defaults: dict[str, Any] | None = None,
        patterns: list[tuple[str, dict[str, Any]]] | None = None,
        aliases: dict[str, dict[str, Any]] | None = None,
        ceiling: int = 16384,
    ) -> None:
        self.base = Profile(max_tokens_ceiling=ceiling)
        self.defaults = defaults or {}
        self.patterns = [(sub.lower(), layer) for sub, layer in patterns or [] if sub]
        self._sizes = frozenset(sub for sub, _ in self.patterns if is_size_token(sub))
        self.aliases = {key.lower(): layer for key, layer in (aliases or {}).items()}
        self.ceiling = ceiling
        self._memo: dict[ModelInfo, Profile] = {}

    def profile_for(self, model: ModelInfo) -> Profile:
        found = self._memo.get(model)
        if found is None:
            found = self._memo[model] = self._compute(model)
        return found

    def _compute(self, model: ModelInfo) -> Profile:
        merged: dict[str, Any] = {**asdict(self.base), **builtin_layer(model.id), **self.defaults}
        facts = {
            "context_window": model.context_length,
            "supports_vision": model.supports_vision,
            "supports_tools": model.supports_tools,
            "supports_json_mode": model.supports_json_mode,
        }
        merged.update({k: v for k, v in facts.items() if v is not None})
        lowered = model.id.lower()
        sizes = size_tokens(lowered) if self._sizes else frozenset()
        for substring, layer in self.patterns:
            matched = substring in sizes if substring in self._sizes else substring in lowered
            if matched:
                merged.update(layer)
        merged.update(self.aliases.get(lowered, {}))
        # The global ceiling bounds every profile; a profile may only lower it.
        merged["max_tokens_ceiling"] = min(int(merged["max_tokens_ceiling"]), self.ceiling)
        return Profile(**merged)


def _file_layers(path: Path) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]], dict[str, dict[str, Any]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the model profiles: {exc.strerror or exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: model profiles must be a JSON object")
    defaults = check_layer(doc.get("defaults") or {}, f"{path}: defaults")
    patterns = []
    for i, item in enumerate(doc.get("patterns") or []):
        if not isinstance(item, dict) or not isinstance(item.get("substring"), str):
            raise ConfigError(f"{path}: patterns[{i}] needs a 'substring' and a 'profile'")
        patterns.append((item["substring"], check_layer(item.get("profile") or {}, f"{path}: patterns[{i}]")))
    raw_aliases = doc.get("aliases") or {}
    if not isinstance(raw_aliases, dict):
        raise ConfigError(f"{path}: aliases must be an object of id -> profile")
    aliases = {str(k): check_layer(v, f"{path}: aliases[{k!r}]") for k, v in raw_aliases.items()}
    return defaults, patterns, aliases


def load_profiles(config: Config) -> ProfileBook:
    routing = config.routing
    defaults: dict[str, Any] = {"default_max_tokens": routing.default_max_tokens}
    patterns: list[tuple[str, dict[str, Any]]] = []
    aliases: dict[str, dict[str, Any]] = {}
    if routing.profiles_file:
        file_defaults, patterns, aliases = _file_layers(Path(routing.profiles_file).expanduser())
        defaults.update(file_defaults)
    for key, layer in config.profiles.items():
        checked = check_layer(layer, f"config [profiles.{key!r}]")
        if key == "defaults":
            defaults.update(checked)
        elif "*" in key:
            patterns.append((key.replace("*", ""), checked))
        else:
            aliases[key] = checked
    return ProfileBook(defaults, patterns, aliases, ceiling=routing.max_tokens_ceiling)


def apply_generation_defaults(body: JSONObject, endpoint: Endpoint, profile: Profile, prompt_chars: int) -> list[str]:
    """Fill and clamp ``max_tokens`` (or ``max_completion_tokens``) and sampler defaults in ``body``.

    ``max_tokens`` is bounded by the profile's ceiling and by the context room the prompt leaves
    (estimated at 3 characters a token, the same estimate routing uses). Returns notes for the
    explanation; raises ``ContextTooLong`` when the prompt alone fills the window.
    """
    if endpoint == "embeddings":
        return []
    notes: list[str] = []
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    requested = body.get(key)
    wanted = requested if isinstance(requested, int) and requested >= 1 else profile.default_max_tokens
    room = profile.context_window - prompt_chars // 3
    if room < 1:
        raise ContextTooLong(
            f"the prompt (~{prompt_chars // 3} tokens) leaves no room in the model's context window "
            f"of {profile.context_window} tokens",
            param="messages",
        )
    value = min(wanted, profile.max_tokens_ceiling, room)
    body[key] = value
    if isinstance(requested, int) and value < requested:
        notes.append(f"{key} {requested} clamped to {value}")
    if body.get("temperature") is None:
        body["temperature"] = profile.temperature_default
    if body.get("top_p") is None:
        body["top_p"] = profile.top_p_default
    return notes
