"""The README's first command, on a clean machine: ``lattice serve`` with no config serves the
embedded SmolLM2-135M-Instruct in-process (llama.cpp), and everything a new user tries next works
against it — roles on a one-model setup, the demo, the CLI's view of the inventory, truthful
truncation on every surface, counters that return to zero, ``lattice ps``. A real gateway process,
the real model, the official ``openai`` and ``anthropic`` clients."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.models import SMOLLM2_ID
from tests.support.procs import RunningProcess, free_port
from tests.support.servers import LATTICE, clean_machine_env, default_gateway

pytestmark = pytest.mark.slow

ASK = [{"role": "user", "content": "Tell me a long story about a dragon."}]
ROUTED = f"llamacpp/{SMOLLM2_ID}"


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clean-machine")


@pytest.fixture(scope="module")
def gateway(machine: Path) -> Iterator[RunningProcess]:
    with default_gateway(machine) as proc:
        yield proc


def lattice(machine: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "COLUMNS": "200", **clean_machine_env(machine)}
    return subprocess.run([LATTICE, *args], capture_output=True, text=True, timeout=timeout, env=env)


def client(gateway: RunningProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=300)


def test_serves_the_embedded_model(gateway: RunningProcess) -> None:
    models = httpx.get(gateway.url + "/v1/models").json()["data"]
    assert [(m["id"], m["owned_by"]) for m in models] == [(SMOLLM2_ID, "llamacpp")]
    assert f"listening   {gateway.url}" in gateway.log()


@pytest.mark.parametrize("role", ["role:coder", "role:fast", "role:reasoner"])
def test_roles_answer_on_one_model_and_say_how(gateway: RunningProcess, role: str) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(model=role, messages=ASK, max_tokens=8)
    assert raw.status_code == 200
    assert raw.headers["x-model-routed-to"] == ROUTED
    why = raw.headers["x-model-resolution"]
    assert why.startswith(f"fallback (requested '{role}', not present) -> {SMOLLM2_ID}")
    assert raw.parse().choices[0].message.content


def test_the_demo_runs(gateway: RunningProcess, machine: Path) -> None:
    shown = lattice(machine, "demo", "--url", gateway.url, "--max-tokens", "16")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    out = shown.stdout
    assert f"role:fast    → {ROUTED}" in out
    assert f"role:coder   → {ROUTED}" in out
    assert f"winner {SMOLLM2_ID}" in out
    assert out.count(f"→ {ROUTED}: ok") == 2  # both candidates answered


def test_a_vote_is_judged_by_the_default_judge(gateway: RunningProcess) -> None:
    body = {"models": ["role:fast", "role:coder"], "messages": ASK, "max_tokens": 8}
    reply = httpx.post(gateway.url + "/swarm/vote", json=body, timeout=300)
    assert reply.status_code == 200
    swarm = reply.json()["swarm"]
    assert swarm["judge"]["model"] == SMOLLM2_ID  # role:reasoner resolved: the judge ran
    assert swarm["judge"]["raw"]
    assert [c["routed_to"] for c in swarm["candidates"]] == [ROUTED, ROUTED]
    assert reply.json()["choices"][0]["finish_reason"] == "length"  # 8 tokens of a long story


def test_models_doctor_and_init_see_what_the_server_serves(gateway: RunningProcess, machine: Path) -> None:
    listing = lattice(machine, "models")
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if SMOLLM2_ID in line)
    assert "llamacpp" in row
    doctor = lattice(machine, "doctor", "--port", str(free_port()))
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "no problems found" in doctor.stderr + doctor.stdout
    assert "in-process llama.cpp: 1 models" in doctor.stdout
    init = lattice(machine, "init", "--dry-run")
    assert init.returncode == 0, init.stdout + init.stderr
    assert f'"{SMOLLM2_ID}"' in init.stdout
    assert '"fast"' in init.stdout


def finishes(text: str) -> list[str]:
    import orjson

    chunks = [orjson.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    return [c["finish_reason"] for chunk in chunks for c in chunk.get("choices", []) if c.get("finish_reason")]


def test_truncation_is_reported_on_every_surface(gateway: RunningProcess) -> None:
    api = client(gateway)
    assert api.chat.completions.create(model="auto", messages=ASK, max_tokens=6).choices[0].finish_reason == "length"
    stream = api.chat.completions.create(model="auto", messages=ASK, max_tokens=6, stream=True)
    assert [c.choices[0].finish_reason for c in stream if c.choices and c.choices[0].finish_reason] == ["length"]

    council: dict[str, Any] = {
        "model": "swarmCouncil",
        "messages": ASK,
        "max_tokens": 6,
        "swarm": {"models": ["role:fast", "role:coder"], "strategy": "longest"},
    }
    answer = httpx.post(gateway.url + "/v1/chat/completions", json=council, timeout=300).json()
    assert answer["choices"][0]["finish_reason"] == "length"
    streamed = httpx.post(gateway.url + "/v1/chat/completions", json={**council, "stream": True}, timeout=300)
    assert finishes(streamed.text) == ["length"]

    response = api.responses.create(model="auto", input="Tell me a long story.", max_output_tokens=6)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    events = list(api.responses.create(model="auto", input="Tell me a long story.", max_output_tokens=6, stream=True))
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"  # type: ignore[union-attr]
    # Greedy, so the short answer is the same every run (sampled, it now and then rambles past 256).
    whole = api.responses.create(model="auto", input="Say hi.", max_output_tokens=256, temperature=0)
    assert (whole.status, whole.incomplete_details) == ("completed", None)

    claude = anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0)
    message = claude.messages.create(model="auto", max_tokens=6, messages=ASK)  # type: ignore[arg-type]
    assert message.stop_reason == "max_tokens"
    with claude.messages.stream(model="auto", max_tokens=6, messages=ASK) as live:  # type: ignore[arg-type]
        assert live.get_final_message().stop_reason == "max_tokens"


def test_fanout_has_no_winner_and_swarms_time_their_parts(gateway: RunningProcess) -> None:
    body = {"models": ["role:fast", "role:coder"], "messages": ASK, "max_tokens": 8}
    reply = httpx.post(gateway.url + "/swarm/fanout", json=body, timeout=300)
    assert reply.status_code == 200
    assert "x-swarm-winner" not in reply.headers
    assert reply.headers["x-swarm-models"] == f"{SMOLLM2_ID},{SMOLLM2_ID}"
    ms = {part: float(reply.headers[f"x-lattice-{part}-ms"]) for part in ("resolve", "queue", "upstream", "total")}
    assert ms["resolve"] > 0
    assert ms["queue"] > 0  # one in-process model runs one call at a time: the second agent waited
    assert ms["upstream"] > ms["queue"]
    assert ms["total"] >= ms["upstream"]


def test_a_queue_timeout_reports_and_logs_the_same_wait(gateway: RunningProcess) -> None:
    long = {"model": "auto", "messages": ASK, "max_tokens": 200}
    busy = threading.Thread(target=lambda: httpx.post(gateway.url + "/v1/chat/completions", json=long, timeout=300))
    busy.start()
    try:
        deadline = time.monotonic() + 60
        while httpx.get(gateway.url + "/healthz").json()["admission"]["inflight"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        headers = {"X-Lattice-Max-Queue-Wait-Ms": "200", "X-Request-Id": "default-queue-timeout"}
        refused = httpx.post(gateway.url + "/v1/chat/completions", json=long, headers=headers, timeout=60)
    finally:
        busy.join()
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "queue_timeout"
    waited = refused.headers["x-lattice-queue-ms"]
    assert float(waited) >= 200
    deadline = time.monotonic() + 10
    while "request_id=default-queue-timeout" not in gateway.log():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    line = next(line for line in gateway.log().splitlines() if "request_id=default-queue-timeout" in line)
    assert f"queue_ms={waited} " in line
    assert "status=429" in line


def test_ps_shows_memory_place_and_residency(gateway: RunningProcess, machine: Path) -> None:
    httpx.post(gateway.url + "/v1/chat/completions", json={"model": "auto", "messages": ASK, "max_tokens": 2})
    shown = lattice(machine, "ps", "--url", gateway.url)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    row = [cell.strip() for cell in next(line for line in shown.stdout.splitlines() if SMOLLM2_ID in line).split("│")]
    assert row[4] == "yes"
    assert re.fullmatch(r"\d+ MB", row[5])  # the GGUF it holds
    assert row[6] == "cpu · in-process llama.cpp"
    assert row[7].startswith("evicted (LRU)")
    assert row[8:10] == ["0", "0"]
    assert "no idle timeout" in " ".join(shown.stdout.split())


def in_flight(gateway: RunningProcess) -> dict[str, float]:
    text = httpx.get(gateway.url + "/metrics").text
    return {
        sample.labels["route"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "lattice_requests_in_flight"
    }


ROUTE_BODIES: list[tuple[str, dict[str, Any]]] = [
    ("/v1/chat/completions", {"model": "auto", "messages": ASK, "max_tokens": 4}),
    (
        "/v1/chat/completions",
        {"model": "swarmCouncil", "messages": ASK, "max_tokens": 4, "swarm": {"strategy": "longest"}},
    ),
    ("/v1/chat/completions", {"model": "swarm/fanout", "messages": ASK, "max_tokens": 4}),
    ("/v1/completions", {"model": "auto", "prompt": "Once upon a time", "max_tokens": 4}),
    ("/v1/messages", {"model": "auto", "messages": ASK, "max_tokens": 4}),
    ("/v1/responses", {"model": "auto", "input": "Tell me a story.", "max_output_tokens": 4}),
    ("/swarm/fanout", {"models": ["role:fast", "role:coder"], "messages": ASK, "max_tokens": 4}),
    ("/swarm/vote", {"models": ["role:fast", "role:coder"], "messages": ASK, "max_tokens": 4}),
    (
        "/swarm/pipeline",
        {"steps": [{"name": "a", "model": "auto"}, {"name": "b", "model": "auto"}], "messages": ASK, "max_tokens": 4},
    ),
    ("/swarm/debate", {"models": ["role:fast", "role:coder"], "messages": ASK, "rounds": 1, "max_tokens": 4}),
]


def test_in_flight_returns_to_zero(gateway: RunningProcess) -> None:
    """Every route kind, streamed and not, a refused request and a client that leaves mid-stream:
    afterwards the gauge of every route and the dashboard's total are 0 (an idle server)."""
    for path, body in ROUTE_BODIES:
        for stream in (False, True):
            reply = httpx.post(gateway.url + path, json={**body, "stream": stream}, timeout=300)
            assert reply.status_code == 200, (path, stream, reply.text)
    bad = httpx.post(gateway.url + "/v1/chat/completions", json={"model": "auto", "messages": "nope"})
    assert bad.status_code == 400
    long = {
        "model": "swarmCouncil",
        "messages": ASK,
        "max_tokens": 200,
        "stream": True,
        "swarm": {"strategy": "longest"},
    }
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=long, timeout=300) as live:
        next(live.iter_lines())  # the first event, then the client hangs up
    deadline = time.monotonic() + 60
    while set(in_flight(gateway).values()) != {0.0}:
        assert time.monotonic() < deadline, in_flight(gateway)
        time.sleep(0.1)
    assert in_flight(gateway).get("/v1/chat/completions") == 0
    assert httpx.get(gateway.url + "/dashboard/api/snapshot").json()["totals"]["in_flight"] == 0
    assert httpx.get(gateway.url + "/healthz").json()["admission"]["inflight"] == 0


def test_error_policy_is_a_404_naming_the_loaded_model(tmp_path: Path) -> None:
    with default_gateway(tmp_path, ON_MODEL_MISS="error") as strict:
        api = client(strict)
        api.chat.completions.create(model=SMOLLM2_ID, messages=ASK, max_tokens=2)  # now it is loaded
        for spec in ("role:coder", "no-such-model"):
            with pytest.raises(openai.NotFoundError) as caught:
                api.chat.completions.create(model=spec, messages=ASK, max_tokens=2)
            body = caught.value.body
            assert isinstance(body, dict)
            assert body["code"] == "model_not_found"
            assert body["loaded"] == [SMOLLM2_ID]
