"""The environment's part of the configuration: every variable the original's users set, where it
lands in the config tree (``ENV_SETTINGS``), and ``${env:NAME}`` interpolation of secrets.

Reads only the mapping it is given; raises ``EnvError`` (``config.load`` names it a ConfigError).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from local_lattice.config_legacy import with_renamed


class EnvError(ValueError):
    """An environment variable, or a ``${env:NAME}`` the file needs, is unusable."""


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected 1/0/true/false, got {raw!r}")


def _csv(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _lower(raw: str) -> str:
    return raw.strip().lower()


def _fanout_seconds(raw: str) -> float:
    """The original's 0 ("derive it from the per-call limit") is the most it derived: an hour."""
    value = float(raw)
    return value if value > 0 else 3600.0


def _display_name(raw: str) -> str:
    return raw.strip() or "mlx"  # empty means the default, as it did


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
    EnvSetting("LATTICE_MAX_HEAD_BYTES", ("server", "max_head_bytes"), int, "Largest request head in bytes."),
    EnvSetting("LATTICE_HEAD_TIMEOUT", ("server", "head_timeout"), float, "Seconds to send a request head."),
    EnvSetting("LATTICE_MAX_CONNECTIONS", ("server", "max_connections"), int, "Client connections open at once."),
    EnvSetting("LATTICE_STATE_URL", ("state", "url"), str, "Shared store for limits across replicas (redis://…)."),
    EnvSetting("LATTICE_KEYS_FILE", ("server", "keys_file"), str, "File of name:key lines (more API keys)."),
    EnvSetting("CORS_ORIGINS", ("server", "cors_origins"), _csv, "Comma-separated allowed origins."),
    EnvSetting("LATTICE_LOG_TIMING", ("server", "log_timing"), _bool, "0 turns the per-request timing log off."),
    EnvSetting(
        "LATTICE_DRAIN_SECONDS",
        ("server", "drain_seconds"),
        float,
        "Seconds running requests may take to finish when the server is told to stop.",
    ),
    EnvSetting(
        "MODEL_LIST_TTL",
        ("backends", "*", "model_list_ttl"),
        float,
        "Seconds a backend's model list is reused.",
    ),
    EnvSetting("GENERATION_TIMEOUT", ("backends", "*", "timeout"), float, "Seconds for one upstream call."),
    EnvSetting(
        "LATTICE_UPSTREAM_MAX_ANSWER_BYTES",
        ("backends", "*", "max_answer_bytes"),
        int,
        "Largest upstream answer body, as received.",
    ),
    EnvSetting(
        "LATTICE_UPSTREAM_MAX_DECODED_BYTES",
        ("backends", "*", "max_decoded_bytes"),
        int,
        "Largest upstream answer body once decompressed.",
    ),
    EnvSetting(
        "LATTICE_DISCOVER_SERVERS",
        ("routing", "discover_servers"),
        _csv,
        "Local servers (kind=url, comma-separated) probed when no backend is configured; empty: none.",
    ),
    EnvSetting("DEFAULT_MODEL", ("routing", "default_model"), str.strip, "Model auto-pick tries first."),
    EnvSetting(
        "MLX_FORCE_DEFAULT_MODEL", ("routing", "force_default_model"), _bool, "1 sends every request to the default."
    ),
    EnvSetting("ON_MODEL_MISS", ("routing", "on_model_miss"), _lower, "fallback | error when nothing matches."),
    EnvSetting(
        "EXTRA_PLACEHOLDER_MODELS", ("routing", "extra_placeholder_models"), _csv, "Extra 'you pick' model ids."
    ),
    EnvSetting("PREFER_LOADED_MODELS", ("routing", "prefer_loaded"), _prefer_loaded, "strict | 1 | 0."),
    EnvSetting(
        "MLX_ROUTE_LONG_PROMPT_CHARS", ("routing", "long_prompt_chars"), int, "Prompt chars that need a long context."
    ),
    EnvSetting(
        "ENABLE_LITELLM_PREFIX_ROUTING",
        ("routing", "litellm_prefix"),
        _bool,
        "0 stops reading litellm/<provider>/<model> names.",
    ),
    EnvSetting("MODEL_ROLES_FILE", ("routing", "roles_file"), str, "Role registry JSON file."),
    EnvSetting("MODEL_ROLES_JSON", ("routing", "roles_json"), str, "Role registry as inline JSON."),
    EnvSetting("MODEL_PROFILES_FILE", ("routing", "profiles_file"), str, "Model profiles JSON file."),
    EnvSetting("DEFAULT_MAX_TOKENS", ("routing", "default_max_tokens"), int, "max_tokens when the client sets none."),
    EnvSetting("MAX_TOKENS_CEILING", ("routing", "max_tokens_ceiling"), int, "Largest max_tokens passed on."),
    EnvSetting("LATTICE_LOG_FORMAT", ("observability", "log_format"), str, "text or json log lines."),
    EnvSetting("LATTICE_LEDGER_PATH", ("observability", "ledger_path"), str, "Request ledger file, :memory: or off."),
    EnvSetting("LATTICE_OTEL", ("observability", "otel_enabled"), _bool, "1 emits OpenTelemetry spans."),
    EnvSetting("MLX_DASHBOARD_ENABLED", ("dashboard", "enabled"), _bool, "0 turns /dashboard/ off."),
    EnvSetting("MLX_DASHBOARD_MAX_EVENTS", ("dashboard", "max_events"), int, "Recent requests the dashboard keeps."),
    EnvSetting("MLX_DASHBOARD_CAPTURE_PROMPTS", ("dashboard", "capture_prompts"), _bool, "1 keeps a prompt preview."),
    EnvSetting("MLX_DASHBOARD_PREVIEW_CHARS", ("dashboard", "preview_chars"), int, "Prompt preview length."),
    EnvSetting(
        "MLX_DASHBOARD_MAX_PROMPT_CHARS",
        ("dashboard", "preview_chars"),
        int,
        "Length of the prompt kept with capture on (wins over MLX_DASHBOARD_PREVIEW_CHARS).",
    ),
    EnvSetting("MLX_DASHBOARD_MAX_ERROR_CHARS", ("dashboard", "max_error_chars"), int, "Longest error text shown."),
    EnvSetting("ANTHROPIC_API_KEY", ("anthropic", "api_key"), str, "Key of the anthropic backend (adds one if none)."),
    EnvSetting("ANTHROPIC_BASE_URL", ("anthropic", "url"), str, "Base URL of the anthropic backend."),
    EnvSetting("ANTHROPIC_MODEL", ("anthropic", "models"), _csv, "Cloud model(s); the first is the escalation target."),
    EnvSetting("ANTHROPIC_VERSION", ("anthropic", "anthropic_version"), str, "anthropic-version header."),
    EnvSetting(
        "LITELLM_TIMEOUT_SECONDS", ("anthropic", "timeout"), float, "Seconds for one call of the anthropic backend."
    ),
    EnvSetting("ANTHROPIC_AUTO_ROUTE", ("escalation", "auto_route"), _bool, "1 escalates big non-code chats."),
    EnvSetting("LATTICE_CLOUD_SPILL", ("escalation", "spill_on_reject"), _bool, "1 spills to the cloud when full."),
    EnvSetting("LATTICE_CLOUD_FALLBACK", ("escalation", "fallback_on_failure"), _bool, "1 falls back to the cloud."),
    EnvSetting("BIG_TASK_MIN_WORDS", ("escalation", "big_task_min_words"), int, "Words that make a task big."),
    EnvSetting("BIG_TASK_MIN_CHARS", ("escalation", "big_task_min_chars"), int, "Characters that make a task big."),
    EnvSetting("BIG_TASK_MIN_BULLETS", ("escalation", "big_task_min_bullets"), int, "Bullets that make a task big."),
    EnvSetting(
        "BIG_TASK_MIN_STEP_MARKERS",
        ("escalation", "big_task_min_step_markers"),
        int,
        "Step/architecture markers that make a task big.",
    ),
    EnvSetting("SWARM_PER_CALL_TIMEOUT", ("swarm", "per_call_timeout"), float, "Seconds one swarm call may take."),
    EnvSetting("SWARM_JUDGE_PASSES", ("swarm", "judge_passes"), int, "Judge passes over swapped orders."),
    EnvSetting(
        "SWARM_FANOUT_TIMEOUT",
        ("swarm", "fanout_timeout"),
        _fanout_seconds,
        "Overall seconds for one swarm request (0: 3600).",
    ),
    EnvSetting("SWARM_MAX_PARALLEL", ("swarm", "max_parallel"), int, "Swarm agent calls run at once per request."),
    EnvSetting("SWARM_CHAT_ENABLED", ("swarm", "chat_enabled"), _bool, "0 turns the swarm chat meta-models off."),
    EnvSetting("SWARM_CHAT_DEFAULT_MODELS", ("swarm", "chat_default_models"), _csv, "Default swarm.models on chat."),
    EnvSetting("SWARM_CHAT_DEFAULT_STRATEGY", ("swarm", "chat_default_strategy"), _lower, "Default swarm strategy."),
    EnvSetting("SWARM_CHAT_DEFAULT_JUDGE", ("swarm", "chat_default_judge"), str, "Default swarm judge on chat."),
    EnvSetting("SWARM_CHAT_AUTO_MAX", ("swarm", "chat_auto_max"), int, "Cap on models a sentinel adds on chat."),
    EnvSetting(
        "SWARM_STREAM_CHUNK_CHARS", ("swarm", "stream_chunk_chars"), int, "Slice size of a streamed finished answer."
    ),
    EnvSetting("MLX_PER_MODEL_INFLIGHT_CAP", ("admission", "per_model_inflight_cap"), int, "Calls per model at once."),
    EnvSetting(
        "LM_STUDIO_PER_MODEL_INFLIGHT_CAP",
        ("admission", "lmstudio_per_model_inflight_cap"),
        int,
        "Calls per model at once on LM Studio backends.",
    ),
    EnvSetting("MAX_PARALLEL_MODEL_CALLS", ("admission", "max_parallel_model_calls"), int, "Global cap on calls."),
    EnvSetting("MLX_QUEUE_MAX_PER_MODEL", ("admission", "queue_max_per_model"), int, "Waiting calls per model."),
    EnvSetting("MLX_QUEUE_MAX_TOTAL", ("admission", "queue_max_total"), int, "Waiting calls in all."),
    EnvSetting("MLX_QUEUE_WAIT_TIMEOUT_SEC", ("admission", "queue_wait_timeout_sec"), float, "Default wait budget."),
    EnvSetting("MLX_QUEUE_RETRY_AFTER_SEC", ("admission", "retry_after_sec"), float, "Untimed service guess."),
    EnvSetting("MLX_QUEUE_RETRY_JITTER_SEC", ("admission", "retry_jitter_sec"), float, "Advised retry jitter."),
    EnvSetting("MLX_QUEUE_PRIORITY_MIN", ("admission", "priority_min"), int, "Lowest priority."),
    EnvSetting("MLX_QUEUE_PRIORITY_MAX", ("admission", "priority_max"), int, "Highest priority."),
    EnvSetting("MLX_QUEUE_DEFAULT_PRIORITY", ("admission", "default_priority"), int, "Priority when none given."),
    EnvSetting("MLX_MODEL_ROOT", ("engines", "model_root"), str, "Extra folder scanned for local models."),
    EnvSetting("MAX_CONCURRENT_MODELS", ("engines", "max_concurrent_models"), int, "Models resident at once."),
    EnvSetting("PRELOAD_MODELS", ("engines", "preload"), _csv, "Comma-separated model ids loaded at start."),
    EnvSetting("MLX_FORCE_GC_ON_EVICT", ("engines", "force_gc_on_evict"), _bool, "1 runs gc after an eviction."),
    EnvSetting("MLX_CONTEXT_OVER_BUDGET", ("engines", "context_over_budget"), _lower, "error | trim."),
    EnvSetting("MLX_CONTEXT_TRIM_BUFFER", ("engines", "context_trim_buffer"), int, "Slack beside max_tokens in trims."),
    EnvSetting("MLX_GRAB_MODEL", ("engines", "grab_model"), str, "One model (file or folder) serves everything."),
    EnvSetting("MLX_GRAB_DISPLAY_NAME", ("engines", "grab_display_name"), _display_name, "The grabbed model's id."),
    EnvSetting("MLX_GRAB_CACHE", ("engines", "grab_cache"), str, "Folder hf:org/name grabs download to."),
)


