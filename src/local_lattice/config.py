"""The whole configuration as one pydantic tree: ``load(path, env) -> Config``.

Sources, later wins: built-in defaults → the TOML file → environment variables (the original's
names keep their meaning, see ``ENV_SETTINGS``). Secrets come only from the environment, via
``"${env:NAME}"`` in the file. This module reads files and the given env mapping; it starts nothing.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file, key or variable."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ServerConfig(_Section):
    """HTTP server and the front-door protections."""

    host: str = Field("127.0.0.1", description="Bind address (env HOST).")
    port: int = Field(5001, ge=0, le=65535, description="TCP port (env PORT).")
    api_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Accepted API keys; env MIDDLE_LAYER_API_KEY adds one. Empty = no auth (loopback only).",
    )
    allow_public_no_auth: bool = Field(
        False, description="Allow a non-loopback bind without a key (env MIDDLE_LAYER_ALLOW_PUBLIC_NO_AUTH)."
    )
    max_request_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Largest request body (env MIDDLE_LAYER_MAX_REQUEST_BYTES)."
    )
    cors_origins: list[str] = Field(default_factory=list, description="Allowed CORS origins (env CORS_ORIGINS).")
    log_timing: bool = Field(True, description="Log one timing line per request (env LATTICE_LOG_TIMING).")

    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


BackendType = Literal["openai", "lmstudio", "ollama", "llamacpp", "mlx"]
IN_PROCESS_TYPES = ("llamacpp", "mlx")


class BackendConfig(_Section):
    """One upstream (any OpenAI-compatible server, LM Studio, Ollama) or one in-process engine
    (``llamacpp`` for GGUF files, ``mlx`` for MLX model folders)."""

    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$", description="Unique name.")
    type: BackendType = Field("openai", description="openai | lmstudio | ollama | llamacpp | mlx")
    url: str | None = Field(None, description="Base URL including /v1 (required for openai, lmstudio, ollama).")
    api_key: SecretStr | None = Field(None, description='The backend\'s own key, e.g. "${env:UPSTREAM_KEY}".')
    timeout: float = Field(300.0, gt=0, description="Seconds for one upstream call (env GENERATION_TIMEOUT).")
    connect_timeout: float = Field(5.0, gt=0, description="Seconds to open a connection.")
    model_list_ttl: float = Field(30.0, ge=0, description="Seconds a model list is reused (env MODEL_LIST_TTL).")
    max_connections: int = Field(256, ge=1, description="Pooled connections to this upstream.")
    keep_alive: str | None = Field(None, description="Ollama keep_alive passed on when the client sets none.")

    models: dict[str, str] = Field(
        default_factory=dict, description="In-process engines: model id -> GGUF file or MLX folder served under it."
    )
    model_paths: list[str] = Field(
        default_factory=list, description="In-process engines: extra files or folders to discover models in."
    )
    discover: bool = Field(
        True, description="In-process engines: scan MLX_MODEL_ROOT, LM Studio, mlx-models and Hugging Face caches."
    )
    n_ctx: int = Field(4096, ge=64, description="llamacpp: context length in tokens (capped by the model's own).")
    n_threads: int | None = Field(None, ge=1, description="llamacpp: CPU threads (default: all cores).")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.match(r"^https?://", value):
            raise ValueError("url must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _url_needed(self) -> BackendConfig:
        if self.type not in IN_PROCESS_TYPES and self.url is None:
            raise ValueError(f"backend {self.name!r} of type {self.type} needs a url")
        return self


class EngineConfig(_Section):
    """Residency and generation defaults shared by the in-process engines (llamacpp, mlx)."""

    model_root: str | None = Field(None, description="Extra folder scanned for models first (env MLX_MODEL_ROOT).")
    max_concurrent_models: int = Field(
        2, ge=1, description="Models resident at once across engines (env MAX_CONCURRENT_MODELS)."
    )
    memory_budget_gb: float | None = Field(
        None, gt=0, description="Resident models' total file size may not exceed this (unset: no budget)."
    )
    preload: list[str] = Field(
        default_factory=list, description="Model ids loaded and self-tested at start (env PRELOAD_MODELS)."
    )
    force_gc_on_evict: bool = Field(False, description="Run the garbage collector after an eviction.")
    context_over_budget: Literal["error", "trim"] = Field(
        "error", description="A prompt longer than the context: 400 (error) or drop the oldest turns (trim)."
    )
    context_trim_buffer: int = Field(
        256, ge=0, description="Tokens kept free for the answer when trimming (env MLX_CONTEXT_TRIM_BUFFER)."
    )
    per_model_inflight_cap: int = Field(
        1, ge=0, description="Generations at once per model; 0 = unlimited (env MLX_PER_MODEL_INFLIGHT_CAP)."
    )
    grab_model: str | None = Field(
        None, description="Grab mode: this one model (file or folder) serves every request (env MLX_GRAB_MODEL)."
    )


PreferLoaded = Literal["strict", "1", "0"]


class RoutingConfig(_Section):
    """How a request's ``model`` becomes a concrete model (see docs/capabilities.md)."""

    default_model: str = Field("", description="Id or substring auto-pick tries first (env DEFAULT_MODEL).")
    force_default_model: bool = Field(
        False, description="Route every request to the default model (env MLX_FORCE_DEFAULT_MODEL)."
    )
    on_model_miss: Literal["fallback", "error"] = Field(
        "error",
        description="A spec that matches nothing: 404 listing what is available (error), or auto-pick and say "
        "so in X-Model-Resolution (fallback) (env ON_MODEL_MISS).",
    )
    extra_placeholder_models: list[str] | None = Field(
        None,
        description="Extra ids that mean 'you pick' (env EXTRA_PLACEHOLDER_MODELS); unset keeps the "
        "legacy client ids (mlx, lmstudio, middle-layer …), empty removes them.",
    )
    prefer_loaded: PreferLoaded = Field(
        "strict",
        description="strict: only loaded models when any is loaded; 1: loaded first, then installed; "
        "0: ignore loaded state (env PREFER_LOADED_MODELS).",
    )
    long_prompt_chars: int = Field(
        48000, ge=1, description="Prompt length that asks for a long context window (env MLX_ROUTE_LONG_PROMPT_CHARS)."
    )
    roles_file: str | None = Field(None, description="Role registry in JSON (env MODEL_ROLES_FILE).")
    roles_json: str | None = Field(None, description="Role registry as inline JSON (env MODEL_ROLES_JSON).")
    profiles_file: str | None = Field(None, description="Model profiles in JSON (env MODEL_PROFILES_FILE).")
    default_max_tokens: int = Field(1024, ge=1, description="max_tokens when unset (env DEFAULT_MAX_TOKENS).")
    max_tokens_ceiling: int = Field(16384, ge=1, description="Largest max_tokens passed on (env MAX_TOKENS_CEILING).")
    fallback_attempts: int = Field(3, ge=1, le=16, description="Candidates tried when one fails before its first byte.")
    failure_threshold: int = Field(3, ge=1, description="Failures in a row that put a backend on cool-down.")
    cooldown_seconds: float = Field(30.0, ge=0, description="Seconds a failing backend is skipped.")


