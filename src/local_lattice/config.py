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

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator


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


BackendType = Literal["openai", "lmstudio", "ollama"]


class BackendConfig(_Section):
    """One upstream: any OpenAI-compatible server, LM Studio or Ollama."""

    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$", description="Unique name.")
    type: BackendType = Field("openai", description="openai | lmstudio | ollama")
    url: str = Field(..., description="Base URL including /v1 for OpenAI-compatible servers.")
    api_key: SecretStr | None = Field(None, description='The backend\'s own key, e.g. "${env:UPSTREAM_KEY}".')
    timeout: float = Field(300.0, gt=0, description="Seconds for one upstream call (env GENERATION_TIMEOUT).")
    connect_timeout: float = Field(5.0, gt=0, description="Seconds to open a connection.")
    model_list_ttl: float = Field(30.0, ge=0, description="Seconds a model list is reused (env MODEL_LIST_TTL).")
    max_connections: int = Field(256, ge=1, description="Pooled connections to this upstream.")
    keep_alive: str | None = Field(None, description="Ollama keep_alive passed on when the client sets none.")
    max_concurrency: int | None = Field(
        None, ge=0, description="Calls run at once on this backend (0 = no cap; unset = admission default)."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://", value):
            raise ValueError("url must start with http:// or https://")
        return value.rstrip("/")


class AdmissionConfig(_Section):
    """Admission control: in-flight caps, the bounded priority queue and its 429 advice."""

    per_model_inflight_cap: int | None = Field(
        None,
        ge=0,
        description="Calls per model at once (env MLX_PER_MODEL_INFLIGHT_CAP; 0 = no cap; "
        "unset = 1 for in-process engines, no cap for upstream servers).",
    )
    max_parallel_model_calls: int | None = Field(
        None, ge=0, description="Global cap on calls at once across all backends (env MAX_PARALLEL_MODEL_CALLS)."
    )
    backend_max_concurrency: int = Field(
        64, ge=0, description="Default per-backend cap for backends without max_concurrency (0 = no cap)."
    )
    queue_max_per_model: int = Field(32, ge=0, description="Waiting calls per model (env MLX_QUEUE_MAX_PER_MODEL).")
    queue_max_total: int = Field(128, ge=0, description="Waiting calls in all (env MLX_QUEUE_MAX_TOTAL).")
    queue_wait_timeout_sec: float = Field(
        20.0, ge=0, description="Default wait budget in the queue (env MLX_QUEUE_WAIT_TIMEOUT_SEC)."
    )
    retry_after_sec: float = Field(
        2.0, gt=0, description="Service-time guess before a model has been timed (env MLX_QUEUE_RETRY_AFTER_SEC)."
    )
    retry_after_max_sec: float = Field(60.0, ge=1, description="Largest Retry-After advised.")
    retry_jitter_sec: float = Field(
        0.5, ge=0, description="Jitter advised to clients (env MLX_QUEUE_RETRY_JITTER_SEC)."
    )
    priority_min: int = Field(-10, description="Lowest priority (env MLX_QUEUE_PRIORITY_MIN).")
    priority_max: int = Field(10, description="Highest priority (env MLX_QUEUE_PRIORITY_MAX).")
    default_priority: int = Field(
        0, description="Priority of requests that give none (env MLX_QUEUE_DEFAULT_PRIORITY)."
    )


class Config(_Section):
    """The gateway's configuration (``lattice.example.toml`` documents every key)."""

    server: ServerConfig = Field(default_factory=ServerConfig)  # type: ignore[arg-type]
    backends: list[BackendConfig] = Field(default_factory=list)
    roles: dict[str, list[str]] = Field(default_factory=dict, description="role name -> ordered model specs.")
    profiles: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Model profiles.")
    admission: AdmissionConfig = Field(default_factory=AdmissionConfig)  # type: ignore[arg-type]

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
    EnvSetting("MLX_PER_MODEL_INFLIGHT_CAP", ("admission", "per_model_inflight_cap"), int, "Calls per model at once."),
    EnvSetting("MAX_PARALLEL_MODEL_CALLS", ("admission", "max_parallel_model_calls"), int, "Global cap on calls."),
    EnvSetting("MLX_QUEUE_MAX_PER_MODEL", ("admission", "queue_max_per_model"), int, "Waiting calls per model."),
    EnvSetting("MLX_QUEUE_MAX_TOTAL", ("admission", "queue_max_total"), int, "Waiting calls in all."),
    EnvSetting("MLX_QUEUE_WAIT_TIMEOUT_SEC", ("admission", "queue_wait_timeout_sec"), float, "Default wait budget."),
    EnvSetting("MLX_QUEUE_RETRY_AFTER_SEC", ("admission", "retry_after_sec"), float, "Untimed service guess."),
    EnvSetting("MLX_QUEUE_RETRY_JITTER_SEC", ("admission", "retry_jitter_sec"), float, "Advised retry jitter."),
    EnvSetting("MLX_QUEUE_PRIORITY_MIN", ("admission", "priority_min"), int, "Lowest priority."),
    EnvSetting("MLX_QUEUE_PRIORITY_MAX", ("admission", "priority_max"), int, "Highest priority."),
    EnvSetting("MLX_QUEUE_DEFAULT_PRIORITY", ("admission", "default_priority"), int, "Priority when none given."),
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


__all__ = [
    "ENV_SETTINGS",
    "AdmissionConfig",
    "BackendConfig",
    "Config",
    "ConfigError",
    "ServerConfig",
    "check_bind",
    "load",
]