def _apply_anthropic(raw: dict[str, Any], settings: dict[str, Any]) -> None:
    """ANTHROPIC_* fill the anthropic backends' unset keys; a key alone adds a backend named anthropic."""
    backends = raw.setdefault("backends", [])
    targets = [b for b in backends if isinstance(b, dict) and b.get("type") == "anthropic"]
    if not targets and settings.get("api_key"):
        targets = [{"name": "anthropic", "type": "anthropic"}]
        backends.append(targets[0])
    for backend in targets:
        for key, value in settings.items():
            backend.setdefault(key, value)


def interpolate(value: Any, env: Mapping[str, str], where: str) -> Any:
    if isinstance(value, str):

        def repl(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise EnvError(f"{where}: environment variable {name} is not set")
            return env[name]

        return re.sub(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}", repl, value)
    if isinstance(value, list):
        return [interpolate(item, env, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {key: interpolate(item, env, f"{where}.{key}") for key, item in value.items()}
    return value


def apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    env = with_renamed(env)  # the original's older names count as their current ones
    lm_studio = env.get("LM_STUDIO_URL")
    if lm_studio and not raw.get("backends"):
        # Added first, so the backends.* variables (MODEL_LIST_TTL, GENERATION_TIMEOUT) reach it too.
        url = lm_studio.rstrip("/")
        name = env.get("LATTICE_LMSTUDIO_NAME", "").strip() or "lmstudio"
        raw["backends"] = [{"name": name, "type": "lmstudio", "url": url if url.endswith("/v1") else url + "/v1"}]
    anthropic: dict[str, Any] = {}
    for setting in ENV_SETTINGS:
        text = env.get(setting.name)
        if text is None:
            continue
        try:
            value = setting.parse(text)
        except ValueError as exc:
            raise EnvError(f"environment variable {setting.name}: {exc}") from None
        head, *rest = setting.path
        if head == "anthropic":
            anthropic[rest[0]] = value
            continue
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
    if anthropic:
        _apply_anthropic(raw, anthropic)
