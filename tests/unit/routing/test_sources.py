"""Where roles, profiles and settings come from, and how bad ones fail at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_lattice.config import ConfigError, load
from local_lattice.routing.hints import infer_hints
from local_lattice.routing.policy import build_policy
from local_lattice.routing.profiles import Profile, apply_generation_defaults
from local_lattice.types import ModelInfo


def test_roles_precedence_json_then_file_then_config_then_builtin(tmp_path: Path) -> None:
    config_file = tmp_path / "lattice.toml"
    config_file.write_text('[roles]\n_comment = "notes"\ncoder = ["from-config"]\n')
    roles_file = tmp_path / "roles.json"
    roles_file.write_text('{"_comment": "x", "coder": ["from-file"], "Fast": "one-string"}')
    assert build_policy(load(None, {})).roles.get("coder") == ("coder", "code")
    assert build_policy(load(config_file, {})).roles.get("coder") == ("from-config",)
    assert build_policy(load(config_file, {})).roles.get("_comment") is None
    from_file = build_policy(load(config_file, {"MODEL_ROLES_FILE": str(roles_file)})).roles
    assert from_file.get("coder") == ("from-file",)
    assert from_file.get("fast") == ("one-string",)
    assert "_comment" not in from_file.as_json()
    env = {"MODEL_ROLES_FILE": str(roles_file), "MODEL_ROLES_JSON": '{"coder": ["from-env"]}'}
    assert build_policy(load(config_file, env)).roles.get("coder") == ("from-env",)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{\n  "coder": ["a",\n  "fast": ["b"]\n}', ":3:"),
        ('{\n  "_comment": "ok",\n  "coder": 5\n}', ":3:"),
        ('["not", "an", "object"]', "must be a JSON object"),
    ],
)
def test_a_malformed_roles_file_names_file_and_line(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "roles.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        build_policy(load(None, {"MODEL_ROLES_FILE": str(path)}))
    assert str(path) in str(caught.value)
    assert where in str(caught.value)


def test_a_missing_roles_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        build_policy(load(None, {"MODEL_ROLES_FILE": str(tmp_path / "absent.json")}))


def test_profile_layers(tmp_path: Path) -> None:
    path = tmp_path / "profiles.json"
    path.write_text(
        '{"defaults": {"context_window": 100000, "default_max_tokens": 300},'
        ' "patterns": [{"substring": "coder", "profile": {"supports_json_mode": true, "max_tokens_ceiling": 900}},'
        '              {"substring": "7b", "profile": {"latency_tier": "medium"}}],'
        ' "aliases": {"Qwen-Coder-7B": {"temperature_default": 0.1}}}'
    )
    config_file = tmp_path / "lattice.toml"
    config_file.write_text('[profiles."*coder*"]\ntop_p_default = 0.5\n[profiles."other"]\ncontext_window = 777\n')
    book = build_policy(load(config_file, {"MODEL_PROFILES_FILE": str(path)})).profiles
    coder = book.profile_for(ModelInfo("qwen-coder-7b", "a", context_length=32768))
    assert coder.context_window == 32768  # the backend's fact beats defaults
    assert coder.default_max_tokens == 300
    assert coder.supports_json_mode is True
    assert coder.max_tokens_ceiling == 900
    assert coder.latency_tier == "medium"  # the file's pattern overrides the built-in "7b is fast"
    assert coder.temperature_default == 0.1  # exact id, case-insensitive
    assert coder.top_p_default == 0.5
    assert book.profile_for(ModelInfo("other", "a", context_length=4096)).context_window == 777
    assert book.profile_for(ModelInfo("plain", "a")).context_window == 100000


@pytest.mark.parametrize(
    "text", ['{"defaults": {"context_windw": 5}}', '{"defaults": {"supports_tools": "yes"}}', '{"patterns": [1]}']
)
def test_bad_profiles_are_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "profiles.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=str(path).replace("\\", "\\\\")):
        build_policy(load(None, {"MODEL_PROFILES_FILE": str(path)}))


def test_max_tokens_ceiling_env_bounds_every_profile() -> None:
    book = build_policy(load(None, {"MAX_TOKENS_CEILING": "2000", "DEFAULT_MAX_TOKENS": "64"})).profiles
    profile = book.profile_for(ModelInfo("m", "a"))
    assert (profile.max_tokens_ceiling, profile.default_max_tokens) == (2000, 64)


@pytest.mark.parametrize(
    ("body", "prompt_chars", "expected"),
    [
        ({}, 0, {"max_tokens": 1024, "temperature": 0.7, "top_p": 0.95}),
        ({"max_tokens": 99999, "temperature": 0}, 0, {"max_tokens": 16384, "temperature": 0, "top_p": 0.95}),
        ({"max_tokens": 5000}, 3 * 29000, {"max_tokens": 3768}),
        ({"max_completion_tokens": 50000}, 0, {"max_completion_tokens": 16384}),
    ],
)
def test_generation_defaults(body: dict[str, object], prompt_chars: int, expected: dict[str, object]) -> None:
    profile = Profile(context_window=32768)
    apply_generation_defaults(body, "chat", profile, prompt_chars)
    assert expected.items() <= body.items()


def test_no_context_room_is_context_too_long() -> None:
    from local_lattice.errors import ContextTooLong

    with pytest.raises(ContextTooLong):
        apply_generation_defaults({}, "chat", Profile(context_window=1000), 3000)


def test_routing_env_settings() -> None:
    routing = load(
        None,
        {
            "PREFER_LOADED_MODELS": "only",
            "ON_MODEL_MISS": "ERROR",
            "MLX_FORCE_DEFAULT_MODEL": "yes",
            "MLX_ROUTE_LONG_PROMPT_CHARS": "100",
            "EXTRA_PLACEHOLDER_MODELS": "",
        },
    ).routing
    assert (routing.prefer_loaded, routing.on_model_miss, routing.force_default_model) == ("strict", "error", True)
    assert routing.extra_placeholder_models == []
    assert load(None, {"PREFER_LOADED_MODELS": "off"}).routing.prefer_loaded == "0"
    assert load(None, {"PREFER_LOADED_MODELS": "1"}).routing.prefer_loaded == "1"
    with pytest.raises(ConfigError, match="on_model_miss"):
        load(None, {"ON_MODEL_MISS": "shrug"})


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, {}, {}),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            {},
            {"needs_vision": True},
        ),
        ({"messages": [{"role": "user", "content": "x" * 150}]}, {}, {"min_context_window": 8192}),
        ({"prompt": "hi"}, {"x-mlx-latency-tier": "fast"}, {"prefers_fast": True}),
        ({"prompt": "hi"}, {"x-lattice-latency-tier": " FAST "}, {"prefers_fast": True}),
        ({"prompt": "hi"}, {"x-mlx-latency-tier": "slow"}, {}),
        ({"messages": [], "tools": [{"type": "function"}]}, {}, {"needs_tools": True}),
        ({"messages": [], "response_format": {"type": "json_object"}}, {}, {"needs_json_mode": True}),
        ({"messages": [], "response_format": {"type": "text"}}, {}, {}),
    ],
)
def test_hints(body: dict[str, object], headers: dict[str, str], expected: dict[str, object]) -> None:
    hints = infer_hints("chat", body, headers, long_prompt_chars=100).as_json()
    defaults = {"needs_vision": False, "min_context_window": 0, "prefers_fast": False, "needs_tools": False}
    defaults["needs_json_mode"] = False
    for key, value in {**defaults, **expected}.items():
        assert hints[key] == value, key


def test_local_servers_to_discover_are_validated_and_named() -> None:
    from local_lattice.config import ConfigError
    from local_lattice.routing.discovery import parse_server

    config = load(None, {"LATTICE_DISCOVER_SERVERS": "ollama=http://127.0.0.1:11434, openai=http://127.0.0.1:8080/v1"})
    assert [(b.name, b.type) for b in map(parse_server, config.routing.discover_servers)] == [
        ("ollama", "ollama"),
        ("local-8080", "openai"),
    ]
    assert load(None, {"LATTICE_DISCOVER_SERVERS": ""}).routing.discover_servers == []
    with pytest.raises(ConfigError, match="discover_servers"):
        load(None, {"LATTICE_DISCOVER_SERVERS": "vllm=8000"})
