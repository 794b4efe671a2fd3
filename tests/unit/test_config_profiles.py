"""``lattice serve --profile``: the original's launcher values, and the environment wins."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from local_lattice import cli
from local_lattice.admission.limits import limits_from
from local_lattice.config import load
from local_lattice.config_profiles import UnknownProfile, profile_env


@pytest.mark.parametrize(
    ("name", "parallel", "per_model", "total", "max_tokens", "ceiling"),
    [
        ("stable=safe", 1, 8, 16, 256, 2048),
        ("stable", 1, 8, 16, 256, 2048),  # the original's launcher: a bare stable is safe
        ("stable=balanced", 2, 12, 24, 384, 3072),
        ("stable=faster", 2, 16, 32, 512, 4096),
    ],
)
def test_stable_tiers(name: str, parallel: int, per_model: int, total: int, max_tokens: int, ceiling: int) -> None:
    config = load(None, profile_env(name, {}))
    admission = config.admission
    assert admission.max_parallel_model_calls == parallel
    assert admission.per_model_inflight_cap == 1
    assert admission.queue_max_per_model == per_model
    assert admission.queue_max_total == total
    assert admission.queue_wait_timeout_sec == 20
    assert (config.routing.default_max_tokens, config.routing.max_tokens_ceiling) == (max_tokens, ceiling)
    assert config.engines.max_concurrent_models == 1
    assert (config.engines.context_over_budget, config.engines.context_trim_buffer) == ("trim", 16)
    assert config.routing.on_model_miss == "error"
    assert config.escalation.auto_route is False


def test_environment_wins_over_the_profile() -> None:
    config = load(None, profile_env("stable=safe", {"MLX_QUEUE_MAX_PER_MODEL": "3", "PORT": "7000"}))
    assert config.admission.queue_max_per_model == 3
    assert config.server.port == 7000
    assert config.admission.queue_max_total == 16


def test_lmstudio_profile_is_the_original_launchers() -> None:
    config = load(None, profile_env("lmstudio", {}))
    assert config.server.port == 5000
    assert [(b.name, b.type, b.url) for b in config.backends] == [("local", "lmstudio", "http://127.0.0.1:1234/v1")]
    assert config.routing.prefer_loaded == "strict"
    assert config.routing.on_model_miss == "fallback"
    assert config.swarm.chat_default_models == ["auto"]
    assert config.swarm.chat_default_strategy == "first-success"
    assert config.admission.max_parallel_model_calls == 1
    assert limits_from(config).caps("local").per_model == 1


def test_lmstudio_profile_takes_target_model_as_the_default() -> None:
    config = load(None, profile_env("lmstudio", {"TARGET_MODEL": "qwen3-8b"}))
    assert config.routing.default_model == "qwen3-8b"
    config = load(None, profile_env("lmstudio", {"TARGET_MODEL": "qwen3-8b", "DEFAULT_MODEL": "gemma"}))
    assert config.routing.default_model == "gemma"


def test_mlx_profile_keeps_the_originals_defaults() -> None:
    config = load(None, profile_env("mlx", {}))
    assert config.server.port == 5001
    assert (config.engines.max_concurrent_models, config.admission.max_parallel_model_calls) == (2, 2)
    assert (config.routing.default_max_tokens, config.routing.max_tokens_ceiling) == (1024, 16384)
    assert config.routing.on_model_miss == "fallback"
    assert config.engines.context_trim_buffer == 8


def test_profiles_pick_up_the_originals_files_in_the_working_folder(tmp_path: Path) -> None:
    work = tmp_path / "checkout"
    work.mkdir()
    (tmp_path / "mlx_roles.json").write_text('{"fast": ["tiny"]}')  # one folder up, as the original looked
    (work / "model_profiles.json").write_text('{"defaults": {}}')
    mlx = profile_env("mlx", {}, work)
    assert mlx["MODEL_ROLES_FILE"] == str(tmp_path / "mlx_roles.json")
    assert mlx["MODEL_PROFILES_FILE"] == str(work / "model_profiles.json")
    assert profile_env("lmstudio", {}, work)["MODEL_ROLES_FILE"] == str(tmp_path / "mlx_roles.json")
    (work / "lmstudio_roles.json").write_text('{"fast": ["qwen3-8b"]}')
    assert profile_env("lmstudio", {}, work)["MODEL_ROLES_FILE"] == str(work / "lmstudio_roles.json")
    assert profile_env("lmstudio", {"MODEL_ROLES_FILE": "/mine.json"}, work)["MODEL_ROLES_FILE"] == "/mine.json"
    empty = tmp_path / "other" / "empty"
    empty.mkdir(parents=True)
    assert "MODEL_ROLES_FILE" not in profile_env("stable", {}, empty)


def test_unknown_profile_is_refused_with_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UnknownProfile, match="stable=safe"):
        profile_env("turbo", {})
    monkeypatch.setenv("LATTICE_CONFIG", "")
    result = CliRunner().invoke(cli.app, ["serve", "--profile", "turbo"])
    assert result.exit_code == 2
    assert "unknown profile" in result.output
