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

from local_lattice.security.keys import parse_keys_file


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file, key or variable."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


KEY_NAME_PATTERN = r"^[A-Za-z0-9_.\-]{1,64}$"


class NamedKey(_Section):
    """An API key with the name that stands for it in logs, metrics and limits."""

    name: str = Field(..., pattern=KEY_NAME_PATTERN, description="Shown in logs and metrics; never the key.")
    key: SecretStr = Field(..., min_length=1, description='The secret, e.g. "${env:TEAM_KEY}".')


class ServerConfig(_Section):
    """HTTP server and the front-door protections."""

    host: str = Field("127.0.0.1", description="Bind address (env HOST).")
    port: int = Field(5001, ge=0, le=65535, description="TCP port (env PORT).")
    api_keys: list[SecretStr | NamedKey] = Field(
        default_factory=list,
        description="Accepted API keys: plain strings (named key-1, key-2 … by position) or {name, key} tables; "
        "env MIDDLE_LAYER_API_KEY adds one. Empty (and no keys_file) = no auth (loopback only).",
    )
    keys_file: Path | None = Field(
        None, description="File of `name:key` lines, one key each, # comments (env LATTICE_KEYS_FILE)."
    )
    allow_public_no_auth: bool = Field(
        False, description="Allow a non-loopback bind without a key (env MIDDLE_LAYER_ALLOW_PUBLIC_NO_AUTH)."
    )
    max_request_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Largest request body (env MIDDLE_LAYER_MAX_REQUEST_BYTES)."
    )
    cors_origins: list[str] = Field(default_factory=list, description="Allowed CORS origins (env CORS_ORIGINS).")
    cors_allow_credentials: bool = Field(
        False, description="Let browsers send credentials cross-origin; refused with the origin *."
    )
    log_timing: bool = Field(True, description="Log one timing line per request (env LATTICE_LOG_TIMING).")

    @model_validator(mode="after")
    def _cors(self) -> ServerConfig:
        if "*" in self.cors_origins and self.cors_allow_credentials:
            raise ValueError("cors_origins '*' cannot be combined with cors_allow_credentials: name the origins")
        return self

    def named_keys(self) -> list[tuple[str, str]]:
        """Every accepted key as ``(name, secret)``; plain strings are named by position."""
        out: list[tuple[str, str]] = []
        for index, entry in enumerate(self.api_keys, start=1):
            if isinstance(entry, NamedKey):
                out.append((entry.name, entry.key.get_secret_value()))
            elif entry.get_secret_value():
                out.append((f"key-{index}", entry.get_secret_value()))
        return out

    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


class RateLimits(_Section):
    """Budgets for one key or one client address; 0 means unlimited."""

    requests_per_minute: float = Field(0, ge=0, description="Requests per minute (token bucket, burst = one minute).")
    tokens_per_minute: float = Field(
        0, ge=0, description="Prompt + completion tokens per minute; estimated up front, corrected by real usage."
    )
    concurrent: int = Field(0, ge=0, description="Requests in flight at once.")


class LimitsConfig(_Section):
    """Rate limits and request-size limits (429 / 400 naming the limit)."""

    per_key: RateLimits = Field(default_factory=RateLimits)  # type: ignore[arg-type]
    per_ip: RateLimits = Field(default_factory=RateLimits)  # type: ignore[arg-type]
    keys: dict[str, RateLimits] = Field(default_factory=dict, description="Per-key overrides of per_key, by name.")
    max_messages: int = Field(1024, ge=1, description="Messages in one chat request.")
    max_content_chars: int = Field(
        4_000_000, ge=1, description="Characters of prompt/message/input text in one request."
    )
    max_tokens_ceiling: int = Field(16384, ge=1, description="Largest max_tokens accepted (env MAX_TOKENS_CEILING).")
    max_n: int = Field(16, ge=1, description="Largest n (choices per request).")
    max_json_depth: int = Field(64, ge=2, description="Deepest nesting of JSON objects/arrays in a body.")
    estimated_completion_tokens: int = Field(
        256, ge=0, description="Completion tokens assumed up front when a request sets no max_tokens."
    )
    max_tracked_clients: int = Field(10000, ge=16, description="Client addresses whose buckets are remembered.")


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

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://", value):
            raise ValueError("url must start with http:// or https://")
        return value.rstrip("/")


class Config(_Section):
    """The gateway's configuration (``lattice.example.toml`` documents every key)."""

    server: ServerConfig = Field(default_factory=ServerConfig)  # type: ignore[arg-type]
    limits: LimitsConfig = Field(default_factory=LimitsConfig)  # type: ignore[arg-type]
    backends: list[BackendConfig] = Field(default_factory=list)
    roles: dict[str, list[str]] = Field(default_factory=dict, description="role name -> ordered model specs.")
    profiles: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Model profiles.")

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
    EnvSetting("LATTICE_KEYS_FILE", ("server", "keys_file"), str, "File of name:key lines (more API keys)."),
    EnvSetting("MAX_TOKENS_CEILING", ("limits", "max_tokens_ceiling"), int, "Largest max_tokens accepted."),
    EnvSetting("CORS_ORIGINS", ("server", "cors_origins"), _csv, "Comma-separated allowed origins."),
    EnvSetting("LATTICE_LOG_TIMING", ("server", "log_timing"), _bool, "0 turns the per-request timing log off."),
    EnvSetting(
        "MODEL_LIST_TTL",
        ("backends", "*", "model_list_ttl"),
        float,
        "Seconds a backend's model list is reused.",
    ),
    EnvSetting("GENERATION_TIMEOUT", ("backends", "*", "timeout"), float, "Seconds for one upstream call."),
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
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, source)) from None
    if config.server.keys_file is not None:
        _add_keys_file(config.server, config.server.keys_file)
    names = [name for name, _ in config.server.named_keys()]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigError(f"{source}: API key name(s) used twice: {', '.join(twice)}")
    return config


def _add_keys_file(server: ServerConfig, path: Path) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"keys file {path}: {exc.strerror or exc}") from None
    try:
        pairs = parse_keys_file(text)
    except ValueError as exc:
        raise ConfigError(f"keys file {path}: {exc}") from None
    for name, key in pairs:
        server.api_keys.append(NamedKey(name=name, key=SecretStr(key)))


def check_bind(server: ServerConfig) -> None:
    """Refuse a public bind without a key (the caller exits 2 with this message)."""
    if server.named_keys() or server.allow_public_no_auth or server.is_loopback():
        return
    raise ConfigError(
        f"refusing to listen on {server.host} without an API key: set MIDDLE_LAYER_API_KEY "
        "(or server.api_keys), bind 127.0.0.1, or set MIDDLE_LAYER_ALLOW_PUBLIC_NO_AUTH=1 behind a proxy "
        "that authenticates"
    )


__all__ = [
    "ENV_SETTINGS",
    "BackendConfig",
    "Config",
    "ConfigError",
    "LimitsConfig",
    "NamedKey",
    "RateLimits",
    "ServerConfig",
    "check_bind",
    "load",
]


def json_schema() -> dict[str, Any]:
    """The JSON schema of the config file (committed as ``docs/config-schema.json``)."""
    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Local Lattice configuration"
    return schema
