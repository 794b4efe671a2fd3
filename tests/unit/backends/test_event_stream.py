"""How an upstream's answer to a stream request becomes chunks (``backends/event_stream.py``)."""

from __future__ import annotations

import orjson
import pytest

from local_lattice.backends.event_stream import EventStream
from local_lattice.errors import UpstreamError
from local_lattice.security.redact import Redactor


def reader(wants_usage: bool = False) -> EventStream:
    return EventStream("up", Redactor(["sk-secret-key-123"]), wants_usage)


def lines(text: bytes) -> list[bytes]:
    return [line + b"\n" for line in text.split(b"\n")]


def test_events_become_chunks_marked_as_arriving_together() -> None:
    events = reader()
    chunks = events.feed(lines(b'data: {"a":1}\n\ndata: {"b":2,"usage":{"prompt_tokens":3,"completion_tokens":4}}\n'))
    assert [c.payload for c in chunks] == [b'{"a":1}', b'{"b":2,"usage":{"prompt_tokens":3,"completion_tokens":4}}']
    assert [c.more for c in chunks] == [True, False]
    assert chunks[1].usage is not None
    assert chunks[1].usage.completion_tokens == 4
    assert [c.more for c in events.feed(lines(b'data: {"c":3}\n\ndata: [DONE]'))] == [True]
    assert events.done
    assert events.end() == []


def test_comments_ids_and_unknown_fields_are_skipped() -> None:
    events = reader()
    chunks = events.feed(lines(b': keep-alive\n\nid: 7\nretry: 100\nevent: message\nnoise\ndata: {"a":1}\n'))
    assert [c.payload for c in chunks] == [b'{"a":1}']


@pytest.mark.parametrize(
    "first",
    [b"<html><body>Bad Gateway</body></html>", b"Internal Server Error", b"\x00\x01binary"],
)
def test_an_answer_that_is_neither_events_nor_json_is_refused_at_once(first: bytes) -> None:
    with pytest.raises(UpstreamError, match="neither an event stream nor JSON") as info:
        reader().feed(lines(b"\n" + first))
    assert info.value.code == "upstream_bad_stream"


@pytest.mark.parametrize("payload", [b"<html>oops</html>", b"{not json}", b"42", b'"text"', b"[1,2]"])
def test_a_data_payload_that_is_not_a_json_object_ends_the_stream(payload: bytes) -> None:
    events = reader()
    chunks = events.feed(lines(b'data: {"good":1}\n\ndata: ' + payload + b'\n\ndata: {"never":1}'))
    assert [c.payload for c in chunks] == [b'{"good":1}']
    assert chunks[0].more  # the error event follows at once
    assert events.done
    with pytest.raises(UpstreamError, match="not a JSON object"):
        events.end()


@pytest.mark.parametrize(
    "text",
    [
        b'data: {"error":{"message":"boom sk-secret-key-123"}}',
        b'error: {"message":"boom sk-secret-key-123"}',
        b'event: error\ndata: {"message":"boom sk-secret-key-123"}',
    ],
    ids=["error-object", "error-line", "error-event"],
)
def test_an_error_in_the_stream_ends_it_with_the_upstream_message_masked(text: bytes) -> None:
    events = reader()
    assert events.feed(lines(text)) == []
    with pytest.raises(UpstreamError, match="failed mid-stream: boom") as info:
        events.end()
    assert "sk-secret-key-123" not in info.value.message


def test_an_event_stream_without_a_single_event_is_an_error() -> None:
    events = reader()
    events.feed(lines(b": just a comment\n"))
    with pytest.raises(UpstreamError, match="without sending an event"):
        events.end()


def completion(**extra: object) -> bytes:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        "reasoning_content": "thought",
    }
    data = {
        "id": "x",
        "object": "chat.completion",
        "created": 5,
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 3},
        **extra,
    }
    return orjson.dumps(data, option=orjson.OPT_INDENT_2)


def test_a_whole_chat_completion_becomes_one_chunk_per_choice() -> None:
    events = reader()
    assert events.feed(lines(completion())) == []
    chunks = events.end()
    assert len(chunks) == 1
    data = orjson.loads(chunks[0].payload)
    assert data["object"] == "chat.completion.chunk"
    assert (data["id"], data["model"], data["created"]) == ("x", "m", 5)
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["delta"]["reasoning_content"] == "thought"  # vendor fields pass through
    assert choice["delta"]["tool_calls"][0]["index"] == 0
    assert "usage" not in data
    assert chunks[0].usage is not None
    assert chunks[0].usage.completion_tokens == 3
    assert not chunks[0].more


def test_a_whole_completion_shows_usage_when_the_client_asked() -> None:
    events = reader(wants_usage=True)
    events.feed(lines(completion()))
    chunks = events.end()
    assert [c.more for c in chunks] == [True, False]
    last = orjson.loads(chunks[1].payload)
    assert last["choices"] == []
    assert last["usage"]["completion_tokens"] == 3


def test_a_whole_text_completion_is_one_chunk_of_the_same_shape() -> None:
    events = reader()
    events.feed([b'{"object":"text_completion","choices":[{"index":0,"text":"hi","finish_reason":"stop"}]}'])
    (chunk,) = events.end()
    assert orjson.loads(chunk.payload)["choices"][0]["text"] == "hi"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error":{"message":"quota"}}', "failed mid-stream: quota"),
        (b'{"choices":"nope"}', "unexpected JSON shape"),
        (b"{truncated", "not JSON"),
    ],
)
def test_a_whole_answer_that_is_no_completion_is_an_error(body: bytes, message: str) -> None:
    events = reader()
    events.feed([body])
    with pytest.raises(UpstreamError, match=message):
        events.end()
