"""The real gateway process serving in-process engines over HTTP, talked to with the official client."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.models import SMOLLM2_ID, smollm2_path
from tests.support.procs import PYTHON, RunningProcess, free_port, run_process
from tests.support.servers import gateway_process

pytestmark = pytest.mark.slow

QUESTION = "What is the capital of France? Answer in one sentence."


@contextlib.contextmanager
def bare_gateway(home: Path, discover: str = "") -> Iterator[RunningProcess]:
    """``lattice serve`` with no config file and no backends, in an empty HOME; ``discover`` lists
    the local servers it probes (none by default, so the test does not depend on the machine)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"HOME": str(home), "LATTICE_CONFIG": "", "LM_STUDIO_URL": "", "MIDDLE_LAYER_API_KEY": ""}
    env["LATTICE_DISCOVER_SERVERS"] = discover
    argv = [PYTHON, "-m", "local_lattice", "serve", "--port", str(port)]
    with run_process(argv, ready_url=base + "/healthz", base_url=base, env=env, timeout=120) as proc:
        yield proc


def test_no_configuration_also_finds_the_local_servers_that_answer(
    tmp_path: Path, smollm2_server: RunningProcess
) -> None:
    silent = f"http://127.0.0.1:{free_port()}/v1"
    discover = f"lmstudio={silent},openai={smollm2_server.url}"
    with bare_gateway(tmp_path, discover) as gateway, httpx.Client(base_url=gateway.url, timeout=120) as http:
        owners = {(m["id"], m["owned_by"]) for m in http.get("/v1/models").json()["data"]}
        port = smollm2_server.url.removesuffix("/v1").rsplit(":", 1)[-1]
        assert (SMOLLM2_ID, "llamacpp") in owners  # the embedded demo model
        assert (SMOLLM2_ID, f"local-{port}") in owners  # the server that answered
        assert not any(owner == "lmstudio" for _, owner in owners)  # the silent one is left out
        health = http.get("/healthz").json()
        assert {"llamacpp", f"local-{port}"} <= set(health["backends"])
        assert "lmstudio" not in health["backends"]


def test_serve_with_no_configuration_answers_with_smollm2(tmp_path: Path) -> None:
    with bare_gateway(tmp_path) as gateway, openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused") as client:
        assert SMOLLM2_ID in [m.id for m in client.models.list()]
        raw = client.chat.completions.with_raw_response.create(
            model=SMOLLM2_ID, messages=[{"role": "user", "content": QUESTION}], temperature=0, max_tokens=24
        )
        answer = raw.parse()
        assert "Paris" in (answer.choices[0].message.content or "")
        assert answer.usage is not None
        assert answer.usage.completion_tokens > 0
        assert raw.headers["x-model-routed-to"] == f"llamacpp/{SMOLLM2_ID}"
        with client.chat.completions.create(
            model=SMOLLM2_ID, messages=[{"role": "user", "content": QUESTION}], temperature=0, stream=True
        ) as stream:
            text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        assert "Paris" in text


def test_unload_and_load_routes(tmp_path: Path) -> None:
    with bare_gateway(tmp_path) as gateway, httpx.Client(base_url=gateway.url, timeout=120) as http:
        assert http.delete(f"/v1/models/{SMOLLM2_ID}").status_code == 404  # listed, not resident
        unknown = http.delete("/v1/models/no-such-model")
        assert unknown.status_code == 404
        assert unknown.json()["error"]["type"] == "not_found_error"
        assert http.post("/v1/models/no-such-model/load").status_code == 404

        def listed_as_loaded() -> bool | None:
            models = {m["id"]: m for m in http.get("/v1/models").json()["data"]}
            loaded: bool | None = models[SMOLLM2_ID]["loaded"]
            return loaded

        assert listed_as_loaded() is False
        loaded = http.post(f"/v1/models/{SMOLLM2_ID}/load")
        assert loaded.status_code == 200
        assert loaded.json()["loaded"] is True
        health = http.get("/healthz").json()
        assert health["backends"]["llamacpp"]["loaded"] == [SMOLLM2_ID]
        assert listed_as_loaded() is True
        dropped = http.delete(f"/v1/models/{SMOLLM2_ID}")
        assert dropped.status_code == 200
        assert dropped.json()["unloaded"] is True
        assert listed_as_loaded() is False


