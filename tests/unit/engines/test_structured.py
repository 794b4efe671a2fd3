"""The answer's shape read from a request, the call envelope read as it streams, and the choice
between text and a call, over a scripted decoder (no model)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from local_lattice.engines.calls import EnvelopeReader, opens_call
from local_lattice.engines.decoding import Delta, Plan, decode_planned
from local_lattice.engines.structured import chat_turns, shape_of
from local_lattice.errors import InvalidRequest

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


def test_plain_requests_have_no_shape() -> None:
    assert shape_of({"messages": []}) is None
    assert shape_of({"tools": [WEATHER], "tool_choice": "none"}) is None
    assert shape_of({"response_format": {"type": "text"}}) is None
    assert shape_of({"tool_choice": "auto"}) is None


def test_a_named_choice_narrows_the_envelope_to_that_function() -> None:
    shape = shape_of({"tools": [WEATHER, TIME], "tool_choice": {"type": "function", "function": {"name": "get_time"}}})
    assert shape is not None
    assert shape.mode == "forced"
    assert shape.call_schema == {
        "type": "object",
        "properties": {"name": {"const": "get_time"}, "arguments": {"type": "object", "properties": {}}},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }
    note = shape.note()
    assert note is not None
    assert "get_time" in note
    assert "get_weather" not in note


def test_required_and_auto_allow_every_function() -> None:
    required = shape_of({"tools": [WEATHER, TIME], "tool_choice": "required"})
    auto = shape_of({"tools": [WEATHER, TIME]})
    assert required is not None
    assert auto is not None
    assert (required.mode, auto.mode) == ("forced", "auto")
    schema = required.call_schema
    assert schema is not None
    assert [o["properties"]["name"]["const"] for o in schema["oneOf"]] == ["get_weather", "get_time"]
    auto_note = auto.note()
    assert auto_note is not None
    assert "plain text" in auto_note


def test_response_formats_give_the_text_schema() -> None:
    json_object = shape_of({"response_format": {"type": "json_object"}})
    assert json_object is not None
    assert json_object.text_schema == {"type": "object"}
    assert json_object.call_schema is None
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    named = shape_of({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}})
    assert named is not None
    assert named.text_schema == schema


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": [{"type": "code_interpreter"}]}, "tools"),
        ({"tools": "get_weather"}, "tools"),
        ({"tools": [{"type": "function", "function": {"description": "no name"}}]}, "tools"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "other"}}}, "tool_choice"),
        ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"response_format": {"type": "yaml"}}, "response_format"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format"),
        ({"functions": [WEATHER["function"]]}, "functions"),
    ],
)
def test_what_cannot_be_honoured_is_refused_naming_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        shape_of(body)
    assert refused.value.param == param


def test_earlier_calls_and_results_become_plain_turns() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    turns = chat_turns(
        [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "rain"},
        ],
        lambda c: c or "",
        "NOTE",
    )
    assert turns[0] == {"role": "system", "content": "NOTE"}
    assert json.loads(turns[2]["content"]) == {"name": "get_weather", "arguments": {"city": "Oslo"}}
    assert turns[3] == {"role": "user", "content": "Result of the function call: rain"}


def read(pieces: list[str]) -> tuple[str | None, str, list[str]]:
    reader = EnvelopeReader()
    streamed = []
    for piece in pieces:
        _, arguments = reader.feed(piece)
        streamed.append(arguments)
    streamed.append(reader.close())
    return reader.name, reader.arguments, streamed


def test_the_envelope_is_read_piece_by_piece() -> None:
    text = '{ "name": "get_weather", "arguments": {"city": {"a": "x}"}} }'
    for size in (1, 2, 3, 7, len(text)):
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        name, arguments, streamed = read(pieces)
        assert name == "get_weather"
        assert json.loads(arguments) == {"city": {"a": "x}"}}
        assert "".join(streamed) == arguments


def test_the_name_comes_before_the_arguments_end() -> None:
    reader = EnvelopeReader()
    assert reader.feed('{"name": "get_ti') == (None, "")
    name, arguments = reader.feed('me", "arguments": {"z": 1')
    assert (name, arguments) == ("get_time", '{"z": 1')


def test_text_that_is_no_envelope_is_told_apart() -> None:
    assert EnvelopeReader().rejects() is None
    for text in ('{"answer": 1}', "[1]", '{"name": "x", "other": 2}'):
        reader = EnvelopeReader()
        reader.feed(text)
        assert reader.rejects() is False, text
        assert reader.pending == text
    assert opens_call("  ") is None
    assert opens_call(" <tool") is None
    assert opens_call(" <tool_call>{") is True
    assert opens_call('\n{"name"') is True
    assert opens_call("The weather") is False
    assert opens_call("<b>") is False


class ScriptedDecoder:
    """Plays scripted text per constraint and records what was asked."""

    def __init__(self, free: list[str], held: list[str]) -> None:
        self.scripts = {None: free, "held": held}
        self.asked: list[tuple[Any, bool]] = []

    def __call__(self, constraint: Any, call: bool) -> Iterator[Delta]:
        self.asked.append((constraint, call))
        pieces = self.scripts[constraint]
        for i, piece in enumerate(pieces):
            yield Delta(piece, 5, i + 1, "stop" if i == len(pieces) - 1 else None, call)


def test_auto_text_answers_are_decoded_once_and_free() -> None:
    shape = shape_of({"tools": [WEATHER]})
    assert shape is not None
    decoder = ScriptedDecoder(["  ", "It is ", "sunny."], ['{"name": "get_weather", "arguments": {}}'])
    out = list(decode_planned(Plan(shape, call="held"), decoder))
    assert decoder.asked == [(None, False)]
    assert "".join(d.text for d in out) == "  It is sunny."
    assert not any(d.call for d in out)
    assert out[-1].finish == "stop"


def test_auto_answers_opening_a_call_are_decoded_again_held_to_the_envelope() -> None:
    shape = shape_of({"tools": [WEATHER]})
    assert shape is not None
    decoder = ScriptedDecoder(["<tool", "_call>", "{"], ['{"name": "get_weather", ', '"arguments": {}}'])
    out = list(decode_planned(Plan(shape, call="held"), decoder))
    assert decoder.asked == [(None, False), ("held", True)]
    assert all(d.call for d in out)
    assert "".join(d.text for d in out) == '{"name": "get_weather", "arguments": {}}'


def test_forced_calls_and_json_mode_are_held_from_the_first_token() -> None:
    forced = shape_of({"tools": [WEATHER], "tool_choice": "required"})
    json_mode = shape_of({"response_format": {"type": "json_object"}})
    assert forced is not None
    assert json_mode is not None
    decoder = ScriptedDecoder([], ['{"name": "get_weather", "arguments": {}}'])
    assert all(d.call for d in decode_planned(Plan(forced, call="held"), decoder))
    assert all(not d.call for d in decode_planned(Plan(json_mode, text="held"), decoder))
    assert decoder.asked == [("held", True), ("held", False)]


def test_auto_with_a_response_format_reads_the_json_as_a_call_only_when_it_is_one() -> None:
    shape = shape_of({"tools": [WEATHER], "response_format": {"type": "json_object"}})
    assert shape is not None
    as_call = ScriptedDecoder([], ['{"name": "get_weather", "arguments": {"city": "Oslo"}}'])
    assert all(d.call for d in decode_planned(Plan(shape, call="c", either="held"), as_call))
    as_text = ScriptedDecoder([], ['{"temperature":', " 3}"])
    out = list(decode_planned(Plan(shape, call="c", either="held"), as_text))
    assert not any(d.call for d in out)
    assert "".join(d.text for d in out) == '{"temperature": 3}'
