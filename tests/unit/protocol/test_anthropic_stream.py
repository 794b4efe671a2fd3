"""Stream translation both ways, from the Messages API's documented streaming examples."""

from __future__ import annotations

from typing import Any

import orjson

from local_lattice.protocol.anthropic_stream import ChunksToEvents, EventsToChunks

TEXT_EVENTS: list[dict[str, Any]] = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": "claude-sonnet-4-5",
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 25, "output_tokens": 1},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 15},
    },
    {"type": "message_stop"},
]

TOOL_EVENTS: list[dict[str, Any]] = [
    TEXT_EVENTS[0],
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me check."}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {
            "type": "tool_use",
            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "name": "get_weather",
            "input": {},
        },
    },
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"location":'}},
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": ' "San Francisco, CA"}'},
    },
    {"type": "content_block_stop", "index": 1},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 89},
    },
    {"type": "message_stop"},
]


def to_chunks(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], EventsToChunks]:
    translator = EventsToChunks(model="claude-sonnet-4-5")
    chunks = [chunk for event in events for chunk in translator.feed(event)]
    return chunks, translator


def test_text_events_become_chunks_with_usage_on_the_last() -> None:
    chunks, translator = to_chunks(TEXT_EVENTS)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "Hello!"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == {"prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40}
    assert {c["id"] for c in chunks} == {"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"}
    assert translator.usage.total_tokens == 40


def test_tool_events_become_tool_call_chunks() -> None:
    chunks, _ = to_chunks(TOOL_EVENTS)
    calls = [call for c in chunks for call in c["choices"][0]["delta"].get("tool_calls") or []]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    arguments = "".join(call["function"]["arguments"] for call in calls)
    assert orjson.loads(arguments) == {"location": "San Francisco, CA"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def to_events(chunks: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    translator = ChunksToEvents(model="smol")
    events = [event for chunk in chunks for event in translator.feed(chunk)]
    return events + translator.finish()


def test_round_trip_text_keeps_the_documented_event_order() -> None:
    chunks, _ = to_chunks(TEXT_EVENTS)
    events = to_events(chunks)
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(data["type"] == name for name, data in events)
    assert "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta") == "Hello!"
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert events[-2][1]["usage"] == {"input_tokens": 25, "output_tokens": 15}


def test_round_trip_tool_use_with_input_json_delta() -> None:
    chunks, _ = to_chunks(TOOL_EVENTS)
    events = to_events(chunks)
    starts = [d for n, d in events if n == "content_block_start"]
    assert [s["content_block"]["type"] for s in starts] == ["text", "tool_use"]
    assert starts[1]["index"] == 1
    assert starts[1]["content_block"]["id"] == "toolu_01T1x1fJ34qAmk2tNTrN7Up6"
    partial = "".join(d["delta"]["partial_json"] for n, d in events if n == "content_block_delta" and d["index"] == 1)
    assert orjson.loads(partial) == {"location": "San Francisco, CA"}
    stops = [d["index"] for n, d in events if n == "content_block_stop"]
    assert stops == [0, 1]
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_empty_stream_still_frames_a_message() -> None:
    names = [name for name, _ in to_events([])]
    assert names == ["message_start", "message_delta", "message_stop"]


def test_usage_only_chunk_and_cost_reach_message_delta() -> None:
    chunk = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3, "cost_usd": 0.001}}
    events = to_events([{"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "length"}]}, chunk])
    delta = events[-2][1]
    assert delta["usage"] == {"input_tokens": 7, "output_tokens": 3, "cost_usd": 0.001}
    assert delta["delta"]["stop_reason"] == "max_tokens"


def test_without_reported_usage_output_tokens_count_the_deltas() -> None:
    chunks = [{"choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]} for w in ("a", "b", "c")]
    assert to_events(chunks)[-2][1]["usage"] == {"input_tokens": 0, "output_tokens": 3}
