"""Request-size limits and body decoding: every refusal is a 400 naming the limit."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from local_lattice.config import LimitsConfig
from local_lattice.errors import InvalidRequest
from local_lattice.security.inputs import check_body, decode_json, estimate_tokens, json_depth_exceeds

LIMITS = LimitsConfig(max_messages=3, max_content_chars=20, max_tokens_limit=100, max_n=2, max_json_depth=5)


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (chat(messages=[{"role": "user", "content": "x"}] * 4), "max_messages"),
        (chat(messages=[{"role": "user", "content": "x" * 21}]), "max_content_chars"),
        (chat(messages=[{"role": "user", "content": [{"type": "text", "text": "y" * 21}]}]), "max_content_chars"),
        ({"model": "m", "prompt": ["a" * 15, "b" * 15]}, "max_content_chars"),
        ({"model": "m", "input": "z" * 25}, "max_content_chars"),
        (chat(max_tokens=101), "max_tokens_limit"),
        (chat(max_completion_tokens=10**30), "max_tokens_limit"),
        (chat(n=3), "max_n"),
        (chat(extra={"a": {"b": {"c": {"d": {}}}}}), "max_json_depth"),
    ],
)
def test_each_limit_is_named(body: dict[str, Any], code: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_body(body, LIMITS)
    assert caught.value.code == code
    assert code.split("_", 1)[1] in caught.value.message or code in caught.value.message


def test_within_limits_passes() -> None:
    check_body(chat(max_tokens=100, n=2), LIMITS)


def test_depth_walk_handles_hostile_nesting_without_recursion() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    assert json_depth_exceeds(deep, 64)
    assert not json_depth_exceeds([[1], {"a": [2]}], 3)
    assert json_depth_exceeds([[1], {"a": [2]}], 2)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": -Infinity}',
        b'{"a": 1e999}',
        b'{"a": "\xff\xfe"}',
        b"\xc3\x28",
        b"[" * 2000 + b"]" * 2000,
        b"",
        b'{"a":',
    ],
)
def test_bad_bodies_are_one_clean_400(raw: bytes) -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_json(raw)
    assert caught.value.status == 400
    assert caught.value.code == "invalid_json"


def test_token_estimate() -> None:
    limits = LimitsConfig(estimated_completion_tokens=50)
    assert estimate_tokens(chat(), limits) == 1 + 50
    assert estimate_tokens(chat(max_tokens=10, n=3), limits) == 1 + 30
    assert estimate_tokens({"model": "e", "input": "x" * 400}, limits) == 101


def test_the_bracket_count_shortcut_agrees_with_the_walk() -> None:
    deep = orjson.dumps({"a": [[[{"b": 1}]]]})  # depth 5, five brackets
    body = orjson.loads(deep)
    check_body(body, LIMITS.model_copy(update={"max_json_depth": 5}), deep)
    with pytest.raises(InvalidRequest, match="max_json_depth=4"):
        check_body(body, LIMITS.model_copy(update={"max_json_depth": 4}), deep)
    wide = orjson.dumps({"messages": [{"role": "user", "content": "x"}] * 2})  # 4 brackets, depth 3
    check_body(orjson.loads(wide), LIMITS.model_copy(update={"max_json_depth": 3}), wide)