class Config(_Section):
    """The gateway's configuration (``lattice.example.toml`` documents every key)."""

    server: ServerConfig = Field(default_factory=ServerConfig)  # type: ignore[arg-type]
    backends: list[BackendConfig] = Field(default_factory=list)
    engines: EngineConfig = Field(default_factory=EngineConfig)  # type: ignore[arg-type]
    roles: dict[str, list[str] | str] = Field(
        default_factory=dict, description="role name -> ordered model specs; keys starting with _ are comments."
    )
    profiles: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Model profiles.")
    routing: RoutingConfig = Field(default_factory=RoutingConfig)  # type: ignore[arg-type]

    @field_validator("backends")
    @classmethod
    def _unique_names(cls, value: list[BackendConfig]) -> list[BackendConfig]:
        seen: set[str] = set()
        for backend in value:
            if backend.name in seen:
                raise ValueError(f"backend name {backend.name!r} is used twice")
            seen.add(backend.name)
        return value


# --- environment ---------------------------------------------------------------------------------


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected 1/0/true/false, got {raw!r}")


def _csv(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _prefer_loaded(raw: str) -> str:
    """The original's tokens: strict/only/2/loaded-only → strict; 0/false/no/off → 0; anything else → 1."""
    value = raw.strip().lower()
    if value in {"strict", "only", "2", "loaded-only", "loaded_only"}:
        return "strict"
    return "0" if value in {"0", "false", "no", "off"} else "1"


@dataclass(frozen=True)
class EnvSetting:
    """One environment variable and where it lands in the config tree."""

    name: str
    path: tuple[str, ...]
    parse: Callable[[str], Any]
    help: str


ENV_SETTINGS: tuple[EnvSetting, ...] = (
    EnvSetting("HOST", ("server", "host"), str, "Bind address."),
    EnvSetting("PORT", ("server", "port"), int, "TCP port."),
    EnvSetting(
        "MIDDLE_LAYER_API_KEY",
        ("server", "api_keys", "+"),
        str,
        "An API key clients must send (adds to the list).",
    ),
    EnvSetting(
        "MIDDLE_LAYER_ALLOW_PUBLIC_NO_AUTH",
        ("server", "allow_public_no_auth"),
        _bool,
        "1 allows a non-loopback bind without a key.",
    ),
    EnvSetting(
        "MIDDLE_LAYER_MAX_REQUEST_BYTES",
        ("server", "max_request_bytes"),
        int,
        "Largest request body in bytes.",
    ),
    EnvSetting("CORS_ORIGINS", ("server", "cors_origins"), _csv, "Comma-separated allowed origins."),
    EnvSetting("LATTICE_LOG_TIMING", ("server", "log_timing"), _bool, "0 turns the per-request timing log off."),
    EnvSetting(
        "MODEL_LIST_TTL",
        ("backends", "*", "model_list_ttl"),
        float,
        "Seconds a backend's model list is reused.",
    ),
    EnvSetting("GENERATION_TIMEOUT", ("backends", "*", "timeout"), float, "Seconds for one upstream call."),
    EnvSetting("DEFAULT_MODEL", ("routing", "default_model"), str.strip, "Model auto-pick tries first."),
    EnvSetting(
        "MLX_FORCE_DEFAULT_MODEL", ("routing", "force_default_model"), _bool, "1 sends every request to the default."
    ),
    EnvSetting("ON_MODEL_MISS", ("routing", "on_model_miss"), str.lower, "fallback | error when nothing matches."),
    EnvSetting(
        "EXTRA_PLACEHOLDER_MODELS", ("routing", "extra_placeholder_models"), _csv, "Extra 'you pick' model ids."
    ),
    EnvSetting("PREFER_LOADED_MODELS", ("routing", "prefer_loaded"), _prefer_loaded, "strict | 1 | 0."),
    EnvSetting(
        "MLX_ROUTE_LONG_PROMPT_CHARS", ("routing", "long_prompt_chars"), int, "Prompt chars that need a long context."
    ),
    EnvSetting("MODEL_ROLES_FILE", ("routing", "roles_file"), str, "Role registry JSON file."),
    EnvSetting("MODEL_ROLES_JSON", ("routing", "roles_json"), str, "Role registry as inline JSON."),
    EnvSetting("MODEL_PROFILES_FILE", ("routing", "profiles_file"), str, "Model profiles JSON file."),
    EnvSetting("DEFAULT_MAX_TOKENS", ("routing", "default_max_tokens"), int, "max_tokens when the client sets none."),
    EnvSetting("MAX_TOKENS_CEILING", ("routing", "max_tokens_ceiling"), int, "Largest max_tokens passed on."),
    EnvSetting("MLX_MODEL_ROOT", ("engines", "model_root"), str, "Extra folder scanned for local models."),
    EnvSetting("MAX_CONCURRENT_MODELS", ("engines", "max_concurrent_models"), int, "Models resident at once."),
    EnvSetting("PRELOAD_MODELS", ("engines", "preload"), _csv, "Comma-separated model ids loaded at start."),
    EnvSetting("MLX_FORCE_GC_ON_EVICT", ("engines", "force_gc_on_evict"), _bool, "1 runs gc after an eviction."),
    EnvSetting("MLX_CONTEXT_OVER_BUDGET", ("engines", "context_over_budget"), str, "error | trim."),
    EnvSetting("MLX_CONTEXT_TRIM_BUFFER", ("engines", "context_trim_buffer"), int, "Tokens kept for the answer."),
    EnvSetting(
        "MLX_PER_MODEL_INFLIGHT_CAP", ("engines", "per_model_inflight_cap"), int, "Generations at once per model."
    ),
    EnvSetting("MLX_GRAB_MODEL", ("engines", "grab_model"), str, "One model (file or folder) serves everything."),
)


def _interpolate(value: Any, env: Mapping[str, str], where: str) -> Any:
    if isinstance(value, str):

        def repl(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise ConfigError(f"{where}: environment variable {name} is not set")
            return env[name]

        return re.sub(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}", repl, value)
    if isinstance(value, list):
        return [_interpolate(item, env, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {key: _interpolate(item, env, f"{where}.{key}") for key, item in value.items()}
    return value


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    for setting in ENV_SETTINGS:
        text = env.get(setting.name)
        if text is None:
            continue
        try:
            value = setting.parse(text)
        except ValueError as exc:
            raise ConfigError(f"environment variable {setting.name}: {exc}") from None
        head, *rest = setting.path
        if head == "backends":
            for backend in raw.get("backends", []):
                backend.setdefault(rest[-1], value)
            continue
        node = raw.setdefault(head, {})
        if rest[-1] == "+":
            node.setdefault(rest[0], [])
            if value and value not in node[rest[0]]:
                node[rest[0]].append(value)
        else:
            node[rest[-1]] = value
    lm_studio = env.get("LM_STUDIO_URL")
    if lm_studio and not raw.get("backends"):
        url = lm_studio.rstrip("/")
        raw["backends"] = [{"name": "lmstudio", "type": "lmstudio", "url": url if url.endswith("/v1") else url + "/v1"}]


def _format_validation(error: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        lines.append(f"  {where}: {item['msg']}")
    return "\n".join(lines)


def load(path: str | Path | None, env: Mapping[str, str]) -> Config:
    """Read ``path`` (TOML, optional), apply ``env`` and validate. Raises ``ConfigError``."""
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        raw = _interpolate(raw, env, source)
    _apply_env(raw, env)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, source)) from None


def check_bind(server: ServerConfig) -> None:
    """Refuse a public bind without a key (the caller exits 2 with this message)."""
    if server.api_keys or server.allow_public_no_auth or server.is_loopback():
        return
    raise ConfigError(
        f"refusing to listen on {server.host} without an API key: set MIDDLE_LAYER_API_KEY "
        "(or server.api_keys), bind 127.0.0.1, or set MIDDLE_LAYER_ALLOW_PUBLIC_NO_AUTH=1 behind a proxy "
        "that authenticates"
    )


def json_schema() -> dict[str, Any]:
    """The JSON schema of the config file (committed as ``docs/config-schema.json``)."""
    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Local Lattice configuration"
    return schema


__all__ = [
    "ENV_SETTINGS",
    "IN_PROCESS_TYPES",
    "BackendConfig",
    "Config",
    "ConfigError",
    "EngineConfig",
    "RoutingConfig",
    "ServerConfig",
    "check_bind",
    "load",
]
