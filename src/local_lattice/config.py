"""The whole configuration as one pydantic tree: ``load(path, env) -> Config``.

Sources, later wins: built-in defaults → the TOML file → environment variables (the original's
names keep their meaning, see ``ENV_SETTINGS``). Secrets come only from the environment, via
``"${env:NAME}"`` in the file. This module reads files and the given env mapping; it starts nothing.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from local_lattice.config_env import EnvError, apply_env, interpolate
from local_lattice.config_state import StateConfig
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
    max_head_bytes: int = Field(
        64 * 1024,
        ge=4096,
        description="Largest request head (request line and headers) in bytes; a larger one gets 431 as soon "
        "as its bytes arrive, before more is buffered (env LATTICE_MAX_HEAD_BYTES).",
    )
    head_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a connection has to send a complete request head (from connecting, or from the "
        "first byte of a request on a kept-alive connection); then it is closed (env LATTICE_HEAD_TIMEOUT).",
    )
    max_connections: int = Field(
        2048,
        ge=1,
        description="Client connections open at once. At the cap the oldest connection with no request in "
        "flight is closed to make room; when all are busy a new one gets 503 too_many_connections "
        "(env LATTICE_MAX_CONNECTIONS).",
    )
    cors_origins: list[str] = Field(default_factory=list, description="Allowed CORS origins (env CORS_ORIGINS).")
    cors_allow_credentials: bool = Field(
        False, description="Let browsers send credentials cross-origin; refused with the origin *."
    )
    log_timing: bool = Field(True, description="Log one timing line per request (env LATTICE_LOG_TIMING).")
    drain_seconds: float = Field(
        5.0,
        ge=0,
        le=3600,
        description="On SIGTERM/SIGINT, seconds requests still running may take to finish; then streams end with "
        "an error event server_shutting_down and [DONE], other requests with a 503 (env LATTICE_DRAIN_SECONDS, "
        "lattice serve --drain-seconds).",
    )

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

    per_key: RateLimits = Field(default_factory=RateLimits)
    per_ip: RateLimits = Field(default_factory=RateLimits)
    keys: dict[str, RateLimits] = Field(default_factory=dict, description="Per-key overrides of per_key, by name.")
    max_messages: int = Field(1024, ge=1, description="Messages in one chat request.")
    max_content_chars: int = Field(
        4_000_000, ge=1, description="Characters of prompt/message/input text in one request."
    )
    max_tokens_limit: int = Field(
        1_048_576,
        ge=1,
        description="Largest max_tokens accepted at all (larger is a 400); below it, routing clamps to the "
        "model's ceiling (MAX_TOKENS_CEILING).",
    )
    max_n: int = Field(16, ge=1, description="Largest n (choices per request).")
    max_json_depth: int = Field(64, ge=2, description="Deepest nesting of JSON objects/arrays in a body.")
    estimated_completion_tokens: int = Field(
        256, ge=0, description="Completion tokens assumed up front when a request sets no max_tokens."
    )
    max_tracked_clients: int = Field(10000, ge=16, description="Client addresses whose buckets are remembered.")


BackendType = Literal["openai", "lmstudio", "ollama", "anthropic", "llamacpp", "mlx"]
IN_PROCESS_TYPES = ("llamacpp", "mlx")


class BackendConfig(_Section):
    """One upstream (any OpenAI-compatible server, local or a cloud, LM Studio, Ollama, Anthropic) or
    one in-process engine (``llamacpp`` for GGUF files, ``mlx`` for MLX model folders)."""

    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$", description="Unique name.")
    type: BackendType = Field("openai", description="openai | lmstudio | ollama | anthropic | llamacpp | mlx")
    url: str = Field(
        "",
        description="Base URL including /v1 for OpenAI-compatible servers; optional for anthropic "
        "(env ANTHROPIC_BASE_URL, default the public API); none for llamacpp and mlx.",
    )
    api_key: SecretStr | None = Field(None, description='The backend\'s own key, e.g. "${env:UPSTREAM_KEY}".')
    timeout: float = Field(300.0, gt=0, description="Seconds for one upstream call (env GENERATION_TIMEOUT).")
    connect_timeout: float = Field(5.0, gt=0, description="Seconds to open a connection.")
    model_list_ttl: float = Field(30.0, ge=0, description="Seconds a model list is reused (env MODEL_LIST_TTL).")
    max_connections: int = Field(256, ge=1, description="Pooled connections to this upstream.")
    proxy: str | None = Field(
        None,
        description="HTTP proxy for this backend's calls, whatever the origin (e.g. http://proxy:3128); unset: "
        "HTTPS_PROXY / HTTP_PROXY / ALL_PROXY minus NO_PROXY, for origins off this machine.",
    )
    max_answer_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="Largest answer body this upstream may send, as received; larger is a 502 "
        "upstream_answer_too_large (env LATTICE_UPSTREAM_MAX_ANSWER_BYTES).",
    )
    max_decoded_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="Largest answer body once gzip/deflate is undone (a compression bomb is a 502 "
        "upstream_answer_too_large, never inflated whole) (env LATTICE_UPSTREAM_MAX_DECODED_BYTES).",
    )
    keep_alive: str | None = Field(None, description="Ollama keep_alive passed on when the client sets none.")
    models: list[str] = Field(
        default_factory=list,
        description="Model ids this backend serves, listed without asking it (anthropic; env ANTHROPIC_MODEL).",
    )
    anthropic_version: str | None = Field(None, description="anthropic-version header (env ANTHROPIC_VERSION).")
    max_retries: int = Field(2, ge=0, le=10, description="Retries on 429/529/5xx, honouring Retry-After (anthropic).")
    input_usd_per_mtok: float | None = Field(None, ge=0, description="Price of a million prompt tokens.")
    output_usd_per_mtok: float | None = Field(None, ge=0, description="Price of a million completion tokens.")
    daily_budget_usd: float | None = Field(
        None, ge=0, description="Spend per UTC day; when spent, escalation stops and direct calls get 429."
    )
    max_concurrency: int | None = Field(
        None, ge=0, description="Calls run at once on this backend (0 = no cap; unset = admission default)."
    )
    model_files: dict[str, str] = Field(
        default_factory=dict, description="In-process engines: model id -> GGUF file or MLX folder served under it."
    )
    model_paths: list[str] = Field(
        default_factory=list, description="In-process engines: extra files or folders to discover models in."
    )
    discover: bool = Field(
        True, description="In-process engines: scan MLX_MODEL_ROOT, LM Studio, mlx-models and Hugging Face caches."
    )
    n_ctx: int = Field(4096, ge=64, description="llamacpp: context length in tokens (capped by the model's own).")
    n_threads: int | None = Field(None, ge=1, description="llamacpp: CPU threads (default: all cores but one).")
    prompt_cache: Literal["auto", "cache_prompt", "prompt_cache_key", "off"] = Field(
        "auto",
        description="How a session's stickiness is passed on when several backends serve its model: "
        "cache_prompt (llama.cpp's server), prompt_cache_key (OpenAI), off; auto picks by the server.",
    )

    @field_validator("proxy")
    @classmethod
    def _proxy(cls, value: str | None) -> str | None:
        if value and not re.match(r"^https?://[^/\s]+/?$", value):
            raise ValueError("proxy must be an http:// or https:// URL of a proxy (no path)")
        return value or None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not re.match(r"^https?://", value):
            raise ValueError("url must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _url_required(self) -> BackendConfig:
        if not self.url and self.type not in ("anthropic", *IN_PROCESS_TYPES):
            raise ValueError(f"backend {self.name!r}: url is required for type {self.type!r}")
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
        8,
        ge=0,
        description="Tokens of slack kept free beside the answer's max_tokens when trimming "
        "(env MLX_CONTEXT_TRIM_BUFFER).",
    )
    grab_model: str | None = Field(
        None,
        description="Grab mode: this one model (a GGUF file, an MLX folder, or hf:org/name from the Hugging Face "
        "hub) serves every request (env MLX_GRAB_MODEL).",
    )
    grab_display_name: str = Field(
        "mlx", min_length=1, description="The grabbed model's id on /v1/models and in answers (MLX_GRAB_DISPLAY_NAME)."
    )
    grab_cache: str = Field(
        "~/.cache/mlx-middle-layer-grab",
        description="Where hf:org/name grabs are downloaded, one folder org__name each (env MLX_GRAB_CACHE).",
    )


class EscalationConfig(_Section):
    """When a chat leaves the machine for a cloud backend. Every path is off until configured."""

    auto_route: bool = Field(False, description="Send big, non-code chats to the cloud (env ANTHROPIC_AUTO_ROUTE).")
    spill_on_reject: bool = Field(
        False, description="Send a chat to the cloud when local admission would reject it (env LATTICE_CLOUD_SPILL)."
    )
    fallback_on_failure: bool = Field(
        False, description="Retry on the cloud when every local candidate failed (env LATTICE_CLOUD_FALLBACK)."
    )
    backend: str | None = Field(None, description="Cloud backend name; default the first of type anthropic.")
    model: str | None = Field(
        None, description="Cloud model; default that backend's first model (env ANTHROPIC_MODEL)."
    )
    big_task_min_words: int = Field(80, ge=1, description="Words that make a task big (env BIG_TASK_MIN_WORDS).")
    big_task_min_chars: int = Field(500, ge=1, description="Characters that make a task big (env BIG_TASK_MIN_CHARS).")
    big_task_min_bullets: int = Field(
        4, ge=1, description="Bullet lines that make a task big (env BIG_TASK_MIN_BULLETS)."
    )
    big_task_min_step_markers: int = Field(
        3, ge=1, description="Step/architecture markers that make a task big (env BIG_TASK_MIN_STEP_MARKERS)."
    )


PreferLoaded = Literal["strict", "1", "0"]


class RoutingConfig(_Section):
    """How a request's ``model`` becomes a concrete model (see docs/capabilities.md)."""

    default_model: str = Field("", description="Id or substring auto-pick tries first (env DEFAULT_MODEL).")
    force_default_model: bool = Field(
        False, description="Route every request to the default model (env MLX_FORCE_DEFAULT_MODEL)."
    )
    on_model_miss: Literal["fallback", "error"] = Field(
        "fallback",
        description="A spec that matches nothing: auto-pick an available model and say so in X-Model-Resolution "
        "(fallback), or 404 listing what is available (error) (env ON_MODEL_MISS).",
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
    litellm_prefix: bool = Field(
        True,
        description="Read the original's litellm/<provider>/<model> names: Claude models as "
        "anthropic:<model>, others by their own name (env ENABLE_LITELLM_PREFIX_ROUTING).",
    )
    roles_file: str | None = Field(None, description="Role registry in JSON (env MODEL_ROLES_FILE).")
    roles_json: str | None = Field(None, description="Role registry as inline JSON (env MODEL_ROLES_JSON).")
    profiles_file: str | None = Field(None, description="Model profiles in JSON (env MODEL_PROFILES_FILE).")
    default_max_tokens: int = Field(1024, ge=1, description="max_tokens when unset (env DEFAULT_MAX_TOKENS).")
    max_tokens_ceiling: int = Field(16384, ge=1, description="Largest max_tokens passed on (env MAX_TOKENS_CEILING).")
    discover_servers: list[str] = Field(
        default_factory=lambda: [
            "lmstudio=http://127.0.0.1:1234/v1",
            "ollama=http://127.0.0.1:11434",
            "openai=http://127.0.0.1:8080/v1",
            "openai=http://127.0.0.1:8000/v1",
        ],
        description="With no backends configured, these local servers (kind=url) are probed at start and "
        "the ones that answer are used (env LATTICE_DISCOVER_SERVERS; empty turns it off).",
    )
    fallback_attempts: int = Field(3, ge=1, le=16, description="Candidates tried when one fails before its first byte.")
    failure_threshold: int = Field(3, ge=1, description="Failures in a row that put a backend on cool-down.")
    cooldown_seconds: float = Field(30.0, ge=0, description="Seconds a failing backend is skipped.")
    balance: Literal["affinity", "least_loaded", "round_robin"] = Field(
        "affinity",
        description="How one of several backends serving the same id is picked: affinity keeps a session "
        "(X-Session-Id, prompt_cache_key, user, else the conversation's start) on one backend and spreads the "
        "rest least-loaded; least_loaded: power of two choices by outstanding requests and latency; "
        "round_robin: in turn.",
    )
    affinity_load_factor: float = Field(
        1.25,
        ge=1.0,
        description="A session leaves its backend while that one carries more than this times the mean "
        "outstanding requests (bounded-load consistent hashing).",
    )
    slow_start_seconds: float = Field(
        30.0, ge=0, description="A backend back from a cool-down takes a growing share of requests over this time."
    )
    health_check_seconds: float = Field(
        10.0,
        ge=0,
        description="Active health checks of backends that share an id with another, every this many seconds "
        "(0 = off; passive ejection stays on).",
    )
    hedge_after_ms: float = Field(
        0.0,
        ge=0,
        description="Start the next candidate when the chosen one has sent no byte in this time; the first "
        "byte wins (0 = off; per request X-Lattice-Hedge-Ms).",
    )
    hedge_billed: bool = Field(False, description="Allow hedging to and from backends that are billed.")

    @field_validator("discover_servers")
    @classmethod
    def _servers(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not re.match(r"^(lmstudio|ollama|openai)=https?://\S+$", entry.strip()):
                raise ValueError(f"expected lmstudio=URL, ollama=URL or openai=URL, got {entry!r}")
        return value


class ObservabilityConfig(_Section):
    """Metrics, logs, traces and the request ledger."""

    metrics_public: bool = Field(False, description="Serve GET /metrics without the API key.")
    log_format: Literal["text", "json"] = Field("text", description="Log line format (env LATTICE_LOG_FORMAT).")
    ledger_path: str = Field(
        "",
        description='SQLite request ledger: "" = ledger.sqlite3 in the user data dir, ":memory:", "off", or a path '
        "(env LATTICE_LEDGER_PATH).",
    )
    otel_enabled: bool = Field(False, description="Emit OpenTelemetry spans (needs the otel extra; env LATTICE_OTEL).")


class DashboardConfig(_Section):
    """The live page at /dashboard/ and the ring of recent requests it shows."""

    enabled: bool = Field(True, description="Serve /dashboard/ (env MLX_DASHBOARD_ENABLED).")
    max_events: int = Field(200, ge=1, le=100_000, description="Recent requests kept (env MLX_DASHBOARD_MAX_EVENTS).")
    capture_prompts: bool = Field(
        False, description="Keep a preview of the last user message (env MLX_DASHBOARD_CAPTURE_PROMPTS)."
    )
    preview_chars: int = Field(
        200,
        ge=0,
        description="Prompt preview length (env MLX_DASHBOARD_PREVIEW_CHARS, or MLX_DASHBOARD_MAX_PROMPT_CHARS).",
    )
    max_error_chars: int = Field(
        500, ge=16, description="Longest error text the dashboard shows (env MLX_DASHBOARD_MAX_ERROR_CHARS)."
    )


class SwarmConfig(_Section):
    """Swarms: several models on one request (fanout, vote, pipeline, debate, chat meta-models)."""

    per_call_timeout: float = Field(
        180.0, gt=0, description="Seconds one agent/judge call may take (env SWARM_PER_CALL_TIMEOUT)."
    )
    fanout_timeout: float = Field(
        600.0,
        gt=0,
        description="Overall deadline in seconds for one swarm request (env SWARM_FANOUT_TIMEOUT; 0 there, the "
        "original's 'derive it from the per-call limit', is read as 3600, the most it derived).",
    )
    max_parallel: int = Field(
        4, ge=1, description="Agent calls run at once per swarm request (env SWARM_MAX_PARALLEL)."
    )
    chat_enabled: bool = Field(True, description="Serve the swarm chat meta-models (env SWARM_CHAT_ENABLED).")
    chat_default_models: list[str] = Field(
        default_factory=lambda: ["auto"],
        description="swarm.models when a chat request omits it (env SWARM_CHAT_DEFAULT_MODELS).",
    )
    chat_default_strategy: str = Field(
        "best-of-n", description="swarm.strategy when a chat request omits it (env SWARM_CHAT_DEFAULT_STRATEGY)."
    )
    chat_default_judge: str = Field(
        "role:reasoner", description="swarm.judge when a chat request omits it (env SWARM_CHAT_DEFAULT_JUDGE)."
    )
    judge_passes: int = Field(
        2, ge=1, le=8, description="Judge passes over rotated orders; all must agree (env SWARM_JUDGE_PASSES)."
    )
    chat_auto_max: int = Field(
        3, ge=0, description="How many models a sentinel contributes on chat; 0 = no cap (env SWARM_CHAT_AUTO_MAX)."
    )
    stream_chunk_chars: int = Field(
        64, ge=1, description="Slice size when an already-finished answer is streamed (env SWARM_STREAM_CHUNK_CHARS)."
    )


class AdmissionConfig(_Section):
    """Admission control: in-flight caps, the bounded priority queue and its 429 advice."""

    per_model_inflight_cap: int | None = Field(
        None,
        ge=0,
        description="Calls per model at once (env MLX_PER_MODEL_INFLIGHT_CAP; 0 = no cap; "
        "unset = 1 for in-process engines and LM Studio, no cap for other upstream servers).",
    )
    max_parallel_model_calls: int | None = Field(
        None, ge=0, description="Global cap on calls at once across all backends (env MAX_PARALLEL_MODEL_CALLS)."
    )
    backend_max_concurrency: int = Field(
        64, ge=0, description="Default per-backend cap for backends without max_concurrency (0 = no cap)."
    )
    lmstudio_per_model_inflight_cap: int | None = Field(
        None,
        ge=0,
        description="Calls per model at once on LM Studio backends (env LM_STUDIO_PER_MODEL_INFLIGHT_CAP; 0 = no "
        "cap; unset = per_model_inflight_cap when that is set, else 1: LM Studio runs one call per model).",
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

    server: ServerConfig = Field(default_factory=ServerConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    backends: list[BackendConfig] = Field(default_factory=list)
    engines: EngineConfig = Field(default_factory=EngineConfig)
    roles: dict[str, list[str] | str] = Field(
        default_factory=dict, description="role name -> ordered model specs; keys starting with _ are comments."
    )
    profiles: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Model profiles.")
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    observability: ObservabilityConfig = Field(default_factory=ObservabilityConfig)
    dashboard: DashboardConfig = Field(default_factory=DashboardConfig)
    escalation: EscalationConfig = Field(default_factory=EscalationConfig)
    swarm: SwarmConfig = Field(default_factory=SwarmConfig)
    admission: AdmissionConfig = Field(default_factory=AdmissionConfig)
    state: StateConfig = Field(default_factory=StateConfig)  # config_state.py

    @field_validator("backends")
    @classmethod
    def _unique_names(cls, value: list[BackendConfig]) -> list[BackendConfig]:
        seen: set[str] = set()
        for backend in value:
            if backend.name in seen:
                raise ValueError(f"backend name {backend.name!r} is used twice")
            seen.add(backend.name)
        return value


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
    try:
        if path is not None:
            raw = interpolate(raw, env, source)
        apply_env(raw, env)
    except EnvError as exc:
        raise ConfigError(str(exc)) from None
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


def json_schema() -> dict[str, Any]:
    """The JSON schema of the config file (committed as ``docs/config-schema.json``)."""
    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Local Lattice configuration"
    return schema
