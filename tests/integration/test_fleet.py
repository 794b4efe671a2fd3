"""Fleet routing over real processes: the gateway (``lattice serve``) in front of two scripted
upstream processes serving one model id, driven with the official ``openai`` client and httpx.

Sessions stay on one backend and the fleet uses both; ``user`` and a shared conversation start stick
the same way; killing a session's backend moves it and it stays moved when the backend is back; with
one upstream 2 s slow, hedging at 300 ms keeps every request under 1.2 s and closes every call to the
slow one, leaving no admission slot or in-flight count behind."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.support.fleet_upstream import FLEET_MODEL, calls_of, fleet_upstream
from tests.support.procs import RunningProcess
from tests.support.servers import gateway_process
from tests.support.sessions import home_of, sessions_homed_on

pytestmark = pytest.mark.slow

NAMES = ["alpha", "beta"]
SYSTEM = {"role": "system", "content": "You are a coding agent. Follow the plan."}


def fleet_toml(alpha: RunningProcess, beta: RunningProcess, routing: str = "", checks: float = 0.5) -> str:
    backends = "".join(
        f'[[backends]]\nname = "{name}"\ntype = "openai"\nurl = "{member.url}"\nmodel_list_ttl = 0.5\n\n'
        for name, member in (("alpha", alpha), ("beta", beta))
    )
    return backends + f"[routing]\nhealth_check_seconds = {checks}\ncooldown_seconds = 1.0\n" + routing


def client(gateway: RunningProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=30)


def conversation(task: str, turns: int) -> list[dict[str, str]]:
    messages = [SYSTEM, {"role": "user", "content": task}]
    for i in range(turns):
        messages += [{"role": "assistant", "content": f"step {i} done"}, {"role": "user", "content": f"next {i}"}]
    return messages


def chat(api: openai.OpenAI, messages: list[dict[str, str]], **kw: Any) -> tuple[str, str, str]:
    """(who answered, X-Model-Routed-To, X-Model-Resolution)."""
    raw = api.chat.completions.with_raw_response.create(model=FLEET_MODEL, messages=messages, **kw)
    text = raw.parse().choices[0].message.content or ""
    return text.removeprefix("from "), raw.headers["x-model-routed-to"], raw.headers.get("x-model-resolution", "")


def metric(gateway: RunningProcess, prefix: str) -> float:
    lines = httpx.get(gateway.url + "/metrics", timeout=10).text.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(prefix))


def assert_nothing_held(gateway: RunningProcess) -> None:
    health = httpx.get(gateway.url + "/healthz", timeout=10).json()
    assert health["admission"]["inflight"] == 0
    assert health["admission"]["waiting"] == 0
    assert metric(gateway, "lattice_backend_outstanding{") == 0


def wait_until_routed(gateway: RunningProcess, session: str, backend: str, within: float = 20.0) -> None:
    """Until ``/v1/resolve`` (which remembers nothing) would send ``session`` to ``backend``."""
    body = {"model": FLEET_MODEL, "messages": conversation(session, 0)}
    deadline = time.monotonic() + within
    chosen = None
    while time.monotonic() < deadline:
        plan = httpx.post(gateway.url + "/v1/resolve", json=body, headers={"X-Session-Id": session}, timeout=10)
        chosen = plan.json()["candidates"][0]["backend"]
        if chosen == backend:
            return
        time.sleep(0.2)
    raise AssertionError(f"{session} still goes to {chosen}")


@pytest.fixture(scope="module")
def fleet() -> Iterator[tuple[RunningProcess, RunningProcess]]:
    with fleet_upstream("alpha") as alpha, fleet_upstream("beta", owned_by="llamacpp") as beta:
        yield alpha, beta


def test_sessions_stay_on_one_backend_and_both_are_used(fleet: tuple[RunningProcess, RunningProcess]) -> None:
    with gateway_process(fleet_toml(*fleet)) as gateway:
        api = client(gateway)
        placed: dict[str, set[str]] = {}
        for turn in range(4):
            for i in range(10):
                session = f"session-{i}"
                who, routed, why = chat(
                    api, conversation(f"task {i}", turn), max_tokens=8, extra_headers={"X-Session-Id": session}
                )
                assert routed == f"{who}/{FLEET_MODEL}"
                assert "by affinity (x-session-id, " + ("new)" if turn == 0 else "hit)") in why
                placed.setdefault(session, set()).add(who)
        assert all(len(backends) == 1 for backends in placed.values()), placed
        assert set().union(*placed.values()) == {"alpha", "beta"}
        assert all(placed[s] == {home_of(s, NAMES)} for s in placed)
        assert (
            metric(gateway, 'lattice_affinity_total{backend="alpha",outcome="hit"}')
            + metric(gateway, 'lattice_affinity_total{backend="beta",outcome="hit"}')
            == 30
        )
        # beta names itself llama.cpp in its model list: it is told to keep the prompt cached.
        beta_bodies = calls_of(fleet[1])["bodies"]
        assert beta_bodies
        assert all(body["cache_prompt"] is True for body in beta_bodies)
        assert not any("cache_prompt" in body for body in calls_of(fleet[0])["bodies"])
        assert_nothing_held(gateway)


def test_user_and_a_shared_conversation_start_stick_the_same_way(
    fleet: tuple[RunningProcess, RunningProcess],
) -> None:
    with gateway_process(fleet_toml(*fleet)) as gateway:
        api = client(gateway)
        by_user: dict[str, set[str]] = {}
        by_start: dict[str, set[str]] = {}
        for turn in range(4):
            for i in range(8):
                who, _, why = chat(api, conversation("shared task", turn), max_tokens=8, user=f"user-{i}")
                assert "by affinity (user, " in why
                by_user.setdefault(f"user-{i}", set()).add(who)
                who, _, why = chat(api, conversation(f"task {i}", turn), max_tokens=8)
                assert "by affinity (prefix, " in why
                by_start.setdefault(f"task {i}", set()).add(who)
        for placed in (by_user, by_start):
            assert all(len(backends) == 1 for backends in placed.values()), placed
            assert set().union(*placed.values()) == {"alpha", "beta"}


def test_killing_a_sessions_backend_moves_it_and_it_stays(fleet: tuple[RunningProcess, RunningProcess]) -> None:
    _, beta = fleet
    with fleet_upstream("doomed") as doomed:
        port = doomed.url.rsplit(":", 1)[1].split("/")[0]
        with gateway_process(fleet_toml(doomed, beta)) as gateway:
            api = client(gateway)
            on_doomed = sessions_homed_on("alpha", NAMES, count=3)
            on_beta = sessions_homed_on("beta", NAMES, count=2)
            for session in on_doomed + on_beta:
                who, _, _ = chat(api, conversation(session, 0), max_tokens=8, extra_headers={"X-Session-Id": session})
                assert who == ("doomed" if session in on_doomed else "beta")
            doomed.proc.kill()
            doomed.proc.wait(timeout=10)
            for turn in range(1, 4):
                for session in on_doomed + on_beta:
                    who, _, _ = chat(
                        api, conversation(session, turn), max_tokens=8, extra_headers={"X-Session-Id": session}
                    )
                    assert who == "beta"
            assert metric(gateway, 'lattice_affinity_total{backend="beta",outcome="moved"}') >= 3
            # The backend comes back on its port: moved sessions stay, a new session homed there goes there.
            with fleet_upstream("reborn", port=int(port)):
                [fresh] = sessions_homed_on("alpha", NAMES, prefix="fresh")
                wait_until_routed(gateway, fresh, "alpha")  # a dry run: it places nothing
                who, _, _ = chat(api, conversation(fresh, 0), max_tokens=8, extra_headers={"X-Session-Id": fresh})
                assert who == "reborn"
                for session in on_doomed:
                    who, _, why = chat(
                        api, conversation(session, 4), max_tokens=8, extra_headers={"X-Session-Id": session}
                    )
                    assert (who, why.endswith("(x-session-id, hit)")) == ("beta", True)
            assert_nothing_held(gateway)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_hedging_keeps_requests_fast_and_closes_every_call_to_the_slow_server(stream: bool) -> None:
    with fleet_upstream("slow", delay=2.0) as slow, fleet_upstream("fast") as fast:
        toml = fleet_toml(slow, fast, routing="hedge_after_ms = 300\n")
        with gateway_process(toml) as gateway:
            api = client(gateway)
            sessions = sessions_homed_on("alpha", NAMES, count=5) + sessions_homed_on("beta", NAMES, count=5)
            # The gateway's first request also fetches every model list; it is not one of the ten.
            [warm] = sessions_homed_on("beta", NAMES, prefix="warm")
            assert chat(api, conversation(warm, 0), extra_headers={"X-Session-Id": warm})[0] == "fast"
            took = []
            for session in sessions:
                started = time.monotonic()
                if stream:
                    chunks = api.chat.completions.create(
                        model=FLEET_MODEL, messages=conversation(session, 0), stream=True,
                        extra_headers={"X-Session-Id": session},
                    )  # fmt: skip
                    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
                    assert text == "from fast"
                else:
                    who, _, why = chat(api, conversation(session, 0), extra_headers={"X-Session-Id": session})
                    assert who == "fast"
                    if home_of(session, NAMES) == "alpha":
                        assert "hedged to beta after 300 ms, it answered first" in why
                took.append(time.monotonic() - started)
            assert max(took) < 1.2, took
            deadline = time.monotonic() + 5
            while calls_of(slow)["hung_up"] < 5 and time.monotonic() < deadline:
                time.sleep(0.05)  # the slow server sees the hang-up a moment after the gateway closed
            record = calls_of(slow)
            assert record["started"] == 5
            assert record["hung_up"] == 5
            assert record["finished"] == 0
            assert calls_of(fast)["started"] == 11
            assert metric(gateway, 'lattice_hedges_started_total{backend="beta"}') == 5
            assert metric(gateway, 'lattice_hedges_won_total{backend="beta"}') == 5
            assert_nothing_held(gateway)


def test_the_request_header_turns_hedging_on_and_a_bad_value_is_a_400() -> None:
    with (
        fleet_upstream("slow", delay=1.5) as slow,
        fleet_upstream("fast") as fast,
        gateway_process(fleet_toml(slow, fast)) as gateway,
    ):
        api = client(gateway)
        [session] = sessions_homed_on("alpha", NAMES)
        started = time.monotonic()
        who, _, _ = chat(
            api, conversation(session, 0), extra_headers={"X-Session-Id": session, "X-Lattice-Hedge-Ms": "200"}
        )
        assert (who, time.monotonic() - started < 1.2) == ("fast", True)
        with pytest.raises(openai.BadRequestError) as caught:
            chat(api, conversation(session, 0), extra_headers={"X-Lattice-Hedge-Ms": "soon"})
        error = caught.value.body
        assert isinstance(error, dict)
        assert error["param"] == "X-Lattice-Hedge-Ms"
        started = time.monotonic()
        assert chat(api, conversation(session, 0), extra_headers={"X-Session-Id": session})[0] == "slow"
        assert time.monotonic() - started >= 1.5  # hedging is off without the header
        assert_nothing_held(gateway)


def test_a_busy_server_that_lists_models_only_between_calls_is_not_ejected() -> None:
    with (
        fleet_upstream("busy", delay=2.0, busy_list=True) as busy,
        fleet_upstream("other") as other,
        gateway_process(fleet_toml(busy, other, checks=0.3)) as gateway,
    ):
        api = client(gateway)
        [session] = sessions_homed_on("alpha", NAMES)
        for turn in range(2):  # each call keeps the busy server's model list waiting for 2 s
            who, _, why = chat(api, conversation(session, turn), extra_headers={"X-Session-Id": session})
            assert who == "busy"
            assert "failed over" not in why
        assert "failed its health check" not in gateway.log()
        # Idle and gone is another matter: the check ejects it.
        busy.proc.kill()
        busy.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while "backend alpha failed its health check" not in gateway.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "backend alpha failed its health check" in gateway.log()
        assert chat(api, conversation(session, 2), extra_headers={"X-Session-Id": session})[0] == "other"
        assert_nothing_held(gateway)


async def test_a_busy_servers_late_model_list_keeps_it_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    from local_lattice.backends import openai_compat
    from local_lattice.backends.openai_compat import OpenAIBackend
    from local_lattice.config import BackendConfig
    from local_lattice.errors import UpstreamError
    from local_lattice.types import BackendRequest

    monkeypatch.setattr(openai_compat, "LIST_TIMEOUT", 0.3)
    with fleet_upstream("busy", delay=2.0, busy_list=True) as busy:
        backend = OpenAIBackend(BackendConfig.model_validate({"name": "b", "url": busy.url, "model_list_ttl": 0}))
        try:
            listed = await backend.models()
            assert [m.id for m in listed] == [FLEET_MODEL]
            body = {"messages": [{"role": "user", "content": "hi"}]}
            call = asyncio.ensure_future(backend.complete(BackendRequest("chat", FLEET_MODEL, body)))
            await asyncio.sleep(0.3)
            started = time.monotonic()
            assert await backend.models() == listed  # the list is late while the call runs: kept
            assert time.monotonic() - started >= 0.25
            assert b"from busy" in (await call).content
            assert await backend.models() == listed  # answered again once idle
            await backend.aclose()
            # A server that does not answer while this gateway has no call on it is another matter.
            stalled = OpenAIBackend(BackendConfig.model_validate({"name": "s", "url": busy.url, "model_list_ttl": 0}))
            await stalled.models()
            other = asyncio.ensure_future(backend.complete(BackendRequest("chat", FLEET_MODEL, body)))
            await asyncio.sleep(0.3)
            with pytest.raises(UpstreamError) as caught:
                await stalled.models()
            assert caught.value.code == "upstream_timeout"
            await other
            await stalled.aclose()
        finally:
            await backend.aclose()
