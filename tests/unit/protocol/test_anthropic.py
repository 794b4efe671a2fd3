"""Translations between the Messages API and OpenAI chat, from the Messages API's documented examples."""

from __future__ import annotations

import orjson
import pytest

from local_lattice.errors import InvalidRequest
from local_lattice.protocol.anthropic import (
    MessagesRequest,
    chat_completion_to_message,
    error_body,
    message_to_chat_completion,
    messages_to_openai,
    openai_to_messages,
)

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"}},
        "required": ["location"],
    },
}
TOOL_USE_ID = "toolu_01A09q90qw90lq917835lq9"


def test_basic_request_with_system_and_sampling() -> None:
    request = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": "You are a seasoned data scientist.",
        "messages": [{"role": "user", "content": "Hello, world"}],
        "stop_sequences": ["\n\nHuman:"],
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
    }
    MessagesRequest.model_validate(request)
    body = messages_to_openai(request)
    assert body["messages"] == [
        {"role": "system", "content": "You are a seasoned data scientist."},
        {"role": "user", "content": "Hello, world"},
    ]
    assert body["max_tokens"] == 1024
    assert body["stop"] == ["\n\nHuman:"]
    assert (body["temperature"], body["top_p"], body["top_k"]) == (0.5, 0.9, 40)
    assert "stream" not in body


def test_multi_turn_and_system_blocks_round_trip() -> None:
    request = {
        "model": "m",
        "max_tokens": 64,
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
        "messages": [
            {"role": "user", "content": "Hello there."},
            {"role": "assistant", "content": "Hi, I'm Claude. How can I help you?"},
            {"role": "user", "content": "Can you explain LLMs in plain English?"},
        ],
    }
    body = messages_to_openai(request)
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert body["messages"][0]["content"] == "Be brief.\nBe kind."
    back = openai_to_messages(body, "claude-x")
    assert back["system"] == "Be brief.\nBe kind."
    assert [t["role"] for t in back["messages"]] == ["user", "assistant", "user"]
    assert back["messages"][1]["content"] == [{"type": "text", "text": "Hi, I'm Claude. How can I help you?"}]
    assert back["model"] == "claude-x"


def test_images_base64_and_url_both_ways() -> None:
    request = {
        "model": "m",
        "max_tokens": 64,
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQSkZJRg"},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://example.org/ant.jpg"}},
                    {"type": "text", "text": "What is in the above image?"},
                ],
            }
        ],
    }
    parts = messages_to_openai(request)["messages"][0]["content"]
    assert parts == [
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg"}},
        {"type": "image_url", "image_url": {"url": "https://example.org/ant.jpg"}},
        {"type": "text", "text": "What is in the above image?"},
    ]
    back = openai_to_messages(messages_to_openai(request), "m")
    assert back["messages"][0]["content"] == request["messages"][0]["content"]


def test_tools_tool_use_and_tool_result_round_trip() -> None:
    request = {
        "model": "m",
        "max_tokens": 1024,
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        "messages": [
            {"role": "user", "content": "What's the weather like in San Francisco?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "<thinking>I need to use get_weather</thinking>"},
                    {
                        "type": "tool_use",
                        "id": TOOL_USE_ID,
                        "name": "get_weather",
                        "input": {"location": "San Francisco, CA"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": TOOL_USE_ID, "content": "15 degrees"},
                    {"type": "text", "text": "And tomorrow?"},
                ],
            },
        ],
    }
    body = messages_to_openai(request)
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": WEATHER_TOOL["description"],
                "parameters": WEATHER_TOOL["input_schema"],
            },
        }
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assistant, tool, user = body["messages"][1:]
    assert assistant["tool_calls"][0]["id"] == TOOL_USE_ID
    assert orjson.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"location": "San Francisco, CA"}
    assert tool == {"role": "tool", "tool_call_id": TOOL_USE_ID, "content": "15 degrees"}
    assert user == {"role": "user", "content": "And tomorrow?"}

    back = openai_to_messages(body, "m")
    assert back["tools"] == [WEATHER_TOOL]
    assert back["tool_choice"] == {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}
    # The tool result and the user's next words merge into one user turn, result first.
    assert back["messages"][2] == request["messages"][2]
    assert back["messages"][1]["content"][1] == request["messages"][1]["content"][1]


