from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from local_lattice.errors import InvalidRequest
from local_lattice.protocol.responses import ResponsesRequest, ResponseStream, from_chat, to_chat

TOOL = {"type": "function", "name": "get_weather", "description": "Weather", "parameters": {"type": "object"}}


def request(**body: object) -> tuple[ResponsesRequest, dict[str, object]]:
    full = {"model": "m", **body}
    return ResponsesRequest.model_validate(full), full


def test_tools_and_tool_round_trip_items_become_chat_messages() -> None:
    parsed, body = request(
        instructions="be brief",
        input=[
            {"role": "user", "content": "weather in Paris?"},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        ],
        tools=[TOOL],
        tool_choice={"type": "function", "name": "get_weather"},
        max_output_tokens=50,
    )
    chat = to_chat(parsed, body)
    assert chat["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}},
        }
    ]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert chat["max_tokens"] == 50


def test_non_function_tools_are_refused_by_the_request_model() -> None:
    with pytest.raises(ValidationError, match="function"):
        request(input="x", tools=[{"type": "web_search"}])


@pytest.mark.parametrize(
    "items",
    [[{"type": "reasoning"}], [{"role": "tool", "content": "x"}], [{"type": "function_call_output", "output": "x"}]],
)
def test_input_items_a_chat_cannot_carry_are_refused_by_the_request_model(items: list[object]) -> None:
    with pytest.raises(ValidationError):
        request(input=items)


def test_chat_tool_calls_become_function_call_items() -> None:
    parsed, _ = request(input="x", tools=[TOOL])
    chat = {
        "model": "m",
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c9", "function": {"name": "get_weather", "arguments": "{}"}}],
                }
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2},
    }
    response = from_chat(chat, parsed)
    assert [(o["type"], o["call_id"], o["name"]) for o in response["output"]] == [
        ("function_call", "c9", "get_weather")
    ]
    assert response["usage"]["total_tokens"] == 7


def test_stream_of_tool_call_deltas_ends_with_complete_items() -> None:
    parsed, _ = request(input="x", tools=[TOOL], stream=True)
    stream = ResponseStream(parsed, "m")
    events = stream.start()
    chunks = [
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "get_weather"}}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'ty":"P"}'}}]}}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}},
    ]
    for chunk in chunks:
        events += stream.feed(orjson.dumps(chunk))
    events += stream.finish()
    kinds = [kind for kind, _ in events]
    assert kinds.count("response.function_call_arguments.delta") == 2
    final = events[-1][1]["response"]
    assert final["output"][0]["arguments"] == '{"city":"P"}'
    assert final["output"][0]["call_id"] == "c1"
    assert final["usage"]["output_tokens"] == 4


def test_text_format_becomes_the_chat_response_format_and_is_echoed() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    text = {"format": {"type": "json_schema", "name": "count", "schema": schema, "strict": True}}
    parsed, body = request(input="count", text=text)
    chat = to_chat(parsed, body)
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "count", "schema": schema, "strict": True},
    }
    answer = {"model": "m", "choices": [{"message": {"role": "assistant", "content": '{"n": 1}'}}]}
    assert from_chat(answer, parsed)["text"] == text
    plain, plain_body = request(input="hi", text={"format": {"type": "json_object"}})
    assert to_chat(plain, plain_body)["response_format"] == {"type": "json_object"}
    with pytest.raises(InvalidRequest) as bad:
        to_chat(*request(input="hi", text={"format": {"type": "grammar"}}))
    assert bad.value.param == "text"
