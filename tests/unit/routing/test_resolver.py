"""The resolver beyond the documented grammar table: order of candidates, hints, backend status,
explanations and the content of its errors."""

from __future__ import annotations

import pytest

from local_lattice.errors import ModelNotFound
from local_lattice.routing.hints import Hints
from local_lattice.routing.index import ModelIndex
from local_lattice.routing.policy import BackendStatus
from local_lattice.routing.resolver import resolve
from local_lattice.types import ModelInfo
from tests.unit.routing.support import inventory, policy

FALLBACK = policy("ON_MODEL_MISS=fallback")

MIXED = "qwen2.5-coder-7b@a, llama-3.2-3b@a, llava-13b@b, qwen2.5-vl-7b@b, embed:nomic-embed-text@a"


def ids(models: tuple[ModelInfo, ...]) -> list[str]:
    return [f"{m.backend}/{m.id}" for m in models]


@pytest.mark.parametrize(
    ("spec", "settings", "candidates"),
    [
        ("role:vision", "", ["b/qwen2.5-vl-7b", "b/llava-13b"]),
        ("llama,role:coder", "", ["a/llama-3.2-3b", "a/qwen2.5-coder-7b"]),
        ("*7b*", "", ["a/qwen2.5-coder-7b", "b/qwen2.5-vl-7b"]),
        ("qwen2.5", "", ["a/qwen2.5-coder-7b", "b/qwen2.5-vl-7b"]),
        ("nothing,*LLAVA*", "", ["b/llava-13b"]),
    ],
)
def test_candidates_are_every_match_in_priority_order(spec: str, settings: str, candidates: list[str]) -> None:
    assert ids(resolve(spec, inventory(MIXED), policy=policy(settings)).candidates) == candidates


def test_auto_lists_the_whole_pool_after_the_pick() -> None:
    result = resolve("auto", inventory(MIXED), policy=policy("DEFAULT_MODEL=llava"))
    assert ids(result.candidates)[:2] == ["b/llava-13b", "a/qwen2.5-coder-7b"]
    assert "a/nomic-embed-text" not in ids(result.candidates)


@pytest.mark.parametrize("value", [None, 7, ["x"], {"a": 1}, True])
def test_non_string_models_auto_pick(value: object) -> None:
    assert resolve(value, inventory("one@a, two@a")).chosen.id == "one"


def test_embeddings_only_reach_embedding_models() -> None:
    assert resolve("auto", inventory(MIXED), "embedding").chosen.id == "nomic-embed-text"
    with pytest.raises(ModelNotFound):
        resolve("nomic-embed-text", inventory(MIXED), policy=policy("ON_MODEL_MISS=error"))


@pytest.mark.parametrize(
    ("spec", "explanation"),
    [
        ("qwen2.5-coder-7b", ""),
        ("role:coder", "role:coder -> qwen2.5-coder-7b via 'coder'"),
        ("*coder*", "*coder* -> qwen2.5-coder-7b via wildcard '*coder*'"),
        ("nope", "fallback (requested 'nope', not present) -> qwen2.5-coder-7b via first available"),
        ("role:x,llama", "role:x,llama -> llama-3.2-3b via substring 'llama'; unknown role 'x'"),
    ],
)
def test_explanations(spec: str, explanation: str) -> None:
    assert resolve(spec, inventory(MIXED), policy=FALLBACK).explanation == explanation


def test_explanation_is_header_safe() -> None:
    text = resolve("role:coder", inventory("ünïcode-coder@a")).explanation
    assert text.isascii()
    assert "\\xfc" in text


def test_miss_with_error_lists_available_ids() -> None:
    with pytest.raises(ModelNotFound) as caught:
        resolve("gpt-5-nano", inventory("one@a, two@b"), policy=policy("ON_MODEL_MISS=error"))
    error = caught.value
    assert error.status == 404
    assert error.extra["available"] == ["one", "two"]
    assert "one, two" in error.message


def test_strict_miss_names_strict_loaded_models_and_the_loaded_set() -> None:
    with pytest.raises(ModelNotFound) as caught:
        resolve("cold", inventory("cold-@a, warm+@b"), policy=policy("ON_MODEL_MISS=error"))
    assert "STRICT_LOADED_MODELS" in caught.value.message
    assert "warm" in caught.value.message
    assert caught.value.extra["loaded"] == ["warm"]


def test_strict_fallback_says_not_loaded() -> None:
    result = resolve("cold", inventory("cold-@a, warm+@b"), policy=FALLBACK)
    assert result.chosen.id == "warm"
    assert result.explanation.startswith("fallback (requested 'cold', not loaded)")


def test_empty_inventory_is_404() -> None:
    with pytest.raises(ModelNotFound) as caught:
        resolve("auto", [])
    assert caught.value.extra["available"] == []


# --- hints --------------------------------------------------------------------------------------


def test_vision_is_hard_and_filters_before_the_grammar() -> None:
    result = resolve("auto", inventory(MIXED), hints=Hints(needs_vision=True))
    assert ids(result.candidates) == ["b/llava-13b", "b/qwen2.5-vl-7b"]
    with pytest.raises(ModelNotFound) as caught:
        resolve("auto", inventory("llama-3.2-3b@a"), hints=Hints(needs_vision=True))
    assert caught.value.extra["unmet"] == ["needs_vision"]
    assert "needs_vision" in caught.value.message


