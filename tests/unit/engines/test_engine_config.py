"""Config for in-process engines: types, env vars, defaults (without importing any engine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_lattice.config import ConfigError, load
from local_lattice.engines import defaults
from local_lattice.engines.defaults import DEMO_MODEL_ID, default_backends, with_default_backends


def test_env_vars_of_the_original_land_in_the_engines_section() -> None:
    env = {
        "MLX_MODEL_ROOT": "/models",
        "MAX_CONCURRENT_MODELS": "1",
        "PRELOAD_MODELS": "a, b",
        "MLX_FORCE_GC_ON_EVICT": "1",
        "MLX_CONTEXT_OVER_BUDGET": "trim",
        "MLX_CONTEXT_TRIM_BUFFER": "64",
        "MLX_GRAB_MODEL": "/m.gguf",
    }
    engines = load(None, env).engines
    assert engines.model_root == "/models"
    assert engines.max_concurrent_models == 1
    assert engines.preload == ["a", "b"]
    assert engines.force_gc_on_evict is True
    assert engines.context_over_budget == "trim"
    assert engines.context_trim_buffer == 64
    assert engines.grab_model == "/m.gguf"


def test_in_process_backends_need_no_url_but_upstreams_do(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[backends]]\nname = "local"\ntype = "llamacpp"\nn_ctx = 512\n')
    assert load(path, {}).backends[0].url == ""
    path.write_text('[[backends]]\nname = "up"\ntype = "openai"\n')
    with pytest.raises(ConfigError, match="url is required"):
        load(path, {})
    with pytest.raises(ConfigError, match="context_over_budget"):
        load(None, {"MLX_CONTEXT_OVER_BUDGET": "drop"})


def test_default_backends_serve_the_demo_model_when_its_wheel_is_installed() -> None:
    config = load(None, {})
    backends = {b.type: b for b in default_backends(config)}
    demo = defaults.demo_model_path()
    assert demo is not None
    assert demo.name.endswith(".gguf")
    assert backends["llamacpp"].model_files == {DEMO_MODEL_ID: str(demo)}


def test_grab_mode_serves_exactly_one_model_under_the_display_name() -> None:
    config = load(None, {"MLX_GRAB_MODEL": "/x/My-Model.Q4.gguf"})
    (only,) = default_backends(config)
    assert (only.name, only.type) == ("mlx-grab", "llamacpp")
    assert only.model_files == {"mlx": "/x/My-Model.Q4.gguf"}
    assert only.discover is False
    (named,) = default_backends(load(None, {"MLX_GRAB_MODEL": "/m/folder", "MLX_GRAB_DISPLAY_NAME": " qwen "}))
    assert (named.type, named.model_files) == ("mlx", {"qwen": "/m/folder"})


def test_default_backends_join_a_cloud_only_config_but_not_a_local_one() -> None:
    cloud_only = load(None, {"ANTHROPIC_API_KEY": "k"})
    assert {b.type for b in with_default_backends(cloud_only).backends} >= {"anthropic", "llamacpp"}
    local = load(None, {"LM_STUDIO_URL": "http://127.0.0.1:1234"})
    assert with_default_backends(local) is local
