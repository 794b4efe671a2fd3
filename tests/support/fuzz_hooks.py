"""Schemathesis hooks for the fuzz run (loaded through ``SCHEMATHESIS_HOOKS``).

Generated bodies name random models, which would all stop at 404; these hooks point JSON object
bodies at a model the upstream really serves (``FUZZ_CHAT_MODEL`` / ``FUZZ_EMBED_MODEL``) so the
generated fields travel the whole way through the gateway to the upstream and back.

``FUZZ_REAL_UPSTREAM`` is for the sample against llama-cpp-python's server with SmolLM2: that
server asserts on batched or empty prompts and renders its own validation errors (a tool message
without content, a non-text part …) as 500s, which the gateway faithfully reports as 502. Those are
limits of that upstream, not of the gateway, so there the messages and prompt are made well formed
(roles system/user/assistant, text content), the structured fields that server validates more
strictly than its 500s allow (``tools``, ``tool_choice``, ``response_format``, ``logit_bias``,
``functions``) are left out, and every other generated field — sampling values,
stream options, unknown extras — goes through as generated, and a missing token budget becomes
``FUZZ_MAX_TOKENS`` to keep the model quick. The scripted upstream takes the unrestricted bodies.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis

_PLAIN_ROLES = ("system", "user", "assistant")
_STRUCTURED = ("tools", "tool_choice", "response_format", "logit_bias", "functions")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(_text(part.get("text") if isinstance(part, dict) else part) for part in value)
    return ""


def _well_formed(body: dict[str, Any]) -> None:
    for field in _STRUCTURED:
        body.pop(field, None)
    messages = body.get("messages")
    if isinstance(messages, list):
        plain = []
        for message in messages:
            if isinstance(message, dict):
                role = message.get("role") if message.get("role") in _PLAIN_ROLES else "user"
                plain.append({"role": role, "content": _text(message.get("content")) or "Hi"})
        body["messages"] = plain or [{"role": "user", "content": "Hi"}]
    if "prompt" in body:
        body["prompt"] = _text(body["prompt"]) or "Hello"


@schemathesis.hook
def map_body(context: schemathesis.HookContext, body: Any) -> Any:
    if not isinstance(body, dict) or context.operation is None:
        return body
    path = context.operation.path
    model = os.environ.get("FUZZ_EMBED_MODEL" if path.endswith("/embeddings") else "FUZZ_CHAT_MODEL")
    if model:
        body["model"] = model
    if os.environ.get("FUZZ_REAL_UPSTREAM"):
        _well_formed(body)
        budget = os.environ.get("FUZZ_MAX_TOKENS")
        if budget and body.get("max_tokens") is None:
            body["max_tokens"] = int(budget)
    return body
