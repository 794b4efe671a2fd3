"""Client and upstream text that ends up in response headers can neither break the answer nor
leak an admission slot (swarm specs and step names in X-Swarm-* too).

The real gateway, one call per model at a time, in front of the upstream process. A ``model``
with a control character is refused with a 400 naming ``model`` on every route, streamed or not;
text outside printable ASCII (a spec, an upstream's model id) is percent-escaped in
``X-Model-Resolution`` / ``X-Model-Routed-To``. After each, nothing is held, and the one slot of
the model still admits the next call.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from tests.support.hostile_upstream import hostile_upstream
from tests.support.lifecycle import wait_idle
from tests.support.procs import RunningProcess
from tests.support.servers import backends_toml, gateway_process

pytestmark = pytest.mark.slow

CHAT = [{"role": "user", "content": "hi"}]
WIDE = "模型-fast"  # an upstream's model id that latin-1 cannot encode


@pytest.fixture(scope="module")
def gateway() -> Iterator[RunningProcess]:
    with (
        hostile_upstream(["ok-a", WIDE, "embed-ok"]) as upstream,
        gateway_process(backends_toml([("hostile", upstream.url)]), env={"MLX_PER_MODEL_INFLIGHT_CAP": "1"}) as proc,
    ):
        yield proc


def next_call_is_admitted(gateway: RunningProcess, model: str = "ok-a") -> None:
    """Nothing held, and with a cap of one call per model the next call still runs."""
    wait_idle(gateway.url)
    for stream in (False, True):
        body = {"model": model, "messages": CHAT, "stream": stream}
        answer = httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=10)
        assert answer.status_code == 200, answer.text
    wait_idle(gateway.url)


ROUTES = [
    pytest.param("/v1/chat/completions", {"messages": CHAT}, True, id="chat"),
    pytest.param("/v1/completions", {"prompt": "hi"}, True, id="completions"),
    pytest.param("/v1/embeddings", {"input": "hi"}, False, id="embeddings"),
    pytest.param("/v1/messages", {"max_tokens": 8, "messages": CHAT}, True, id="messages"),
    pytest.param("/v1/responses", {"input": "hi"}, True, id="responses"),
    pytest.param("/v1/resolve", {"messages": CHAT}, False, id="resolve"),
]


@pytest.mark.parametrize("spec", ["nomatch\n,ok-a", "ok-a\r\nX-Injected: 1", "ok-a\x00", "ok-a\x85"])
@pytest.mark.parametrize(("path", "body", "streams"), ROUTES)
def test_a_control_character_in_model_is_refused_naming_model(
    gateway: RunningProcess, path: str, body: dict[str, Any], streams: bool, spec: str
) -> None:
    for stream in (False, True) if streams else (False,):
        answer = httpx.post(gateway.url + path, json={**body, "model": spec, "stream": stream}, timeout=10)
        assert answer.status_code == 400, answer.text
        assert "x-injected" not in answer.headers
        data = answer.json()
        if path == "/v1/messages":
            assert data["type"] == "error"
            assert "model" in data["error"]["message"]
        else:
            assert data["error"]["param"] == "model"
    next_call_is_admitted(gateway)


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_text_outside_ascii_is_escaped_in_headers(gateway: RunningProcess, stream: bool) -> None:
    spec = "nomatch-ü,ok-a"
    body = {"model": spec, "messages": CHAT, "stream": stream}
    answer = httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    explained = answer.headers["x-model-resolution"]
    assert explained.isascii()
    assert unquote(explained).startswith("nomatch-")
    assert explained.endswith("ok-a via exact id")
    assert answer.headers["x-model-routed-to"] == "hostile/ok-a"
    next_call_is_admitted(gateway)


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_an_upstream_model_id_outside_latin1_cannot_break_the_answer(gateway: RunningProcess, stream: bool) -> None:
    """The id goes into ``X-Model-Routed-To``: a header the server cannot encode used to fail the
    stream's writer after its admission slot was taken, and leave the slot held for good."""
    body = {"model": WIDE, "messages": CHAT, "stream": stream}
    answer = httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    assert unquote(answer.headers["x-model-routed-to"]) == f"hostile/{WIDE}"
    next_call_is_admitted(gateway, WIDE)


SWARMS = [
    pytest.param("/swarm/fanout", {"models": [WIDE, "ok-a"]}, "x-swarm-models", id="fanout-models"),
    pytest.param(
        "/swarm/pipeline", {"steps": [{"name": "a\r\nX-Injected: 1", "model": "ok-a"}]}, "x-swarm-steps", id="steps"
    ),
    pytest.param("/swarm/pipeline", {"steps": [{"name": "ü\x85", "model": "ok-a"}]}, "x-swarm-steps", id="steps-c1"),
]


@pytest.mark.parametrize(("path", "body", "header"), SWARMS)
def test_swarm_headers_escape_what_the_client_named(
    gateway: RunningProcess, path: str, body: dict[str, Any], header: str
) -> None:
    """A swarm echoes step names and the models that answered into ``X-Swarm-*``: escaped, they can
    neither break the answer's head nor add a header of their own."""
    answer = httpx.post(gateway.url + path, json={**body, "messages": CHAT}, timeout=20)
    assert answer.status_code == 200, answer.text
    assert "x-injected" not in answer.headers
    echoed = answer.headers[header]
    assert echoed.isascii(), echoed
    assert echoed.isprintable(), echoed
    assert "%" in echoed
    next_call_is_admitted(gateway)
