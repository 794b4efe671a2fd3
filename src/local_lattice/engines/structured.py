"""What a request asks of the *shape* of a local answer: ``tools``, ``tool_choice`` and
``response_format``, read into one ``Shape``.

Owns checking those fields (a clear 400 naming the field for what cannot be honoured), the JSON
schema the constrained part of the answer must match, the note that tells the model about its
tools, and the conversation turns that carry earlier calls and their results as plain chat.

A call is written by the model as one envelope, ``{"name": <function>, "arguments": {...}}``:
the engines constrain decoding to the envelope's schema (a ``oneOf`` over the allowed functions,
``name`` first), so a forced call always parses and matches its function's parameters.

Pure: no I/O, no engine imports. An engine turns ``Shape`` schemas into its own grammar.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from local_lattice.errors import InvalidRequest
from local_lattice.types import JSONObject

Message = dict[str, str]
ToolMode = Literal["none", "auto", "forced"]

# The fields a constrained-decoding engine reads; an engine without it refuses them (400).
SHAPE_FIELDS = ("tools", "tool_choice", "response_format")
CALL_OPEN = "<tool_call>"  # the tag many chat models put before a call; a text answer never starts with it


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    description: str
    parameters: JSONObject


@dataclass(frozen=True, slots=True)
class Shape:
    """``tools`` narrowed by ``tool_choice`` (``callable``), how a call is chosen (``mode``) and the
    schema a text answer must match (``text_schema``, from ``response_format``)."""

    mode: ToolMode
    callable: tuple[Function, ...]
    text_schema: JSONObject | None

    @property
    def call_schema(self) -> JSONObject | None:
        """The envelope of a call to one of ``callable``, or ``None`` when no call may be made."""
        if self.mode == "none" or not self.callable:
            return None
        options = [
            {
                "type": "object",
                "properties": {"name": {"const": f.name}, "arguments": f.parameters},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
            for f in self.callable
        ]
        return options[0] if len(options) == 1 else {"oneOf": options}

    def note(self) -> str | None:
        """The system text that describes the tools to the model (``None`` without calls)."""
        if self.call_schema is None:
            return None
        described = ({"name": f.name, "description": f.description, "parameters": f.parameters} for f in self.callable)
        listing = "\n".join(json.dumps(d) for d in described)
        how = 'reply with only a JSON object {"name": <function name>, "arguments": <arguments object>}'
        if self.mode == "forced":
            ask = f"Call a function now: {how}."
        else:
            ask = f"To call a function, {how}. If no function is needed, answer in plain text."
        return f"You can call these functions:\n{listing}\n{ask}"


def _functions(tools: Any) -> tuple[Function, ...]:
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be a list of function tools", param="tools")
    found: list[Function] = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type", "function") != "function" or not isinstance(function, dict):
            kind = tool.get("type") if isinstance(tool, dict) else type(tool).__name__
            raise InvalidRequest(f"tool type {kind!r} is not supported; use function tools", param="tools")
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest("every function tool needs a name", param="tools")
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(parameters, dict):
            raise InvalidRequest(f"the parameters of function {name!r} must be a JSON schema object", param="tools")
        found.append(Function(name, str(function.get("description") or ""), parameters))
    return tuple(found)


def _narrow(functions: tuple[Function, ...], choice: Any) -> tuple[ToolMode, tuple[Function, ...]]:
    if choice is None or choice == "auto":
        return ("auto" if functions else "none"), functions
    if choice == "none":
        return "none", ()
    if not functions:
        raise InvalidRequest("tool_choice asks for a call but the request has no tools", param="tool_choice")
    if choice == "required":
        return "forced", functions
    name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or choice.get("type") != "function" or not isinstance(name, str):
        raise InvalidRequest(
            'tool_choice must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}',
            param="tool_choice",
        )
    named = tuple(f for f in functions if f.name == name)
    if not named:
        raise InvalidRequest(f"tool_choice names {name!r}, which is not among the tools", param="tool_choice")
    return "forced", named


def _text_schema(response_format: Any) -> JSONObject | None:
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            message = "response_format json_schema needs json_schema.schema, an object"
            raise InvalidRequest(message, param="response_format")
        return schema
    raise InvalidRequest(
        f"response_format type {kind!r} is not supported (text, json_object or json_schema)", param="response_format"
    )


def shape_of(body: JSONObject) -> Shape | None:
    """The shape a request asks for, or ``None`` for a plain text answer (nothing to constrain)."""
    if body.get("functions") is not None or body.get("function_call") is not None:
        raise InvalidRequest("functions/function_call are replaced by tools/tool_choice; send tools", param="functions")
    tools, choice, response_format = body.get("tools"), body.get("tool_choice"), body.get("response_format")
    if tools is None and choice is None and response_format is None:
        return None
    mode, functions = _narrow(_functions(tools) if tools is not None else (), choice)
    text_schema = _text_schema(response_format)
    if mode == "none" and text_schema is None:
        return None
    return Shape(mode, functions, text_schema)


def asked_field(body: JSONObject) -> str | None:
    """The first shape field a request really asks for (``tool_choice: "none"`` asks nothing)."""
    shape = shape_of(body)
    if shape is None:
        return None
    if shape.mode == "none":
        return "response_format"
    return "tool_choice" if body.get("tool_choice") is not None else "tools"


# -- the conversation --------------------------------------------------------------------------


def envelope_text(call: JSONObject) -> str:
    """An earlier call as the model itself would have written it."""
    function = call.get("function") or {}
    raw = function.get("arguments") or "{}"
    try:
        arguments = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        arguments = raw
    return json.dumps({"name": function.get("name"), "arguments": arguments})


def chat_turns(messages: list[JSONObject], text_of: Any, note: str | None) -> list[Message]:
    """Chat turns any template can render: earlier calls become the assistant's envelope text,
    tool results become user turns (joined to a user turn before them), ``note`` joins the system
    turn (or becomes one)."""
    turns: list[Message] = []
    for message in messages:
        role = str(message.get("role"))
        content = text_of(message.get("content"))
        if role == "assistant" and message.get("tool_calls"):
            calls = "\n".join(envelope_text(c) for c in message["tool_calls"])
            content = f"{content}\n{calls}" if content else calls
        elif role in ("tool", "function"):
            result = f"Result of the function call: {content}"
            if turns and turns[-1]["role"] == "user":
                turns[-1] = {"role": "user", "content": f"{turns[-1]['content']}\n\n{result}"}
                continue
            role, content = "user", result
        turns.append({"role": role, "content": content})
    if note is not None:
        if turns and turns[0]["role"] in ("system", "developer"):
            turns[0] = {"role": turns[0]["role"], "content": f"{turns[0]['content']}\n\n{note}"}
        else:
            turns.insert(0, {"role": "system", "content": note})
    return turns
