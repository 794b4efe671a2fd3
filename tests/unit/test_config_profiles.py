"""``lattice serve --profile``: the original's values, and the environment wins."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from local_lattice import cli
from local_lattice.config import load
from local_lattice.config_profiles import UnknownProfile, profile_env


@pytest.mark.parametrize(
    ("name", "parallel", "per_model", "total"),
    [("stable=safe", 1, 8, 16), ("stable=balanced", 2, 12, 24), ("stable", 2, 12, 24), ("stable=faster", 2, 16, 32)],
)
def test_stable_tiers(name: str, parallel: int, per_model: int, total: int) -> None:
    config = load(None, profile_env(name, {}))
    admission = config.admission
    assert admission.max_parallel_model_calls == parallel
    assert admission.per_model_inflight_cap == 1
    assert admission.queue_max_per_model == per_model
    assert admission.queue_max_total == total
    assert admission.queue_wait_timeout_sec == 20


def test_environment_wins_over_the_profile() -> None:
    config = load(None, profile_env("stable=safe", {"MLX_QUEUE_MAX_PER_MODEL": "3", "PORT": "7000"}))
    assert config.admission.queue_max_per_model == 3
    assert config.server.port == 7000
    assert config.admission.queue_max_total == 16


def test_lmstudio_profile_points_at_lm_studio() -> None:
    config = load(None, profile_env("lmstudio", {}))
    assert config.server.port == 5000
    assert [b.url for b in config.backends] == ["http://127.0.0.1:1234/v1"]


def test_unknown_profile_is_refused_with_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UnknownProfile, match="stable=safe"):
        profile_env("turbo", {})
    monkeypatch.setenv("LATTICE_CONFIG", "")
    result = CliRunner().invoke(cli.app, ["serve", "--profile", "turbo"])
    assert result.exit_code == 2
    assert "unknown profile" in result.output
