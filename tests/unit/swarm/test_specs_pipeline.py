from __future__ import annotations

import pytest

from local_lattice.errors import InvalidRequest, ModelNotFound
from local_lattice.swarm.pipeline import parse_steps, substitute
from local_lattice.swarm.specs import AgentSpec, expand, parse_agents
from local_lattice.types import ModelInfo


def test_parse_agents_accepts_strings_lists_and_objects() -> None:
    assert [a.model for a in parse_agents("a, b")] == ["a", "b"]
    (agent,) = parse_agents([{"model": "x", "system": "s", "max_tokens": 5, "timeout": 2}])
    assert agent == AgentSpec("x", system="s", overrides={"max_tokens": 5}, timeout=2.0)


@pytest.mark.parametrize("raw", [None, "", [], 5, [{"no": "model"}], [""]])
def test_parse_agents_rejects_missing_or_bad(raw: object) -> None:
    with pytest.raises(InvalidRequest):
        parse_agents(raw)


MODELS = [
    ModelInfo("a", "x", loaded=True),
    ModelInfo("b", "x", loaded=False),
    ModelInfo("nomic-embed-text", "x", loaded=True),
    ModelInfo("e", "x", kind="embedding", loaded=True),
    ModelInfo("c", "y", loaded=True),
]


@pytest.mark.parametrize("sentinel", ["auto", "loaded", "*", "all", "all-loaded", "AUTO"])
def test_sentinels_expand_to_loaded_chat_models(sentinel: str) -> None:
    assert [a.model for a in expand(parse_agents(sentinel), MODELS)] == ["a", "c"]


def test_sentinel_falls_back_to_installed_and_caps() -> None:
    unloaded = [ModelInfo(i, "x") for i in ("p", "q", "r", "s")]
    assert [a.model for a in expand(parse_agents("auto"), unloaded, cap=3)] == ["p", "q", "r"]
    assert [a.model for a in expand(parse_agents("auto,p"), unloaded, cap=1)] == ["p", "p"]


def test_sentinel_over_nothing_is_no_models_loaded() -> None:
    with pytest.raises(ModelNotFound) as info:
        expand(parse_agents("auto"), [])
    assert info.value.code == "no_models_loaded"


def test_substitution_is_literal_and_single_pass() -> None:
    values = {"previous": "use {{plan}} and \\1 and $0", "plan": "PLAN"}
    out = substitute("A {{previous}} B {{ plan }} C {{unknown}} D {single}", values)
    assert out == "A use {{plan}} and \\1 and $0 B PLAN C {{unknown}} D {single}"


def test_steps_are_required_and_named() -> None:
    with pytest.raises(InvalidRequest):
        parse_steps([])
    with pytest.raises(InvalidRequest):
        parse_steps([{"name": "x"}])
    steps = parse_steps([{"model": "m", "user": "{{previous}}"}, {"name": "b", "model": "n", "max_tokens": 3}])
    assert [s.name for s in steps] == ["step_0", "b"]
    assert steps[1].agent.overrides == {"max_tokens": 3}
