"""Sizes read from model ids, the profile layers they sit in, and the fast tier's order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local_lattice.config import load
from local_lattice.routing.hints import Hints
from local_lattice.routing.policy import build_policy
from local_lattice.routing.resolver import resolve
from local_lattice.routing.sizes import parameters_b, size_profile, weight_bits
from local_lattice.types import ModelInfo
from tests.unit.routing.support import inventory


@pytest.mark.parametrize(
    ("model_id", "params"),
    [
        ("llama-3.1-8B-Instruct", 8.0),
        ("granite_8B", 8.0),
        ("tiny-8b", 8.0),
        ("Qwen3-Coder-Next-MLX-8bit", None),
        ("lmstudio-community/Hermes-4-70B-MLX-4bit", 70.0),
        ("mlx-community/Qwen3.5-122B-A10B-5bit", 122.0),
        ("Qwen3-30B-A3B", 30.0),
        ("qwen2.5-0.5b-instruct", 0.5),
        ("SmolLM2-135M-Instruct", 0.135),
        ("mixtral-8x7b-instruct", 56.0),
        ("gemma-3n-e4b-it", None),
        ("nomic-embed-text", None),
    ],
)
def test_a_size_is_read_only_from_a_size_token(model_id: str, params: float | None) -> None:
    assert parameters_b(model_id) == params


@pytest.mark.parametrize(
    ("model_id", "bits"),
    [
        ("granite-4.1-8b-6bit", 6.0),
        ("model-4-bit", 4.0),
        ("qwen2.5-7b-instruct-q4_k_m", 4.0),
        ("SmolLM2-135M-Instruct.Q8_0", 8.0),
        ("gpt-oss-120b-mxfp4", 4.0),
        ("llama-3-8b-bf16", 16.0),
        ("qwen3-8b", None),
    ],
)
def test_weight_bits(model_id: str, bits: float | None) -> None:
    assert weight_bits(model_id) == bits


def test_a_precision_suffix_never_makes_a_big_model_fast() -> None:
    big = size_profile("Qwen3-Next-80B-A3B-Instruct-8bit")
    assert big == {"latency_tier": "slow", "memory_gb_estimate": 88.0}
    assert size_profile("Qwen3-Coder-Next-MLX-8bit") == {}  # no size written: nothing guessed
    assert size_profile("llama-3.2-3b-instruct")["latency_tier"] == "fast"
    assert size_profile("gemma-3-27b-it")["latency_tier"] == "medium"


def _book(tmp_path: Path, doc: dict[str, object]) -> object:
    path = tmp_path / "model_profiles.json"
    path.write_text(json.dumps(doc))
    return build_policy(load(None, {"MODEL_PROFILES_FILE": str(path)})).profiles


def test_the_files_defaults_sit_above_the_built_in_guesses(tmp_path: Path) -> None:
    doc = {
        "defaults": {"latency_tier": "medium", "memory_gb_estimate": 8.0},
        "patterns": [{"substring": "70b", "profile": {"latency_tier": "slow", "memory_gb_estimate": 40.0}}],
        "aliases": {"special-70b": {"latency_tier": "fast"}},
    }
    book = _book(tmp_path, doc)
    small = book.profile_for(ModelInfo("llama-3.2-3b", "a"))  # type: ignore[attr-defined]
    assert (small.latency_tier, small.memory_gb_estimate) == ("medium", 8.0)
    big = book.profile_for(ModelInfo("hermes-70b", "a"))  # type: ignore[attr-defined]
    assert (big.latency_tier, big.memory_gb_estimate) == ("slow", 40.0)
    assert book.profile_for(ModelInfo("special-70b", "a")).latency_tier == "fast"  # type: ignore[attr-defined]


def test_without_a_file_the_size_token_decides(tmp_path: Path) -> None:
    book = build_policy(load(None, {})).profiles
    quantized = book.profile_for(ModelInfo("some-80b-chat-8bit", "a"))
    assert (quantized.latency_tier, quantized.memory_gb_estimate) == ("slow", 88.0)
    assert book.profile_for(ModelInfo("qwen2-vl-7b", "a")).supports_vision is True


def test_a_model_marked_fast_comes_before_one_that_is_merely_small(tmp_path: Path) -> None:
    path = tmp_path / "model_profiles.json"
    doc = {
        "defaults": {"latency_tier": "medium"},
        "aliases": {
            "compact": {"memory_gb_estimate": 4.0},
            "roomy": {"memory_gb_estimate": 12.0},
            "quick": {"latency_tier": "fast", "memory_gb_estimate": 30.0},
        },
    }
    path.write_text(json.dumps(doc))
    policy = build_policy(load(None, {"MODEL_PROFILES_FILE": str(path)}))
    models = inventory("compact@a, roomy@a, quick@b")
    fast = resolve("auto", models, policy=policy, hints=Hints(prefers_fast=True))
    assert [m.id for m in fast.candidates] == ["quick", "compact"]  # roomy (12 GB, medium) is neither
    plain = resolve("auto", models, policy=policy)
    assert [m.id for m in plain.candidates] == ["compact", "roomy", "quick"]


def test_a_size_pattern_of_the_originals_file_matches_only_that_size(tmp_path: Path) -> None:
    """The original's model_profiles.json writes sizes as substrings ("8b", "3b", "120b"): read as sizes,
    they no longer make an 80B model with an 8-bit suffix fast, nor a 30B mixture with 3B active."""
    doc = {
        "defaults": {"latency_tier": "medium", "memory_gb_estimate": 8.0},
        "patterns": [
            {"substring": "vl", "profile": {"supports_vision": True}},
            {"substring": "120b", "profile": {"latency_tier": "slow", "memory_gb_estimate": 60.0}},
            {"substring": "30b", "profile": {"latency_tier": "slow", "memory_gb_estimate": 30.0}},
            {"substring": "8b", "profile": {"latency_tier": "fast", "memory_gb_estimate": 6.0}},
            {"substring": "3b", "profile": {"latency_tier": "fast", "memory_gb_estimate": 3.0}},
        ],
    }
    book = _book(tmp_path, doc)

    def tier(model_id: str) -> tuple[str, float]:
        profile = book.profile_for(ModelInfo(model_id, "a"))  # type: ignore[attr-defined]
        return profile.latency_tier, profile.memory_gb_estimate

    assert tier("lmstudio-community/Qwen3-Coder-Next-MLX-8bit") == ("medium", 8.0)
    assert tier("mlx-community/granite-4.1-8b-6bit") == ("fast", 6.0)
    assert tier("Qwen3-30B-A3B-Instruct") == ("slow", 30.0)
    assert tier("gpt-oss-120b-mxfp4") == ("slow", 60.0)
    assert tier("llama-3.2-3B") == ("fast", 3.0)
    assert book.profile_for(ModelInfo("qwen2.5-vl-7b", "a")).supports_vision is True  # type: ignore[attr-defined]