def test_unload_during_a_stream_is_deferred(tmp_path: Path) -> None:
    with bare_gateway(tmp_path) as gateway, httpx.Client(base_url=gateway.url, timeout=120) as http:
        body = {"model": SMOLLM2_ID, "messages": [{"role": "user", "content": "Count to 100."}], "stream": True}
        with http.stream("POST", "/v1/chat/completions", json={**body, "max_tokens": 40}) as response:
            lines = response.iter_lines()
            next(line for line in lines if line.startswith("data:"))
            deferred = http.delete(f"/v1/models/{SMOLLM2_ID}")
            assert deferred.status_code == 202
            assert deferred.json()["deferred"] is True
            rest = list(lines)
        assert rest[-2:] == ["data: [DONE]", ""] or rest[-1] == "data: [DONE]"
        deadline = time.monotonic() + 5
        while http.get("/healthz").json()["backends"]["llamacpp"]["loaded"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_context_overflow_and_corrupt_model_over_http(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 64)
    config = f"""
[[backends]]
name = "local"
type = "llamacpp"
discover = false
n_ctx = 256
model_files = {{ "{SMOLLM2_ID}" = "{smollm2_path()}", "broken" = "{broken}" }}
"""
    with (
        gateway_process(config, env={"HOME": str(tmp_path)}) as gateway,
        openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0) as client,
    ):
        with pytest.raises(openai.BadRequestError) as too_long:
            client.chat.completions.create(
                model=SMOLLM2_ID, messages=[{"role": "user", "content": "Paris in spring. " * 120}], max_tokens=8
            )
        error = too_long.value.body
        assert isinstance(error, dict)
        assert error["code"] == "context_length_exceeded"
        assert "context of 256 tokens" in error["message"]
        assert f"{error['prompt_tokens']} tokens" in error["message"]
        with pytest.raises(openai.APIStatusError) as failed:
            client.chat.completions.create(model="broken", messages=[{"role": "user", "content": "hi"}])
        assert failed.value.status_code == 503
        assert "broken" in str(failed.value.message)
        good = client.chat.completions.create(
            model=SMOLLM2_ID, messages=[{"role": "user", "content": QUESTION}], temperature=0, max_tokens=24
        )
        assert "Paris" in (good.choices[0].message.content or "")
        health = httpx.get(gateway.url + "/healthz").json()
        assert health["status"] == "ok"
        assert "broken" in health["backends"]["local"]["load_errors"]


def test_a_client_disconnect_stops_generation(tmp_path: Path) -> None:
    with bare_gateway(tmp_path) as gateway, httpx.Client(base_url=gateway.url, timeout=120) as http:
        body = {"model": SMOLLM2_ID, "messages": [{"role": "user", "content": "Write a long story."}], "stream": True}
        with http.stream("POST", "/v1/chat/completions", json={**body, "max_tokens": 2000}) as response:
            lines = response.iter_lines()
            for _ in range(3):
                next(line for line in lines if line.startswith("data:"))
            assert http.get("/healthz").json()["backends"]["llamacpp"]["in_flight"] == {SMOLLM2_ID: 1}
        closed_at = time.monotonic()
        while http.get("/healthz").json()["backends"]["llamacpp"]["in_flight"]:
            assert time.monotonic() - closed_at < 2.0, "generation went on after the client left"
            time.sleep(0.01)
        quick = http.post("/v1/chat/completions", json={**body, "stream": False, "max_tokens": 2})
        assert quick.status_code == 200
