"""Size limits on a parsed request body: nesting depth, message count, text size, ``max_tokens``
and ``n``; and the token estimate the rate limiter charges up front.

Every refusal is an ``InvalidRequest`` (400) whose code and message name the limit and its value,
so a client can tell which knob it hit. Pure functions over the decoded JSON.
"""

from __future__ import annotations

from typing import Any

import orjson

from local_lattice.config import LimitsConfig
from local_lattice.errors import InvalidRequest

_TOKEN_FIELDS = ("max_tokens", "max_completion_tokens")


def json_depth_exceeds(data: Any, limit: int) -> bool:
    """Is any object/array nested deeper than ``limit``? Iterative, so hostile input cannot recurse."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _text_chars(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_text_chars(item) for item in value)
    if isinstance(value, dict):
        return _text_chars(value.get("text")) + _text_chars(value.get("content"))
    return 0


def text_chars(body: dict[str, Any]) -> int:
    """Characters of text the model will read: messages, prompt or embedding input."""
    total = _text_chars(body.get("prompt")) + _text_chars(body.get("input"))
    messages = body.get("messages")
    if isinstance(messages, list):
        total += sum(_text_chars(m.get("content")) for m in messages if isinstance(m, dict))
    return total


def _refuse(code: str, message: str, param: str | None = None) -> InvalidRequest:
    return InvalidRequest(message, code=code, param=param)


def _may_nest_deeper(raw: bytes | None, limit: int) -> bool:
    """False when the raw JSON has no more brackets than ``limit``: each level needs one, so the
    walk over the decoded tree can be skipped (two C-speed counts instead)."""
    return raw is None or raw.count(b"{") + raw.count(b"[") > limit


def check_body(body: Any, limits: LimitsConfig, raw: bytes | None = None) -> None:
    """Raise ``InvalidRequest`` naming the first limit ``body`` breaks (``raw``: the bytes it was
    decoded from, when at hand)."""
    limit = limits.max_json_depth
    if _may_nest_deeper(raw, limit) and json_depth_exceeds(body, limit):
        raise _refuse("max_json_depth", f"JSON nested deeper than max_json_depth={limits.max_json_depth}")
    if not isinstance(body, dict):
        return
    messages = body.get("messages")
    if isinstance(messages, list) and len(messages) > limits.max_messages:
        raise _refuse("max_messages", f"{len(messages)} messages exceed max_messages={limits.max_messages}", "messages")
    chars = text_chars(body)
    if chars > limits.max_content_chars:
        raise _refuse(
            "max_content_chars", f"{chars} characters of text exceed max_content_chars={limits.max_content_chars}"
        )
    for name in _TOKEN_FIELDS:
        value = body.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > limits.max_tokens_limit:
            raise _refuse(
                "max_tokens_limit", f"{name}={value} exceeds max_tokens_limit={limits.max_tokens_limit}", name
            )
    n = body.get("n")
    if isinstance(n, int | float) and not isinstance(n, bool) and n > limits.max_n:
        raise _refuse("max_n", f"n={n} exceeds max_n={limits.max_n}", "n")


def estimate_tokens(body: Any, limits: LimitsConfig) -> int:
    """Tokens a request may cost: prompt characters / 4 plus the completion budget times ``n``."""
    if not isinstance(body, dict):
        return 1
    prompt = text_chars(body) // 4 + 1
    completion = next(
        (v for v in (body.get(f) for f in _TOKEN_FIELDS) if isinstance(v, int) and not isinstance(v, bool)),
        limits.estimated_completion_tokens,
    )
    n = body.get("n")
    choices = n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1
    if "input" in body and "messages" not in body and "prompt" not in body:
        return prompt  # embeddings generate nothing
    return prompt + max(0, completion) * choices


def decode_json(raw: bytes) -> Any:
    """Decode a request body. Invalid UTF-8, ``NaN``/``Infinity``, numbers out of range, nesting past
    orjson's own bound and plain garbage all come back as one 400 naming the problem."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from None
