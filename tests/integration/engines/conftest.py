"""Fixtures for the in-process engine tests: real model files built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.models import gemma3_path


@pytest.fixture(scope="session")
def gemma_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Gemma 3 270M assembled once per session (a second real GGUF for multi-model tests)."""
    return gemma3_path(tmp_path_factory.mktemp("gemma"))


@pytest.fixture(scope="session")
def tiny_mlx_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding two tiny random MLX llama models, ``tiny-a`` and ``tiny-b``."""
    from tests.support.tiny_mlx import make_tiny_mlx_model

    root = tmp_path_factory.mktemp("mlx-models")
    make_tiny_mlx_model(root / "tiny-a", seed=1)
    make_tiny_mlx_model(root / "tiny-b", seed=2)
    return root
