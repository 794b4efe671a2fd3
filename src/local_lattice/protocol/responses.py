"""OpenAI Responses API on top of chat completions: the request model and pure translations.

``to_chat`` turns a Responses request (text or message input, ``instructions``, function tools) into
a chat request any backend can run; ``from_chat`` turns the chat answer into a ``response`` object;
``ResponseStream`` turns chat chunks into the Responses streaming events. No I/O here.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

import orjson
from pydantic import ConfigDict, Field, field_validator

from local_lattice.errors import InvalidRequest
from local_lattice.protocol.openai import ModelSpec, OpenAIBaseModel, PositiveInt


class _Item(OpenAIBaseModel):
    model_config = ConfigDict(defer_build=True)


class MessageItem(_Item):
    """A turn; ``content`` is text or parts (``input_text``/``output_text``/``text``, ``input_image``;
    other parts carry nothing a chat model reads)."""

    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"] = "user"
    content: str | list[dict[str, Any]] | None = None


class FunctionCallItem(_Item):
    type: Literal["function_call"]
    call_id: str | None = None
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class FunctionCallOutputItem(_Item):
    type: Literal["function_call_output"]
    call_id: str
    output: Any = None


class ReasoningItem(_Item):
    """Hidden reasoning of an earlier answer: local models get none of it back."""

    type: Literal["reasoning"]


InputItem = MessageItem | FunctionCallItem | FunctionCallOutputItem | ReasoningItem
# At least one item a chat model reads (a list of reasoning items alone says nothing).
_SAYS_SOMETHING = {"contains": {"not": {"required": ["type"], "properties": {"type": {"const": "reasoning"}}}}}


class FunctionTool(_Item):
    type: Literal["function"]
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ResponsesRequest(OpenAIBaseModel):
    # The validator is built on the first Responses request, not when the app is imported.
    model_config = ConfigDict(defer_build=True)

    model: ModelSpec = None
    input: str | Annotated[list[InputItem], Field(min_length=1, json_schema_extra=_SAYS_SOMETHING)] = Field(...)
    instructions: str | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    stream: bool = False
    max_output_tokens: PositiveInt | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    previous_response_id: None = Field(
        None, description="Not supported: the gateway keeps no conversation state; send the whole input."
    )

    @field_validator("input")
    @classmethod
    def _says_something(cls, value: Any) -> Any:
        if isinstance(value, list) and all(isinstance(item, ReasoningItem) for item in value):
            raise ValueError("needs at least one item other than reasoning")
        return value


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _text_of(content: Any) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content or ():
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "input_image":
            url = part.get("image_url") or part.get("url")
            if url:
                parts.append({"type": "image_url", "image_url": {"url": url}})
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role", "user")
            messages.append(
                {"role": "system" if role == "developer" else role, "content": _text_of(item.get("content"))}
            )
        elif kind == "function_call":
            call = {
                "id": item.get("call_id") or item.get("id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments", "")},
            }
            if messages and messages[-1]["role"] == "assistant" and "tool_calls" in messages[-1]:
                messages[-1]["tool_calls"].append(call)
            else:
                # "" rather than null beside tool calls: llama-cpp-python's server rejects a null content.
                messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else orjson.dumps(output).decode()
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": text})
        elif kind == "reasoning":
            continue  # local models get no hidden reasoning items back
        else:
            raise InvalidRequest(f"input item type {kind!r} is not supported", param="input")
    return messages


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for tool in tools:
        if tool.get("type") != "function":
            raise InvalidRequest(f"tool type {tool.get('type')!r} is not supported; use function tools", param="tools")
        function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}
        out.append({"type": "function", "function": function})
    return out


def _response_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    """``text.format`` as a chat ``response_format`` (the schema's fields move under ``json_schema``)."""
    spec = (text or {}).get("format")
    if spec is None:
        return None
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind == "json_schema":
        return {
            "type": kind,
            "json_schema": {k: spec[k] for k in ("name", "schema", "strict", "description") if k in spec},
        }
    raise InvalidRequest(f"text.format type {kind!r} is not supported (text, json_object or json_schema)", param="text")


def to_chat(request: ResponsesRequest, body: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions body equivalent to a Responses request."""
    messages: list[dict[str, Any]] = []
    if request.instructions:
        messages.append({"role": "system", "content": request.instructions})
    if isinstance(request.input, str):
        messages.append({"role": "user", "content": request.input})
    else:
        messages.extend(_messages([item.model_dump(exclude_unset=True) for item in request.input]))
    chat: dict[str, Any] = {"model": body.get("model"), "messages": messages, "stream": request.stream}
    if request.max_output_tokens is not None:
        chat["max_tokens"] = request.max_output_tokens
    for key in ("temperature", "top_p", "queue"):
        if body.get(key) is not None:
            chat[key] = body[key]
    if request.tools:
        chat["tools"] = _tools([tool.model_dump(exclude_unset=True) for tool in request.tools])
        choice = request.tool_choice
        if isinstance(choice, dict) and choice.get("type") == "function":
            chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        elif isinstance(choice, str):
            chat["tool_choice"] = choice
    response_format = _response_format(request.text)
    if response_format is not None:
        chat["response_format"] = response_format
    if request.stream:
        chat["stream_options"] = {"include_usage": True}
    return chat


def _usage(usage: dict[str, Any] | None) -> dict[str, Any]:
    usage = usage or {}
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


# A chat answer's finish_reason that means the response was cut short, and OpenAI's reason for it.
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def message_item(text: str, item_id: str | None = None, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id or new_id("msg"),
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}] if status != "in_progress" else [],
    }


def function_item(call: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    function = call.get("function") or {}
    return {
        "type": "function_call",
        "id": new_id("fc"),
        "call_id": call.get("id") or new_id("call"),
        "name": function.get("name", ""),
        "arguments": function.get("arguments") or "",
        "status": status,
    }


def response_object(
    response_id: str,
    model: str,
    request: ResponsesRequest,
    output: list[dict[str, Any]],
    usage: Any,
    status: str,
    incomplete: str | None = None,
) -> dict[str, Any]:
    """The ``response`` object; ``incomplete`` is why a cut-short answer stopped (``status`` is then
    ``incomplete``, as OpenAI reports a response that ran into ``max_output_tokens``)."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model,
        "output": output,
        "instructions": request.instructions,
        "tools": [tool.model_dump(exclude_unset=True) for tool in request.tools or ()],
        "tool_choice": request.tool_choice or "auto",
        "parallel_tool_calls": True,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "max_output_tokens": request.max_output_tokens,
        "previous_response_id": None,
        "error": None,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "metadata": {},
        "text": request.text or {"format": {"type": "text"}},
        "usage": _usage(usage) if status != "in_progress" else None,
    }


def from_chat(chat: dict[str, Any], request: ResponsesRequest) -> dict[str, Any]:
    """A ``response`` object from a chat.completion object (``incomplete`` when it was cut short)."""
    choice = (chat.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    incomplete = INCOMPLETE.get(str(choice.get("finish_reason")))
    status = "incomplete" if incomplete else "completed"
    output: list[dict[str, Any]] = []
    if message.get("content"):
        output.append(message_item(message["content"], status=status))
    output.extend(function_item(call) for call in message.get("tool_calls") or ())
    model = str(chat.get("model", ""))
    return response_object(new_id("resp"), model, request, output, chat.get("usage"), status, incomplete)


class ResponseStream:
    """Chat chunks in, Responses streaming events out (``(event_type, data)`` pairs)."""

    def __init__(self, request: ResponsesRequest, model: str) -> None:
        self.request = request
        self.model = model
        self.response_id = new_id("resp")
        self.sequence = 0
        self.text = ""
        self.message_id: str | None = None
        self.calls: dict[int, dict[str, Any]] = {}
        self.order: list[tuple[str, int]] = []  # output order: ("message", 0) or ("call", index)
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None

    def _event(self, kind: str, **data: Any) -> tuple[str, dict[str, Any]]:
        self.sequence += 1
        return kind, {"type": kind, "sequence_number": self.sequence - 1, **data}

    def _snapshot(self, status: str, output: list[dict[str, Any]], incomplete: str | None = None) -> dict[str, Any]:
        return response_object(self.response_id, self.model, self.request, output, self.usage, status, incomplete)

    def start(self) -> list[tuple[str, dict[str, Any]]]:
        snapshot = self._snapshot("in_progress", [])
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    def feed(self, payload: bytes) -> list[tuple[str, dict[str, Any]]]:
        data = orjson.loads(payload)
        if isinstance(data.get("usage"), dict):
            self.usage = data["usage"]
        events: list[tuple[str, dict[str, Any]]] = []
        for choice in data.get("choices") or ():
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
            delta = choice.get("delta") or {}
            if delta.get("content"):
                events.extend(self._text_delta(delta["content"]))
            for call in delta.get("tool_calls") or ():
                events.extend(self._call_delta(call))
        return events

    def _text_delta(self, text: str) -> list[tuple[str, dict[str, Any]]]:
        events = []
        if self.message_id is None:
            self.message_id = new_id("msg")
            self.order.append(("message", 0))
            index = len(self.order) - 1
            events.append(
                self._event(
                    "response.output_item.added",
                    output_index=index,
                    item=message_item("", self.message_id, "in_progress"),
                )
            )
            part = {"type": "output_text", "text": "", "annotations": []}
            events.append(
                self._event(
                    "response.content_part.added",
                    item_id=self.message_id,
                    output_index=index,
                    content_index=0,
                    part=part,
                )
            )
        self.text += text
        index = self.order.index(("message", 0))
        events.append(
            self._event(
                "response.output_text.delta",
                item_id=self.message_id,
                output_index=index,
                content_index=0,
                delta=text,
                logprobs=[],
            )
        )
        return events

    def _call_delta(self, call: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        index = int(call.get("index", 0))
        function = call.get("function") or {}
        events = []
        if index not in self.calls:
            item = function_item({"id": call.get("id"), "function": {"name": function.get("name", "")}}, "in_progress")
            self.calls[index] = item
            self.order.append(("call", index))
            events.append(self._event("response.output_item.added", output_index=len(self.order) - 1, item=dict(item)))
        item = self.calls[index]
        if function.get("name") and not item["name"]:
            item["name"] = function["name"]
        if function.get("arguments"):
            item["arguments"] += function["arguments"]
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=self.order.index(("call", index)),
                    delta=function["arguments"],
                )
            )
        return events

    def finish(self) -> list[tuple[str, dict[str, Any]]]:
        """The closing events: each item done, then ``response.completed`` — or, for an answer cut
        short, ``response.incomplete`` with its reason (OpenAI's events)."""
        incomplete = INCOMPLETE.get(str(self.finish_reason))
        status = "incomplete" if incomplete else "completed"
        events = []
        output = []
        for position, (kind, index) in enumerate(self.order):
            if kind == "message":
                assert self.message_id is not None
                item = message_item(self.text, self.message_id, status)
                part = item["content"][0]
                common = {"item_id": self.message_id, "output_index": position, "content_index": 0}
                events.append(self._event("response.output_text.done", text=self.text, logprobs=[], **common))
                events.append(self._event("response.content_part.done", part=part, **common))
            else:
                item = {**self.calls[index], "status": "completed"}
                events.append(
                    self._event(
                        "response.function_call_arguments.done",
                        item_id=item["id"],
                        output_index=position,
                        arguments=item["arguments"],
                        name=item["name"],
                    )
                )
            events.append(self._event("response.output_item.done", output_index=position, item=item))
            output.append(item)
        events.append(self._event(f"response.{status}", response=self._snapshot(status, output, incomplete)))
        return events