@pytest.mark.parametrize(
    ("anthropic_choice", "openai_choice"),
    [({"type": "auto"}, "auto"), ({"type": "any"}, "required"), ({"type": "none"}, "none")],
)
def test_tool_choice_kinds(anthropic_choice: dict[str, str], openai_choice: str) -> None:
    request = {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tools": [WEATHER_TOOL]}
    body = messages_to_openai({**request, "tool_choice": anthropic_choice})
    assert body["tool_choice"] == openai_choice
    assert openai_to_messages(body, "m")["tool_choice"] == anthropic_choice


def test_tool_error_result_is_marked_and_openai_extras_map() -> None:
    block = {"type": "tool_result", "tool_use_id": "t1", "is_error": True, "content": [{"type": "text", "text": "no"}]}
    body = messages_to_openai({"max_tokens": 5, "messages": [{"role": "user", "content": [block]}]})
    assert body["messages"] == [{"role": "tool", "tool_call_id": "t1", "content": "Error: no"}]
    params = openai_to_messages(
        {"messages": [{"role": "user", "content": "x"}], "temperature": 1.7, "stop": "END", "user": "u1"}, "m"
    )
    assert params["temperature"] == 1.0
    assert params["stop_sequences"] == ["END"]
    assert params["max_tokens"] == 1024
    assert params["metadata"] == {"user_id": "u1"}


def test_untranslatable_input_is_a_400() -> None:
    with pytest.raises(InvalidRequest):
        messages_to_openai({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "video"}]}]})
    bad_call = {"id": "c", "function": {"name": "f", "arguments": "{not json"}}
    with pytest.raises(InvalidRequest):
        openai_to_messages({"messages": [{"role": "assistant", "tool_calls": [bad_call]}]}, "m")


def test_documented_response_to_chat_completion() -> None:
    message = {
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [
            {"type": "text", "text": "<thinking>weather</thinking>"},
            {"type": "tool_use", "id": TOOL_USE_ID, "name": "get_weather", "input": {"location": "San Francisco, CA"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 2095, "output_tokens": 503, "cache_read_input_tokens": 5},
    }
    completion = message_to_chat_completion(message)
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "<thinking>weather</thinking>"
    call = choice["message"]["tool_calls"][0]
    assert (call["id"], call["function"]["name"]) == (TOOL_USE_ID, "get_weather")
    assert completion["usage"] == {"prompt_tokens": 2100, "completion_tokens": 503, "total_tokens": 2603}

    back = chat_completion_to_message(completion, "claude-sonnet-4-5")
    assert back["content"] == message["content"]
    assert back["stop_reason"] == "tool_use"
    assert back["usage"] == {"input_tokens": 2100, "output_tokens": 503}
    assert back["type"] == "message"
    assert back["id"].startswith("msg_")


@pytest.mark.parametrize(
    ("finish", "stop"), [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), (None, "end_turn")]
)
def test_finish_reasons(finish: str | None, stop: str) -> None:
    completion = {"choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": finish}]}
    assert chat_completion_to_message(completion, "m")["stop_reason"] == stop


def test_error_body_shape() -> None:
    assert error_body(429, "slow down") == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
    }
    assert error_body(502, "x")["error"]["type"] == "api_error"
    assert error_body(422, "x")["error"]["type"] == "invalid_request_error"


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def test_structured_outputs_become_a_json_schema_response_format_and_back() -> None:
    request = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    body = messages_to_openai({**request, "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}})
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": SCHEMA, "strict": True},
    }
    assert "response_format" not in messages_to_openai(request)
    params = openai_to_messages(body, "claude")
    assert params["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}
    with pytest.raises(InvalidRequest) as bad:
        messages_to_openai({**request, "output_config": {"format": {"type": "yaml"}}})
    assert bad.value.param == "output_config"


def test_a_json_mode_without_schema_is_refused_for_anthropic_models_not_dropped() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"}}
    with pytest.raises(InvalidRequest) as refused:
        openai_to_messages(body, "claude")
    assert refused.value.param == "response_format"
    assert "output_config" not in openai_to_messages({**body, "response_format": {"type": "text"}}, "claude")
