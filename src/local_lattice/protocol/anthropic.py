"""Anthropic Messages API wire models and the pure translations between it and OpenAI chat.

Owns: the request models (unknown fields let through), request translation both ways, and whole
response translation both ways. Streamed events live in ``protocol.anthropic_stream``. No I/O; the
functions take and return plain JSON objects and raise ``InvalidRequest`` for what cannot be said
in the other protocol.
"""

from __future__ import annotations

import os
import time
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from local_lattice.errors import InvalidRequest
from local_lattice.protocol.openai import ModelSpec
from local_lattice.types import JSONObject

DEFAULT_MAX_TOKENS = 1024


class AnthropicBaseModel(BaseModel):
    # Validators are built on the first Messages request, not when the app is imported.
    model_config = ConfigDict(extra="allow", allow_inf_nan=False, defer_build=True)


class TextBlock(AnthropicBaseModel):
    type: Literal["text"]
    text: str


class ImageSource(AnthropicBaseModel):
    type: Literal["base64", "url"]
    media_type: str | None = None
    data: str | None = None
    url: str | None = None


class ImageBlock(AnthropicBaseModel):
    type: Literal["image"]
    source: ImageSource


class ToolResultBlock(AnthropicBaseModel):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[dict[str, Any]] = ""
    is_error: bool | None = None


# The blocks a user turn may carry, told apart by ``type`` (what ``_user_to_openai`` translates).
UserBlock = Annotated[TextBlock | ImageBlock | ToolResultBlock, Field(discriminator="type")]


class AssistantBlock(AnthropicBaseModel):
    """text and tool_use are carried over; other kinds (thinking …) carry nothing another model can use."""

    type: str


class UserParam(AnthropicBaseModel):
    role: Literal["user"]
    content: str | Annotated[list[UserBlock], Field(min_length=1)]


class AssistantParam(AnthropicBaseModel):
    role: Literal["assistant"]
    content: str | list[AssistantBlock]


MessageParam = Annotated[UserParam | AssistantParam, Field(discriminator="role")]


class MessagesRequest(AnthropicBaseModel):
    """``POST /v1/messages``; ``model`` is any spec the gateway understands."""

    model: ModelSpec = None
    messages: list[MessageParam] = Field(..., min_length=1)
    max_tokens: int = Field(..., ge=1)
    system: str | list[dict[str, Any]] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0)
    stream: bool = False
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None


STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def new_message_id() -> str:
    return "msg_" + os.urandom(12).hex()


# --- Anthropic request -> OpenAI chat body ----------------------------------------------------


