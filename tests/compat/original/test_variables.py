"""Every environment variable the original read keeps its meaning: each one is set here and its effect
on the configuration asserted; the ones naming what no longer exists are read under their current
name or reported once at start (a real gateway process shows the report). The list of names is the
original's own (its Python modules and its launcher script), so a variable cannot be forgotten."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from local_lattice.admission.limits import limits_from, priority_policy
from local_lattice.cloud.specs import directory_of, without_litellm
from local_lattice.config import Config, load
from local_lattice.config_legacy import RETIRED, start_notes
from local_lattice.routing.policy import build_policy
from tests.support.launchers import AUTH, launch, mlx_launcher, script

# Every variable the original's code and launcher read.
ORIGINAL_VARIABLES = frozenset(
    {
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTO_ROUTE",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_MODEL",
        "ANTHROPIC_VERSION",
        "BIG_TASK_MIN_BULLETS",
        "BIG_TASK_MIN_CHARS",
        "BIG_TASK_MIN_STEP_MARKERS",
        "BIG_TASK_MIN_WORDS",
        "CORS_ORIGINS",
        "DEFAULT_MAX_TOKENS",
        "DEFAULT_MODEL",
        "ENABLE_LITELLM_PREFIX_ROUTING",
        "EXTRA_PLACEHOLDER_MODELS",
        "GENERATION_TIMEOUT",
        "HOST",
        "LATTICE_LOG_TIMING",
        "LITELLM_TIMEOUT_SECONDS",
        "LM_STUDIO_PER_MODEL_INFLIGHT_CAP",
        "LM_STUDIO_URL",
        "MAX_CONCURRENT_MODELS",
        "MAX_PARALLEL_MODEL_CALLS",
        "MAX_TOKENS_CEILING",
        "MAX_WORKERS",
        "MIDDLE_LAYER_ALLOW_PUBLIC_NO_AUTH",
        "MIDDLE_LAYER_API_KEY",
        "MIDDLE_LAYER_MAX_REQUEST_BYTES",
        "MLX_CONTEXT_OVER_BUDGET",
        "MLX_CONTEXT_TRIM_BUFFER",
        "MLX_DASHBOARD_CAPTURE_PROMPTS",
        "MLX_DASHBOARD_ENABLED",
        "MLX_DASHBOARD_MAX_ERROR_CHARS",
        "MLX_DASHBOARD_MAX_EVENTS",
        "MLX_DASHBOARD_MAX_PROMPT_CHARS",
        "MLX_DASHBOARD_PREVIEW_CHARS",
        "MLX_FORCE_DEFAULT_MODEL",
        "MLX_FORCE_GC_ON_EVICT",
        "MLX_GRAB_CACHE",
        "MLX_GRAB_DISPLAY_NAME",
        "MLX_GRAB_MODEL",
        "MLX_MODEL_ROOT",
        "MLX_PER_MODEL_ADMISSION_CAP",
        "MLX_PER_MODEL_INFLIGHT_CAP",
        "MLX_QUEUE_DEFAULT_PRIORITY",
        "MLX_QUEUE_MAX_PER_MODEL",
        "MLX_QUEUE_MAX_TOTAL",
        "MLX_QUEUE_PRIORITY_MAX",
        "MLX_QUEUE_PRIORITY_MIN",
        "MLX_QUEUE_RETRY_AFTER_SEC",
        "MLX_QUEUE_RETRY_JITTER_SEC",
        "MLX_QUEUE_WAIT_TIMEOUT_SEC",
        "MLX_ROUTE_LONG_PROMPT_CHARS",
        "MLX_SKIP_STARTUP_MODEL_PROMPT",
        "MLX_SKIP_STARTUP_ROOT_PROMPT",
        "MODEL_LIST_TTL",
        "MODEL_PROFILES_FILE",
        "MODEL_ROLES_FILE",
        "MODEL_ROLES_JSON",
        "ON_MODEL_MISS",
        "PORT",
        "PREFER_LOADED_MODELS",
        "PRELOAD_MODELS",
        "SWARM_CHAT_AUTO_MAX",
        "SWARM_CHAT_DEFAULT_JUDGE",
        "SWARM_CHAT_DEFAULT_MODELS",
        "SWARM_CHAT_DEFAULT_STRATEGY",
        "SWARM_CHAT_ENABLED",
        "SWARM_FANOUT_TIMEOUT",
        "SWARM_PER_CALL_TIMEOUT",
        "SWARM_STREAM_CHUNK_CHARS",
        "TARGET_MODEL",
        "USE_LITELLM_FOR_ANTHROPIC",
    }
)

LMS = {"LM_STUDIO_URL": "http://127.0.0.1:1234"}


def lms(config: Config) -> Any:
    return config.backends[0]


def cloud(config: Config) -> Any:
    return next(b for b in config.backends if b.type == "anthropic")


Check = tuple[dict[str, str], Callable[[Config], Any], Any]
# name -> (environment, what to look at, what it must be)
HONOURED: dict[str, Check] = {
    "HOST": ({"HOST": "0.0.0.0", "MIDDLE_LAYER_API_KEY": "k"}, lambda c: c.server.host, "0.0.0.0"),
    "PORT": ({"PORT": "5099"}, lambda c: c.server.port, 5099),
    "MIDDLE_LAYER_API_KEY": ({"MIDDLE_LAYER_API_KEY": "k1"}, lambda c: c.server.named_keys(), [("key-1", "k1")]),
    "MIDDLE_LAYER_ALLOW_PUBLIC_NO_AUTH": (
        {"MIDDLE_LAYER_ALLOW_PUBLIC_NO_AUTH": "1"},
        lambda c: c.server.allow_public_no_auth,
        True,
    ),
    "MIDDLE_LAYER_MAX_REQUEST_BYTES": (
        {"MIDDLE_LAYER_MAX_REQUEST_BYTES": "4096"},
        lambda c: c.server.max_request_bytes,
        4096,
    ),
    "LATTICE_LOG_TIMING": ({"LATTICE_LOG_TIMING": "0"}, lambda c: c.server.log_timing, False),
    "CORS_ORIGINS": (
        {"CORS_ORIGINS": "https://a.app, https://b.app"},
        lambda c: c.server.cors_origins,
        ["https://a.app", "https://b.app"],
    ),
    "LM_STUDIO_URL": (LMS, lambda c: (lms(c).type, lms(c).url), ("lmstudio", "http://127.0.0.1:1234/v1")),
    "MODEL_LIST_TTL": ({**LMS, "MODEL_LIST_TTL": "7"}, lambda c: lms(c).model_list_ttl, 7.0),
    "GENERATION_TIMEOUT": ({**LMS, "GENERATION_TIMEOUT": "45"}, lambda c: lms(c).timeout, 45.0),
    "LM_STUDIO_PER_MODEL_INFLIGHT_CAP": (
        {**LMS, "LM_STUDIO_PER_MODEL_INFLIGHT_CAP": "3"},
        lambda c: limits_from(c).caps("lmstudio").per_model,
        3,
    ),
    "MLX_MODEL_ROOT": ({"MLX_MODEL_ROOT": "/models"}, lambda c: c.engines.model_root, "/models"),
    "MAX_CONCURRENT_MODELS": ({"MAX_CONCURRENT_MODELS": "3"}, lambda c: c.engines.max_concurrent_models, 3),
    "MAX_PARALLEL_MODEL_CALLS": ({"MAX_PARALLEL_MODEL_CALLS": "2"}, lambda c: limits_from(c).global_cap, 2),
    "MLX_PER_MODEL_INFLIGHT_CAP": (
        {"MLX_PER_MODEL_INFLIGHT_CAP": "0"},
        lambda c: c.admission.per_model_inflight_cap,
        0,
    ),
    "MLX_PER_MODEL_ADMISSION_CAP": (
        {"MLX_PER_MODEL_ADMISSION_CAP": "2"},
        lambda c: c.admission.per_model_inflight_cap,
        2,
    ),
    "MLX_QUEUE_MAX_PER_MODEL": ({"MLX_QUEUE_MAX_PER_MODEL": "5"}, lambda c: limits_from(c).queue_max_per_model, 5),
    "MLX_QUEUE_MAX_TOTAL": ({"MLX_QUEUE_MAX_TOTAL": "9"}, lambda c: limits_from(c).queue_max_total, 9),
    "MLX_QUEUE_WAIT_TIMEOUT_SEC": (
        {"MLX_QUEUE_WAIT_TIMEOUT_SEC": "7.5"},
        lambda c: c.admission.queue_wait_timeout_sec,
        7.5,
    ),
    "MLX_QUEUE_RETRY_AFTER_SEC": ({"MLX_QUEUE_RETRY_AFTER_SEC": "4"}, lambda c: limits_from(c).retry_fallback_sec, 4.0),
    "MLX_QUEUE_RETRY_JITTER_SEC": ({"MLX_QUEUE_RETRY_JITTER_SEC": "1"}, lambda c: limits_from(c).jitter_sec, 1.0),
    "MLX_QUEUE_PRIORITY_MIN": ({"MLX_QUEUE_PRIORITY_MIN": "-3"}, lambda c: priority_policy(c.admission).minimum, -3),
    "MLX_QUEUE_PRIORITY_MAX": ({"MLX_QUEUE_PRIORITY_MAX": "4"}, lambda c: priority_policy(c.admission).maximum, 4),
    "MLX_QUEUE_DEFAULT_PRIORITY": (
        {"MLX_QUEUE_DEFAULT_PRIORITY": "2"},
        lambda c: priority_policy(c.admission).default,
        2,
    ),
    "PRELOAD_MODELS": ({"PRELOAD_MODELS": "a, b"}, lambda c: c.engines.preload, ["a", "b"]),
    "MLX_FORCE_GC_ON_EVICT": ({"MLX_FORCE_GC_ON_EVICT": "1"}, lambda c: c.engines.force_gc_on_evict, True),
    "DEFAULT_MAX_TOKENS": ({"DEFAULT_MAX_TOKENS": "64"}, lambda c: c.routing.default_max_tokens, 64),
    "MAX_TOKENS_CEILING": ({"MAX_TOKENS_CEILING": "256"}, lambda c: c.routing.max_tokens_ceiling, 256),
    "MODEL_PROFILES_FILE": ({"MODEL_PROFILES_FILE": "/p.json"}, lambda c: c.routing.profiles_file, "/p.json"),
    "MLX_CONTEXT_OVER_BUDGET": ({"MLX_CONTEXT_OVER_BUDGET": "Trim"}, lambda c: c.engines.context_over_budget, "trim"),
    "MLX_CONTEXT_TRIM_BUFFER": ({"MLX_CONTEXT_TRIM_BUFFER": "16"}, lambda c: c.engines.context_trim_buffer, 16),
    "MLX_ROUTE_LONG_PROMPT_CHARS": (
        {"MLX_ROUTE_LONG_PROMPT_CHARS": "28000"},
        lambda c: build_policy(c).long_prompt_chars,
        28000,
    ),
    "DEFAULT_MODEL": ({"DEFAULT_MODEL": " qwen "}, lambda c: c.routing.default_model, "qwen"),
    "TARGET_MODEL": ({"TARGET_MODEL": "granite"}, lambda c: c.routing.default_model, "granite"),
    "MLX_FORCE_DEFAULT_MODEL": ({"MLX_FORCE_DEFAULT_MODEL": "1"}, lambda c: c.routing.force_default_model, True),
    "ON_MODEL_MISS": (
        {"ON_MODEL_MISS": "ERROR"},
        lambda c: c.routing.on_model_miss,
        "error",
    ),  # fallback is the default
    "EXTRA_PLACEHOLDER_MODELS": (
        {"EXTRA_PLACEHOLDER_MODELS": "my-agent"},
        lambda c: "my-agent" in build_policy(c).placeholders and "openclaw" not in build_policy(c).placeholders,
        True,
    ),
    "MODEL_ROLES_JSON": (
        {"MODEL_ROLES_JSON": '{"coder": ["qwen-coder"], "_comment": "x"}'},
        lambda c: (build_policy(c).roles.get("coder"), build_policy(c).roles.get("_comment")),
        (("qwen-coder",), None),
    ),
    "MODEL_ROLES_FILE": ({"MODEL_ROLES_FILE": "/r.json"}, lambda c: c.routing.roles_file, "/r.json"),
    "PREFER_LOADED_MODELS": ({"PREFER_LOADED_MODELS": "only"}, lambda c: c.routing.prefer_loaded, "strict"),
    "MLX_GRAB_MODEL": ({"MLX_GRAB_MODEL": "hf:org/m"}, lambda c: c.engines.grab_model, "hf:org/m"),
    "MLX_GRAB_DISPLAY_NAME": ({"MLX_GRAB_DISPLAY_NAME": "house"}, lambda c: c.engines.grab_display_name, "house"),
    "MLX_GRAB_CACHE": ({"MLX_GRAB_CACHE": "/cache"}, lambda c: c.engines.grab_cache, "/cache"),
    "ANTHROPIC_API_KEY": ({"ANTHROPIC_API_KEY": "sk"}, lambda c: cloud(c).api_key.get_secret_value(), "sk"),
    "ANTHROPIC_BASE_URL": (
        {"ANTHROPIC_API_KEY": "sk", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9/"},
        lambda c: cloud(c).url,
        "http://127.0.0.1:9",
    ),
    "ANTHROPIC_MODEL": (
        {"ANTHROPIC_API_KEY": "sk", "ANTHROPIC_MODEL": "claude-x"},
        lambda c: directory_of(c).entries[0].default_model,
        "claude-x",
    ),
    "ANTHROPIC_VERSION": (
        {"ANTHROPIC_API_KEY": "sk", "ANTHROPIC_VERSION": "2023-06-01"},
        lambda c: cloud(c).anthropic_version,
        "2023-06-01",
    ),
    "LITELLM_TIMEOUT_SECONDS": (
        {"ANTHROPIC_API_KEY": "sk", "LITELLM_TIMEOUT_SECONDS": "120"},
        lambda c: cloud(c).timeout,
        120.0,
    ),
    "ANTHROPIC_AUTO_ROUTE": ({"ANTHROPIC_AUTO_ROUTE": "1"}, lambda c: c.escalation.auto_route, True),
    "BIG_TASK_MIN_WORDS": ({"BIG_TASK_MIN_WORDS": "10"}, lambda c: c.escalation.big_task_min_words, 10),
    "BIG_TASK_MIN_CHARS": ({"BIG_TASK_MIN_CHARS": "90"}, lambda c: c.escalation.big_task_min_chars, 90),
    "BIG_TASK_MIN_BULLETS": ({"BIG_TASK_MIN_BULLETS": "2"}, lambda c: c.escalation.big_task_min_bullets, 2),
    "BIG_TASK_MIN_STEP_MARKERS": (
        {"BIG_TASK_MIN_STEP_MARKERS": "5"},
        lambda c: c.escalation.big_task_min_step_markers,
        5,
    ),
    "ENABLE_LITELLM_PREFIX_ROUTING": (
        {"ENABLE_LITELLM_PREFIX_ROUTING": "0"},
        lambda c: directory_of(c).litellm_prefix,
        False,
    ),
    "SWARM_PER_CALL_TIMEOUT": ({"SWARM_PER_CALL_TIMEOUT": "60"}, lambda c: c.swarm.per_call_timeout, 60.0),
    "SWARM_FANOUT_TIMEOUT": ({"SWARM_FANOUT_TIMEOUT": "0"}, lambda c: c.swarm.fanout_timeout, 3600.0),
    "SWARM_CHAT_ENABLED": ({"SWARM_CHAT_ENABLED": "off"}, lambda c: c.swarm.chat_enabled, False),
    "SWARM_CHAT_DEFAULT_MODELS": (
        {"SWARM_CHAT_DEFAULT_MODELS": "role:reasoner,role:coder"},
        lambda c: c.swarm.chat_default_models,
        ["role:reasoner", "role:coder"],
    ),
    "SWARM_CHAT_DEFAULT_STRATEGY": (
        {"SWARM_CHAT_DEFAULT_STRATEGY": "First-Success"},
        lambda c: c.swarm.chat_default_strategy,
        "first-success",
    ),
    "SWARM_CHAT_DEFAULT_JUDGE": (
        {"SWARM_CHAT_DEFAULT_JUDGE": "role:coder"},
        lambda c: c.swarm.chat_default_judge,
        "role:coder",
    ),
    "SWARM_CHAT_AUTO_MAX": ({"SWARM_CHAT_AUTO_MAX": "0"}, lambda c: c.swarm.chat_auto_max, 0),
    "SWARM_STREAM_CHUNK_CHARS": ({"SWARM_STREAM_CHUNK_CHARS": "16"}, lambda c: c.swarm.stream_chunk_chars, 16),
    "MLX_DASHBOARD_ENABLED": ({"MLX_DASHBOARD_ENABLED": "0"}, lambda c: c.dashboard.enabled, False),
    "MLX_DASHBOARD_CAPTURE_PROMPTS": (
        {"MLX_DASHBOARD_CAPTURE_PROMPTS": "1"},
        lambda c: c.dashboard.capture_prompts,
        True,
    ),
    "MLX_DASHBOARD_MAX_EVENTS": ({"MLX_DASHBOARD_MAX_EVENTS": "50"}, lambda c: c.dashboard.max_events, 50),
    "MLX_DASHBOARD_PREVIEW_CHARS": ({"MLX_DASHBOARD_PREVIEW_CHARS": "80"}, lambda c: c.dashboard.preview_chars, 80),
    "MLX_DASHBOARD_MAX_PROMPT_CHARS": (
        {"MLX_DASHBOARD_PREVIEW_CHARS": "80", "MLX_DASHBOARD_MAX_PROMPT_CHARS": "8000"},
        lambda c: c.dashboard.preview_chars,
        8000,
    ),
    "MLX_DASHBOARD_MAX_ERROR_CHARS": (
        {"MLX_DASHBOARD_MAX_ERROR_CHARS": "120"},
        lambda c: c.dashboard.max_error_chars,
        120,
    ),
}


def test_every_variable_of_the_original_is_covered() -> None:
    assert set(HONOURED) | set(RETIRED) == ORIGINAL_VARIABLES


@pytest.mark.parametrize("name", sorted(HONOURED))
def test_the_variable_keeps_its_meaning(name: str) -> None:
    env, look, expected = HONOURED[name]
    assert name in env
    assert look(load(None, env)) == expected


def test_older_names_lose_to_current_ones() -> None:
    config = load(None, {"MLX_PER_MODEL_ADMISSION_CAP": "2", "MLX_PER_MODEL_INFLIGHT_CAP": "5", "TARGET_MODEL": "a",
                         "DEFAULT_MODEL": "b"})  # fmt: skip
    assert (config.admission.per_model_inflight_cap, config.routing.default_model) == (5, "b")
    assert start_notes({"MLX_PER_MODEL_ADMISSION_CAP": "2", "MLX_PER_MODEL_INFLIGHT_CAP": "5"}) == [
        "MLX_PER_MODEL_ADMISSION_CAP is ignored: MLX_PER_MODEL_INFLIGHT_CAP, its current name, is set too"
    ]


@pytest.mark.parametrize("name", sorted(RETIRED))
def test_a_retired_variable_is_reported_with_what_to_use_instead(name: str) -> None:
    (note,) = start_notes({name: "1"})
    assert note.startswith(f"{name} has no effect here: ")
    assert any(word.isupper() and "_" in word for word in note.split()), note  # it names a variable to use


@pytest.mark.parametrize(
    ("spec", "read_as"),
    [
        ("litellm/anthropic/claude-3-5-sonnet-latest", "anthropic:claude-3-5-sonnet-latest"),
        ("litellm/claude-3-opus-20240229", "anthropic:claude-3-opus-20240229"),
        ("litellm/groq/llama3-70b", "llama3-70b"),
        ("role:coder, litellm/anthropic/claude-x", "role:coder,anthropic:claude-x"),
    ],
)
def test_litellm_names_are_read_in_this_grammar(spec: str, read_as: str) -> None:
    assert without_litellm(spec).replace(" ", "") == read_as


@pytest.mark.slow
def test_the_report_comes_once_at_start(tmp_path: Path) -> None:
    env = {"MAX_WORKERS": "8", "USE_LITELLM_FOR_ANTHROPIC": "1", "MLX_PER_MODEL_ADMISSION_CAP": "2",
           "MLX_SKIP_STARTUP_MODEL_PROMPT": "1", "MLX_MODEL_ROOT": str(tmp_path)}  # fmt: skip
    with mlx_launcher(["serve"], tmp_path, env) as gateway:
        assert httpx.get(gateway.url + "/v1/models", headers=AUTH).status_code == 200
        log = gateway.log()
    for name in ("MAX_WORKERS", "USE_LITELLM_FOR_ANTHROPIC", "MLX_SKIP_STARTUP_MODEL_PROMPT"):
        assert log.count(f"{name} has no effect here") == 1, log
    assert log.count("MLX_PER_MODEL_ADMISSION_CAP is read as MLX_PER_MODEL_INFLIGHT_CAP") == 1


@pytest.mark.slow
def test_a_litellm_name_reaches_the_anthropic_backend(tmp_path: Path) -> None:
    """``litellm/anthropic/<m>`` over the real gateway goes to the anthropic backend as ``<m>``."""
    from tests.support.anthropic_upstream import KEY as CLOUD_KEY
    from tests.support.anthropic_upstream import anthropic_upstream

    with anthropic_upstream() as (root, recorder):
        env = {"ANTHROPIC_API_KEY": CLOUD_KEY, "ANTHROPIC_BASE_URL": root, "MLX_MODEL_ROOT": str(tmp_path)}
        with launch([script("lattice"), "serve", "--no-banner"], tmp_path, env) as gateway:
            body = {"model": "litellm/anthropic/claude-sonnet-4-5", "max_tokens": 8,
                    "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
            answer = httpx.post(gateway.url + "/v1/chat/completions", json=body, headers=AUTH, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-model-routed-to"] == "anthropic/claude-sonnet-4-5"
    assert recorder.bodies[-1]["model"] == "claude-sonnet-4-5"
