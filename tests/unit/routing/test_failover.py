"""Failover over resolved candidates and backend cool-downs, at the gateway layer with fakes."""

from __future__ import annotations

import orjson
import pytest

from local_lattice.backends.fake import FakeBackend
from local_lattice.config import load
from local_lattice.errors import BackendUnavailable, UpstreamError, UpstreamStatusError
from local_lattice.gateway import Gateway


def gateway(*backends: FakeBackend, env: dict[str, str] | None = None) -> Gateway:
    return Gateway(load(None, env or {"ON_MODEL_MISS": "error"}), {b.name: b for b in backends})


def content(answer: bytes) -> str:
    return str(orjson.loads(answer)["choices"][0]["message"]["content"])


@pytest.mark.parametrize(
    "failure",
    [
        BackendUnavailable("refused", backend="a"),
        BackendUnavailable("busy", backend="a", code="upstream_429"),
        UpstreamError("boom", backend="a", code="upstream_500"),
        UpstreamStatusError("overloaded", status=503, backend="a"),
    ],
)
async def test_a_failure_before_the_first_byte_goes_to_the_next_candidate(failure: Exception) -> None:
    first = FakeBackend.with_models("a", "coder-big", fail_with=failure)  # type: ignore[arg-type]
    second = FakeBackend.with_models("b", "coder-small", reply="from b")
    gw = gateway(first, second)
    routed = await gw.route("chat", "coder-big,coder-small")
    body = {"model": "coder-big,coder-small", "messages": [{"role": "user", "content": "hi"}]}
    routed, answer = await gw.complete(routed, "chat", body)
    assert routed.routed_to == "b/coder-small"
    assert content(answer.content) == "from b"
    assert "a/coder-big failed" in routed.resolution.explanation
    assert first.seen[0].model == "coder-big"
    assert second.seen[0].body["max_tokens"] == 1024  # profile defaults applied per attempt
    assert "model" not in body or body["model"] == "coder-big,coder-small"  # the caller's body is untouched
    assert gw.tracker.in_flight == {"a": 0, "b": 0}


async def test_client_errors_do_not_fail_over() -> None:
    first = FakeBackend.with_models("a", "m1", fail_with=UpstreamStatusError("bad", status=400, backend="a"))
    second = FakeBackend.with_models("b", "m2")
    gw = gateway(first, second)
    with pytest.raises(UpstreamStatusError):
        await gw.complete(await gw.route("chat", "m1,m2"), "chat", {"messages": []})
    assert second.seen == []


async def test_attempts_are_bounded_and_the_last_error_carries_the_story() -> None:
    backends = [
        FakeBackend.with_models(n, f"m-{n}", fail_with=UpstreamError("x", backend=n, code="upstream_500"))
        for n in "abcd"
    ]
    gw = gateway(*backends)
    with pytest.raises(UpstreamError) as caught:
        await gw.complete(await gw.route("chat", "m-a,m-b,m-c,m-d"), "chat", {"messages": []})
    assert [len(b.seen) for b in backends] == [1, 1, 1, 0]
    assert "m-c failed" in caught.value.headers["X-Model-Resolution"]


async def test_stream_fails_over_before_the_first_chunk() -> None:
    first = FakeBackend.with_models("a", "m1", fail_with=BackendUnavailable("refused", backend="a"))
    second = FakeBackend.with_models("b", "m2", reply="streamed words")
    gw = gateway(first, second)
    routed, chunk, rest = await gw.stream(await gw.route("chat", "m1,m2"), "chat", {"messages": []})
    assert routed.routed_to == "b/m2"
    assert chunk is not None
    assert gw.tracker.in_flight["b"] == 1
    chunks = [c async for c in rest]
    assert len(chunks) == 2
    assert gw.tracker.in_flight["b"] == 0
    assert first.closed_streams == 1


async def test_a_backend_that_keeps_failing_cools_down_and_a_probe_readmits_it() -> None:
    now = [1000.0]
    flaky = FakeBackend.with_models("a", "first", fail_with=UpstreamError("x", backend="a", code="upstream_500"))
    steady = FakeBackend.with_models("b", "second", reply="steady")
    gw = gateway(flaky, steady)
    gw.tracker.clock = lambda: now[0]
    for _ in range(3):
        routed, _ = await gw.complete(await gw.route("chat", "first,second"), "chat", {"messages": []})
        assert routed.routed_to == "b/second"
    assert gw.tracker.cooling("a")
    routed = await gw.route("chat", "first,second")
    assert [m.backend for m in routed.resolution.candidates] == ["b"]
    assert "skipped cooling-down backends: a" in routed.resolution.explanation
    # The cool-down ends but the probe fails: another cool-down.
    flaky.healthy = False
    now[0] += 31
    await gw.route("chat", "first,second")
    assert gw.tracker.cooling("a")
    # It recovers: the next probe re-admits it.
    flaky.healthy, flaky.fail_with = True, None
    now[0] += 31
    routed = await gw.route("chat", "first,second")
    assert not gw.tracker.cooling("a")
    assert {m.backend for m in routed.resolution.candidates} == {"a", "b"}