def _text_of(content: Any) -> str:
    """Plain text of a string or a list of blocks (non-text blocks are skipped)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def _image_part(block: JSONObject) -> JSONObject:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif source.get("type") == "url":
        url = str(source.get("url", ""))
    else:
        raise InvalidRequest(f"image source type {source.get('type')!r} is not supported", param="messages")
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result_message(block: JSONObject) -> JSONObject:
    text = _text_of(block.get("content", ""))
    if block.get("is_error"):
        text = f"Error: {text}"  # OpenAI has no error flag on tool messages; say it in the content
    return {"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")), "content": text}


def _user_to_openai(content: str | list[JSONObject]) -> list[JSONObject]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    out: list[JSONObject] = []
    parts: list[JSONObject] = []
    for block in content:
        kind = block.get("type")
        if kind == "tool_result":
            out.append(_tool_result_message(block))
        elif kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            parts.append(_image_part(block))
        else:
            raise InvalidRequest(f"content block type {kind!r} is not supported in user turns", param="messages")
    if parts:
        # Text-only turns become a plain string: many local servers accept nothing else.
        only_text = all(p["type"] == "text" for p in parts)
        value: Any = "\n".join(p["text"] for p in parts) if only_text else parts
        out.append({"role": "user", "content": value})
    return out


def _assistant_to_openai(content: str | list[JSONObject]) -> JSONObject:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[JSONObject] = []
    for block in content:
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function = {"name": str(block.get("name", "")), "arguments": arguments}
            calls.append({"id": str(block.get("id", "")), "type": "function", "function": function})
        # thinking / redacted_thinking blocks carry nothing another model can use
    # "" rather than null beside tool calls: llama-cpp-python's server rejects a null content.
    message: JSONObject = {"role": "assistant", "content": "".join(texts)}
    if calls:
        message["tool_calls"] = calls
    return message


def _tool_choice_to_openai(choice: JSONObject) -> Any:
    kind = choice.get("type")
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return {"auto": "auto", "any": "required", "none": "none"}.get(str(kind), "auto")


def _output_format_to_openai(request: JSONObject) -> JSONObject | None:
    """Structured outputs (``output_config.format``, or the beta's ``output_format``) as a
    ``response_format``."""
    config = request.get("output_config")
    spec = config.get("format") if isinstance(config, dict) else request.get("output_format")
    if spec is None:
        return None
    if not isinstance(spec, dict) or spec.get("type") != "json_schema" or not isinstance(spec.get("schema"), dict):
        raise InvalidRequest("output_config.format must be {type: json_schema, schema: {...}}", param="output_config")
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": spec["schema"], "strict": True}}


def messages_to_openai(request: JSONObject) -> JSONObject:
    """An Anthropic Messages request as an OpenAI chat completion body."""
    messages: list[JSONObject] = []
    system = request.get("system")
    if system:
        messages.append({"role": "system", "content": _text_of(system)})
    for message in request.get("messages", []):
        if message["role"] == "user":
            messages.extend(_user_to_openai(message["content"]))
        else:
            messages.append(_assistant_to_openai(message["content"]))
    body: JSONObject = {"model": request.get("model"), "messages": messages, "max_tokens": request["max_tokens"]}
    # ``queue`` is the gateway's own (priority, wait, deadline), read by admission as on every route.
    for key in ("temperature", "top_p", "top_k", "stream", "queue"):
        if request.get(key) is not None:
            body[key] = request[key]
    if request.get("stop_sequences"):
        body["stop"] = list(request["stop_sequences"])
    if request.get("stream"):
        body["stream_options"] = {"include_usage": True}
    tools = request.get("tools")
    if tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.get("name"),
                    "description": t.get("description", ""),
                    "parameters": t.get("input_schema") or {"type": "object", "properties": {}},
                },
            }
            for t in tools
        ]
    choice = request.get("tool_choice")
    if choice:
        body["tool_choice"] = _tool_choice_to_openai(choice)
        if choice.get("disable_parallel_tool_use"):
            body["parallel_tool_calls"] = False
    response_format = _output_format_to_openai(request)
    if response_format is not None:
        body["response_format"] = response_format
    user = (request.get("metadata") or {}).get("user_id")
    if user:
        body["user"] = str(user)
    return body


# --- OpenAI chat body -> Anthropic request ----------------------------------------------------


def _image_block(url: str) -> JSONObject:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";")[0] or "image/png"
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _user_blocks(content: Any) -> list[JSONObject]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks: list[JSONObject] = []
    for part in content or []:
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "image_url":
            image = part.get("image_url")
            blocks.append(_image_block(str(image.get("url", "") if isinstance(image, dict) else image)))
        else:
            raise InvalidRequest(f"content part type {kind!r} cannot be sent to an Anthropic model", param="messages")
    return blocks


def _tool_use_block(call: JSONObject) -> JSONObject:
    function = call.get("function") or {}
    raw = function.get("arguments") or "{}"
    try:
        arguments = orjson.loads(raw) if isinstance(raw, str) else raw
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            f"tool call {call.get('id')!r} has arguments that are not JSON", param="messages"
        ) from None
    return {"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": arguments}


def _append(turns: list[JSONObject], role: str, blocks: list[JSONObject]) -> None:
    """Anthropic wants user and assistant turns to alternate: merge consecutive turns of one role."""
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _tool_choice_to_anthropic(choice: Any, parallel: Any) -> JSONObject | None:
    if isinstance(choice, dict):
        out: JSONObject = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    elif choice in ("auto", "required", "none"):
        out = {"type": {"auto": "auto", "required": "any", "none": "none"}[choice]}
    elif parallel is False:
        out = {"type": "auto"}
    else:
        return None
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def _output_config(response_format: Any) -> JSONObject | None:
    """A ``response_format`` as Anthropic's structured outputs, which always take a schema."""
    kind = response_format.get("type") if isinstance(response_format, dict) else response_format
    if kind in (None, "text"):
        return None
    spec = response_format.get("json_schema") if kind == "json_schema" else None
    if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
        raise InvalidRequest(
            f"Anthropic models take a response_format of type json_schema with a schema, not {kind!r}",
            param="response_format",
        )
    return {"format": {"type": "json_schema", "schema": spec["schema"]}}


def openai_to_messages(body: JSONObject, model: str, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> JSONObject:
    """An OpenAI chat completion body as Anthropic Messages request parameters (``stream`` excluded)."""
    system: list[str] = []
    turns: list[JSONObject] = []
    for message in body.get("messages", []):
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.append(_text_of(content))
        elif role == "user":
            _append(turns, "user", _user_blocks(content))
        elif role == "assistant":
            blocks = [{"type": "text", "text": t} for t in [_text_of(content)] if t]
            blocks.extend(_tool_use_block(call) for call in message.get("tool_calls") or [])
            _append(turns, "assistant", blocks)
        elif role in ("tool", "function"):
            result = {"type": "tool_result", "tool_use_id": message.get("tool_call_id"), "content": _text_of(content)}
            _append(turns, "user", [result])
    params: JSONObject = {
        "model": model,
        "messages": turns,
        "max_tokens": body.get("max_tokens") or body.get("max_completion_tokens") or default_max_tokens,
    }
    if system:
        params["system"] = "\n\n".join(system)
    if body.get("temperature") is not None:
        params["temperature"] = min(float(body["temperature"]), 1.0)  # OpenAI allows up to 2
    for key in ("top_p", "top_k"):
        if body.get(key) is not None:
            params[key] = body[key]
    stop = body.get("stop")
    if stop:
        params["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    tools = [t.get("function") or {} for t in body.get("tools") or [] if t.get("type", "function") == "function"]
    if tools:
        params["tools"] = [
            {
                "name": f.get("name"),
                "description": f.get("description", ""),
                "input_schema": f.get("parameters") or {"type": "object", "properties": {}},
            }
            for f in tools
        ]
    choice = _tool_choice_to_anthropic(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None and tools:
        params["tool_choice"] = choice
    output_config = _output_config(body.get("response_format"))
    if output_config is not None:
        params["output_config"] = output_config
    if body.get("user"):
        params["metadata"] = {"user_id": str(body["user"])}
    return params


# --- whole responses ----------------------------------------------------------------------------


def anthropic_usage(usage: JSONObject | None) -> tuple[int, int]:
    """(prompt tokens, completion tokens) of an Anthropic usage object; cached input counts as input."""
    usage = usage or {}
    prompt = sum(
        int(usage.get(key) or 0) for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    return prompt, int(usage.get("output_tokens") or 0)


def message_to_chat_completion(message: JSONObject) -> JSONObject:
    """An Anthropic Message as an OpenAI ``chat.completion`` object."""
    texts: list[str] = []
    calls: list[JSONObject] = []
    for block in message.get("content") or []:
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function = {"name": block.get("name"), "arguments": arguments}
            calls.append({"id": block.get("id"), "type": "function", "function": function})
    reply: JSONObject = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        reply["tool_calls"] = calls
    prompt, completion = anthropic_usage(message.get("usage"))
    finish = STOP_TO_FINISH.get(str(message.get("stop_reason")), "stop")
    return {
        "id": message.get("id") or new_message_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model"),
        "choices": [{"index": 0, "message": reply, "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }


def _arguments(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw or {}
    try:
        return orjson.loads(raw or "{}")
    except orjson.JSONDecodeError:
        return {"_raw": raw}  # a model that emitted broken JSON: keep what it said, visibly


def chat_completion_to_message(completion: JSONObject, model: str) -> JSONObject:
    """An OpenAI ``chat.completion`` object as an Anthropic Message."""
    choices = completion.get("choices") or [{}]
    reply = choices[0].get("message") or {}
    content: list[JSONObject] = []
    text = _text_of(reply.get("content"))
    if text:
        content.append({"type": "text", "text": text})
    for call in reply.get("tool_calls") or []:
        function = call.get("function") or {}
        block_id = call.get("id") or "toolu_" + os.urandom(8).hex()
        content.append(
            {
                "type": "tool_use",
                "id": block_id,
                "name": function.get("name"),
                "input": _arguments(function.get("arguments")),
            }
        )
    usage = completion.get("usage") or {}
    out_usage: JSONObject = {
        "input_tokens": int(usage.get("prompt_tokens") or 0),
        "output_tokens": int(usage.get("completion_tokens") or 0),
    }
    if "cost_usd" in usage:
        out_usage["cost_usd"] = usage["cost_usd"]
    return {
        "id": new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": FINISH_TO_STOP.get(str(choices[0].get("finish_reason")), "end_turn"),
        "stop_sequence": None,
        "usage": out_usage,
    }


ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def error_body(status: int, message: str) -> JSONObject:
    """Anthropic's error shape, ``{"type": "error", "error": {"type", "message"}}``, for ``status``."""
    kind = ERROR_TYPES.get(status, "invalid_request_error" if 400 <= status < 500 else "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}
