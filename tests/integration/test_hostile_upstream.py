"""The real gateway process in front of a hostile upstream (a scripted raw server on a real
socket): answers to stream requests that are no event stream, events that are no JSON, stray
answers on idle keep-alive connections, answers past the size bounds and a gzip bomb. Each fault
ends as the lifecycle note says (a 502 before the first byte, an error event and ``[DONE]`` after
it, never an empty success, never another client's bytes), and afterwards nothing is held."""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.support.hostile import assert_nothing_held, raw_upstream, rss_kib
from tests.support.procs import RunningProcess
from tests.support.raw_http import CLOSE, Pause, RawRequest, RawServer, Step, chunk, head, sized
from tests.support.servers import gateway_process

pytestmark = pytest.mark.slow

MESSAGES = [{"role": "user", "content": "hi"}]
MODELS = [
    "html-page",
    "whole-json",
    "whole-text",
    "bad-event",
    "bad-first-event",
    "error-line",
    "stray",
    "bomb",
    "huge",
]
SECRET = "SECRET meant for another caller"
BOMB_BYTES = 500 << 20  # what the bomb inflates to
LIMIT = 1 << 20  # the gateway's max_answer_bytes and max_decoded_bytes in these tests


def completion(content: str, model: str = "m") -> dict[str, Any]:
    return {
        "id": "cmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


def event(content: str) -> bytes:
    data = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": content}}]}
    return b"data: " + orjson.dumps(data) + b"\n\n"


def sse(body: bytes) -> bytes:
    return sized(body, [("Content-Type", "text/event-stream")])


def json_answer(data: Any) -> bytes:
    return sized(orjson.dumps(data), [("Content-Type", "application/json")])


def make_bomb() -> bytes:
    """``BOMB_BYTES`` of zeros gzipped: about 500 KB on the wire."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1 << 20)
    return b"".join([*(packer.compress(block) for _ in range(BOMB_BYTES >> 20)), packer.flush()])


class Upstream:
    """What the scripted upstream answers, by the request's ``model``."""

    def __init__(self) -> None:
        self.bomb = make_bomb()
        assert len(self.bomb) < 1 << 20

    def __call__(self, request: RawRequest) -> Sequence[Step]:
        target = request.target
        if target.endswith("/models"):
            return [json_answer({"object": "list", "data": [{"id": m, "object": "model"} for m in MODELS]})]
        if target == "/api/tags":
            return [json_answer({"models": [{"name": m} for m in MODELS]})]
        if target == "/api/ps":
            return [json_answer({"models": []})]
        body = orjson.loads(request.body)
        return self.answer(body["model"], bool(body.get("stream")))

    def answer(self, model: str, stream: bool) -> Sequence[Step]:
        if model == "html-page":
            return [sized(b"<html><body>502 Bad Gateway</body></html>", [("Content-Type", "text/html")])]
        if model == "whole-json":
            return [json_answer(completion("a whole answer"))]
        if model == "whole-text":
            text = {
                "id": "t",
                "object": "text_completion",
                "choices": [{"index": 0, "text": "plain", "finish_reason": "stop"}],
            }
            return [json_answer(text)]
        if model == "bad-event":
            return [sse(event("good ") + b"data: <html>oops</html>\n\n" + event("never") + b"data: [DONE]\n\n")]
        if model == "bad-first-event":
            return [sse(b"data: Internal Server Error\n\n" + b"data: [DONE]\n\n")]
        if model == "error-line":
            return [sse(event("half ") + b'error: {"message":"the model crashed"}\n\n')]
        if model == "stray":
            answer = sse(event("ok") + b"data: [DONE]\n\n") if stream else json_answer(completion("ok"))
            return [answer, Pause(0.03), json_answer(completion(SECRET))]
        if model == "bomb":
            kind = "text/event-stream" if stream else "application/json"
            return [sized(self.bomb, [("Content-Type", kind), ("Content-Encoding", "gzip")])]
        if model == "huge":
            if stream:
                pieces = [chunk(event("x" * 1000)) for _ in range(2 * LIMIT // 1000)]
                return [
                    head(headers=[("Content-Type", "text/event-stream"), ("Transfer-Encoding", "chunked")]),
                    *pieces,
                ]
            return [json_answer(completion("x" * 2 * LIMIT))]
        return [sized(b"unknown model"), CLOSE]


@pytest.fixture(scope="module", params=["openai", "ollama"])
def stack(request: pytest.FixtureRequest) -> Iterator[tuple[RunningProcess, RawServer]]:
    with raw_upstream(Upstream()) as upstream:
        url = upstream.url + ("/v1" if request.param == "openai" else "")
        toml = "[observability]\nmetrics_public = true\n"
        toml += f'[[backends]]\nname = "raw"\ntype = "{request.param}"\nurl = "{url}"\n'
        env = {"LATTICE_UPSTREAM_MAX_ANSWER_BYTES": str(LIMIT), "LATTICE_UPSTREAM_MAX_DECODED_BYTES": str(LIMIT)}
        with gateway_process(toml, env=env) as gateway:
            yield gateway, upstream


@pytest.fixture
def gateway(stack: tuple[RunningProcess, RawServer]) -> Iterator[RunningProcess]:
    yield stack[0]
    assert_nothing_held(stack[0])


def post(gateway: RunningProcess, model: str, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": MESSAGES, **extra}
    return httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=30)


def stream_events(gateway: RunningProcess, model: str, **extra: Any) -> tuple[int, list[str]]:
    body = {"model": model, "messages": MESSAGES, "stream": True, **extra}
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body, timeout=30) as response:
        if response.status_code != 200:
            response.read()
            return response.status_code, [response.text]
        return 200, [line[6:] for line in response.iter_lines() if line.startswith("data: ")]


# -- a stream request answered with no event stream ------------------------------------------------


@pytest.mark.parametrize("model", ["html-page", "bad-first-event"])
def test_a_stream_answered_with_no_events_is_a_502_before_the_first_byte(gateway: RunningProcess, model: str) -> None:
    status, events = stream_events(gateway, model)
    assert status == 502
    error = orjson.loads(events[0])["error"]
    assert error["code"] == "upstream_bad_stream"
    assert "[DONE]" not in events[0]


def test_a_whole_json_completion_to_a_stream_request_is_streamed_as_chunks(gateway: RunningProcess) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0)
    chunks = list(client.chat.completions.create(model="whole-json", messages=MESSAGES, stream=True))  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "a whole answer"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    with_usage = list(
        client.chat.completions.create(
            model="whole-json",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},  # type: ignore[arg-type]
        )
    )
    assert with_usage[-1].usage is not None
    assert with_usage[-1].usage.completion_tokens == 2


