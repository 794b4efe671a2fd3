"""The OpenAI-compatible backend over a ``FakeUpstream``: what it sends, how it reads answers, and
how the transport's failures become ours (with their cause kept) — no sockets."""

from __future__ import annotations

import orjson
import pytest

from local_lattice.backends.http1 import AnswerTooLarge, ConnectFailed, Disconnected, ProtocolFailure
from local_lattice.backends.openai_compat import OpenAIBackend
from local_lattice.config import BackendConfig
from local_lattice.errors import BackendUnavailable, LatticeError, UpstreamError
from local_lattice.types import BackendRequest
from tests.support.fake_upstream import FakeAnswer, FakeUpstream

CHAT = BackendRequest("chat", "m", {"messages": [{"role": "user", "content": "hi"}], "top_p": None})
COMPLETION = {"object": "chat.completion", "choices": [{"index": 0, "message": {"content": "ok"}}]}


def backend(upstream: FakeUpstream, **config: object) -> OpenAIBackend:
    made = OpenAIBackend(BackendConfig(name="up", url="http://127.0.0.1:9/v1", api_key="upstream-key-123456", **config))
    made.use_upstream(upstream)
    return made


async def test_a_whole_call_sends_the_body_with_the_time_limit_and_reads_the_answer() -> None:
    upstream = FakeUpstream(
        lambda *_: FakeAnswer(pieces=[orjson.dumps({**COMPLETION, "usage": {"completion_tokens": 2}})])
    )
    answer = await backend(upstream, timeout=7.0).complete(CHAT)
    method, path, body, within = upstream.requests[0]
    assert (method, path, within) == ("POST", "/v1/chat/completions", 7.0)
    assert orjson.loads(body) == {"messages": [{"role": "user", "content": "hi"}], "model": "m"}
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 2


async def test_a_stream_reads_events_split_across_pieces_and_closes_the_answer() -> None:
    pieces = [b'data: {"choices":[{"delta":{"content":"a"}}]}\n\nda', b'ta: {"choices":[]}\n\ndata: [DONE]\n\n']
    upstream = FakeUpstream(lambda *_: FakeAnswer(pieces=pieces))
    chunks = [chunk async for chunk in backend(upstream).stream(CHAT)]
    assert [c.payload for c in chunks] == [b'{"choices":[{"delta":{"content":"a"}}]}', b'{"choices":[]}']
    assert upstream.answers[0].closed
    assert orjson.loads(upstream.requests[0][2])["stream"] is True


@pytest.mark.parametrize(
    ("failure", "ours", "code"),
    [
        (ConnectFailed("refused"), BackendUnavailable, "backend_unavailable"),
        (Disconnected("gone", answering=True), UpstreamError, "bad_gateway"),
        (TimeoutError("late"), UpstreamError, "upstream_timeout"),
        (AnswerTooLarge("big"), UpstreamError, "upstream_answer_too_large"),
        (ProtocolFailure("garbled"), UpstreamError, "bad_gateway"),
    ],
)
async def test_transport_failures_become_ours_with_their_cause(
    failure: Exception, ours: type[LatticeError], code: str
) -> None:
    def fail(*_: object) -> FakeAnswer:
        raise failure

    with pytest.raises(ours) as info:
        await backend(FakeUpstream(fail)).complete(CHAT)
    assert info.value.code == code
    assert info.value.__cause__ is failure
    with pytest.raises(ours) as streamed:
        [chunk async for chunk in backend(FakeUpstream(fail)).stream(CHAT)]
    assert streamed.value.__cause__ is failure


async def test_an_upstream_error_status_keeps_its_message_with_the_key_masked() -> None:
    error = orjson.dumps({"error": {"message": "bad key upstream-key-123456"}})
    upstream = FakeUpstream(lambda *_: FakeAnswer(status=401, pieces=[error]))
    with pytest.raises(UpstreamError) as info:
        await backend(upstream).complete(CHAT)
    assert info.value.status == 401
    assert "upstream-key-123456" not in info.value.message


async def test_aclose_closes_the_transport() -> None:
    upstream = FakeUpstream(lambda *_: FakeAnswer())
    made = backend(upstream)
    await made.aclose()
    assert upstream.closed
