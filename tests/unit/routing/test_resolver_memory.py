"""Resolutions are remembered per index, and only while nothing they depend on has changed."""

from __future__ import annotations

from local_lattice.routing.hints import Hints
from local_lattice.routing.index import ModelIndex
from local_lattice.routing.policy import BackendStatus
from local_lattice.routing.resolver import resolve
from tests.unit.routing.support import inventory, policy

MODELS = inventory("qwen2.5-coder-7b@a, llama-3.2-3b@a, llava-13b@b")
CODER = policy("")


def index() -> ModelIndex:
    return ModelIndex.build(MODELS, "chat")


def test_the_same_request_gets_the_remembered_resolution() -> None:
    idx = index()
    first = resolve("role:coder", MODELS, policy=CODER, index=idx)
    assert resolve("role:coder", MODELS, policy=CODER, index=idx) is first
    assert first.chosen.id == "qwen2.5-coder-7b"


def test_only_the_prompt_length_differs_the_hints_shown_are_the_requests_own() -> None:
    idx = index()
    short = resolve("llama", MODELS, policy=CODER, index=idx, hints=Hints(prompt_chars=10))
    longer = resolve("llama", MODELS, policy=CODER, index=idx, hints=Hints(prompt_chars=99))
    assert longer.candidates == short.candidates
    assert (short.hints.prompt_chars, longer.hints.prompt_chars) == (10, 99)


def test_another_policy_hint_or_cooling_set_resolves_again() -> None:
    idx = index()
    assert resolve("auto", MODELS, policy=CODER, index=idx).chosen.id == "qwen2.5-coder-7b"
    assert resolve("auto", MODELS, policy=policy("DEFAULT_MODEL=llava"), index=idx).chosen.id == "llava-13b"
    cooling = {"a": BackendStatus(cooling=True), "b": BackendStatus(order=1)}
    assert resolve("auto", MODELS, policy=CODER, index=idx, backends=cooling).chosen.backend == "b"
    assert resolve("auto", MODELS, policy=CODER, index=idx, runtime_default="llama").chosen.id == "llama-3.2-3b"


def test_copies_of_one_id_follow_the_live_load_every_time() -> None:
    models = inventory("m@a, m@b")
    idx = ModelIndex.build(models, "chat")
    busy_a = {"a": BackendStatus(in_flight=5, order=0), "b": BackendStatus(in_flight=0, order=1)}
    busy_b = {"a": BackendStatus(in_flight=0, order=0), "b": BackendStatus(in_flight=5, order=1)}
    assert resolve("m", models, backends=busy_a, index=idx).chosen.backend == "b"
    assert resolve("m", models, backends=busy_b, index=idx).chosen.backend == "a"