def test_a_whole_text_completion_to_a_stream_request_is_one_chunk(gateway: RunningProcess) -> None:
    body = {"model": "whole-text", "prompt": "hi", "stream": True}
    with httpx.stream("POST", gateway.url + "/v1/completions", json=body, timeout=30) as response:
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert response.status_code == 200
    assert orjson.loads(events[0])["choices"][0]["text"] == "plain"
    assert events[-1] == "[DONE]"


@pytest.mark.parametrize(("model", "shown"), [("bad-event", "good "), ("error-line", "half ")])
def test_a_bad_event_after_the_first_ends_the_stream_with_an_error_event(
    gateway: RunningProcess, model: str, shown: str
) -> None:
    status, events = stream_events(gateway, model)
    assert status == 200
    assert orjson.loads(events[0])["choices"][0]["delta"]["content"] == shown
    assert "error" in orjson.loads(events[-2])
    assert events[-1] == "[DONE]"
    assert len(events) == 3  # the first event, the error, [DONE]: nothing of the rest forwarded


# -- stray answers on idle connections ---------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_stray_answer_on_an_idle_upstream_connection_never_reaches_another_client(
    gateway: RunningProcess, stream: bool
) -> None:
    answers = []
    for _ in range(5):
        if stream:
            status, events = stream_events(gateway, "stray")
            answers.append((status, "".join(events)))
        else:
            response = post(gateway, "stray")
            answers.append((response.status_code, response.text))
        time.sleep(0.1)  # the stray answer arrives while the connection is idle in the pool
    assert all(status == 200 for status, _ in answers), answers
    assert not any(SECRET in text for _, text in answers), answers
    assert all('"ok"' in text for _, text in answers), answers


# -- answers past the bounds ---------------------------------------------------------------------------


def test_an_answer_past_max_answer_bytes_is_a_502(gateway: RunningProcess) -> None:
    response = post(gateway, "huge")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_answer_too_large"
    status, events = stream_events(gateway, "huge")
    assert status == 200  # its first events went out before the bound was reached
    assert orjson.loads(events[-2])["error"]["code"] == "upstream_answer_too_large"
    assert events[-1] == "[DONE]"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_gzip_bomb_is_a_502_and_the_gateway_memory_stays_flat(gateway: RunningProcess, stream: bool) -> None:
    _, peak_before = rss_kib(gateway.proc.pid)
    if stream:
        status, events = stream_events(gateway, "bomb")
        assert status == 502
        error = orjson.loads(events[0])["error"]
    else:
        response = post(gateway, "bomb")
        assert response.status_code == 502
        error = response.json()["error"]
    assert error["code"] == "upstream_answer_too_large"
    _, peak_after = rss_kib(gateway.proc.pid)
    assert peak_after - peak_before < 32 * 1024, (peak_before, peak_after)  # KiB; inflated whole it is 500 MiB
    assert post(gateway, "whole-json").status_code == 200