def test_backend_facts_count_for_hints() -> None:
    models = [ModelInfo("plain-model", "a"), ModelInfo("other", "b", supports_vision=True)]
    assert resolve("auto", models, hints=Hints(needs_vision=True)).chosen.id == "other"


def test_long_prompt_needs_a_big_enough_window() -> None:
    models = [ModelInfo("small-ctx", "a", context_length=4096), ModelInfo("big-ctx", "b", context_length=200_000)]
    assert resolve("small-ctx", models, policy=FALLBACK, hints=Hints(min_context_window=60_000)).chosen.id == "big-ctx"
    with pytest.raises(ModelNotFound) as caught:
        resolve("auto", models[:1], hints=Hints(min_context_window=60_000))
    assert caught.value.extra["unmet"] == ["min_context_window>=60000"]


def test_tools_are_hard_and_backend_facts_decide() -> None:
    models = [ModelInfo("no-tools", "a", supports_tools=False), ModelInfo("tools", "b")]
    assert resolve("no-tools", models, policy=FALLBACK, hints=Hints(needs_tools=True)).chosen.id == "tools"


def test_fast_tier_is_soft() -> None:
    models = inventory("huge-70b@a, small-3b@b")
    assert resolve("auto", models, hints=Hints(prefers_fast=True)).chosen.id == "small-3b"
    assert resolve("huge", inventory("huge-70b@a"), hints=Hints(prefers_fast=True)).chosen.id == "huge-70b"
    result = resolve("huge", inventory("huge-70b@a"), hints=Hints(needs_json_mode=True))
    assert result.chosen.id == "huge-70b"
    assert "soft hint supports_json_mode unmet" in result.explanation


# --- backends -----------------------------------------------------------------------------------


def test_same_id_prefers_healthy_then_loaded_then_least_busy() -> None:
    models = inventory("m@a, m@b, m@c")
    busy = {
        "a": BackendStatus(in_flight=5, order=0),
        "b": BackendStatus(in_flight=1, order=1),
        "c": BackendStatus(in_flight=2, order=2),
    }
    assert resolve("m", models, backends=busy).chosen.backend == "b"
    sick = {
        "b": BackendStatus(healthy=False, order=1),
        "a": BackendStatus(in_flight=9, order=0),
        "c": BackendStatus(in_flight=0, order=2),
    }
    assert ids(resolve("m", models, backends=sick).candidates) == ["c/m", "a/m", "b/m"]
    loaded = inventory("m-@a, m+@b")
    assert resolve("m", loaded, policy=policy("PREFER_LOADED_MODELS=0")).chosen.backend == "b"


def test_cooling_backends_are_skipped_unless_nothing_else_matches() -> None:
    models = inventory("coder-x@a, coder-y@b")
    cooling = {"a": BackendStatus(cooling=True)}
    result = resolve("*coder*", models, backends=cooling)
    assert ids(result.candidates) == ["b/coder-y"]
    assert "skipped cooling-down backends: a" in result.explanation
    only = resolve("coder-x", inventory("coder-x@a"), backends=cooling, policy=policy("ON_MODEL_MISS=error"))
    assert only.chosen.backend == "a"


def test_a_prebuilt_index_gives_the_same_answer() -> None:
    models = inventory(MIXED)
    index = ModelIndex.build(models, "chat")
    for spec in ("role:coder", "*vl*", "ll", "auto", "x,qwen2.5-vl-7b"):
        assert resolve(spec, models, index=index) == resolve(spec, models)


def test_runtime_default_comes_first() -> None:
    result = resolve("", inventory("one@a, two@b"), policy=policy("DEFAULT_MODEL=one"), runtime_default="two")
    assert result.chosen.id == "two"
    assert "runtime default" in result.explanation


def test_strict_loading_keeps_models_that_load_on_demand() -> None:
    lmstudio_cold = ModelInfo(id="big-coder", backend="lms", loaded=False)
    lmstudio_warm = ModelInfo(id="chatty", backend="lms", loaded=True)
    engine_cold = ModelInfo(id="smollm2", backend="engine", loaded=False, loads_on_demand=True)
    models = [lmstudio_cold, lmstudio_warm, engine_cold]
    assert resolve("smollm2", models).chosen == engine_cold  # an in-process engine loads it in seconds
    with pytest.raises(ModelNotFound, match="STRICT_LOADED_MODELS") as caught:
        resolve("big-coder", models, policy=policy("ON_MODEL_MISS=error"))  # LM Studio would load it just in time
    assert caught.value.extra["loaded"] == ["chatty"]  # the really loaded set, not what may load
    fallen = resolve("big-coder", models)  # the default falls back to what is loaded, and says so
    assert fallen.chosen == lmstudio_warm
    assert fallen.explanation.startswith("fallback (requested 'big-coder', not loaded)")


def test_a_resident_copy_wins_over_one_that_must_load() -> None:
    cold = ModelInfo(id="smollm2", backend="a", loaded=False, loads_on_demand=True)
    warm = ModelInfo(id="smollm2", backend="b", loaded=True, loads_on_demand=True)
    assert resolve("smollm2", [cold, warm]).chosen == warm
