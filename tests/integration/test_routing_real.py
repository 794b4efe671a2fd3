"""Capability routing against real upstreams: two llama.cpp servers serving SmolLM2 under different
model ids, the real gateway process, and the official ``openai`` client."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import orjson
import pytest

from tests.support.procs import PYTHON, RunningProcess, free_port
from tests.support.servers import gateway_process, llama_server

pytestmark = pytest.mark.slow

FAST_ID = "smollm2-135m-instruct"
CODER_ID = "qwen2.5-coder-0.5b"
ASK = [{"role": "user", "content": "Say hi."}]


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[RunningProcess, RunningProcess]]:
    with llama_server(alias=FAST_ID) as fast, llama_server(alias=CODER_ID) as coder:
        yield fast, coder


def config(*backends: tuple[str, str], roles: str = "") -> str:
    parts = [f'[[backends]]\nname = "{name}"\ntype = "openai"\nurl = "{url}"\n' for name, url in backends]
    return "\n".join(parts) + roles


def client(gateway: RunningProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def chat(api: openai.OpenAI, model: str) -> tuple[str, str, str]:
    """(model the answer names, X-Model-Routed-To, X-Model-Resolution)."""
    raw = api.chat.completions.with_raw_response.create(model=model, messages=ASK, max_tokens=8)
    answer = raw.parse()
    return answer.model, raw.headers["x-model-routed-to"], raw.headers.get("x-model-resolution", "")


def test_roles_lists_wildcards_and_dry_run(upstreams: tuple[RunningProcess, RunningProcess]) -> None:
    fast, coder = upstreams
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: the gateway must carry on without it
    roles = '\n[roles]\n_comment = "tuned by hand"\ncoder = ["qwen2.5-coder"]\nfast = ["smollm2", "qwen"]\n'
    toml = config(("down", dead), ("small", fast.url), ("code", coder.url), roles=roles)
    with gateway_process(toml, env={"ON_MODEL_MISS": "error"}) as gateway:
        api = client(gateway)
        assert chat(api, "role:coder")[1] == f"code/{CODER_ID}"
        assert chat(api, "role:fast")[1] == f"small/{FAST_ID}"
        why = chat(api, "role:coder")[2]
        assert why == f"role:coder -> {CODER_ID} via 'qwen2.5-coder'"
        assert chat(api, f"no-such-model,,{FAST_ID}")[1] == f"small/{FAST_ID}"
        assert chat(api, "role:nothing,*CODER*")[1] == f"code/{CODER_ID}"
        assert chat(api, "QWEN2.5-Coder-0.5B")[1:] == (f"code/{CODER_ID}", "")
        stream = api.chat.completions.create(model="role:fast", messages=ASK, max_tokens=8, stream=True)
        assert any(chunk.choices and chunk.choices[0].delta.content for chunk in stream)

        with pytest.raises(openai.NotFoundError) as caught:
            chat(api, "gpt-5-giant")
        error = caught.value.body
        assert isinstance(error, dict)
        assert error["code"] == "model_not_found"
        assert sorted(error["available"]) == sorted([FAST_ID, CODER_ID])

        dry = httpx.post(gateway.url + "/v1/resolve", json={"model": "role:fast,role:coder", "messages": ASK})
        assert dry.status_code == 200
        plan = dry.json()
        assert plan["model"] == FAST_ID
        assert [c["id"] for c in plan["candidates"]] == [FAST_ID, CODER_ID]
        assert plan["reasons"][0] == f"small/{FAST_ID}: role:fast 'smollm2'"

        models = httpx.get(gateway.url + "/swarm/models").json()
        assert sorted(models["models"]) == sorted([FAST_ID, CODER_ID])
        assert models["roles"] == {"coder": ["qwen2.5-coder"], "fast": ["smollm2", "qwen"]}


def test_failover_when_a_backend_goes_down(upstreams: tuple[RunningProcess, RunningProcess]) -> None:
    _, coder = upstreams
    roles = '\n[roles]\ncoder = ["coder-first", "qwen2.5-coder"]\n'
    with llama_server(alias="coder-first") as first:
        toml = config(("primary", first.url), ("code", coder.url), roles=roles)
        with gateway_process(toml) as gateway:
            api = client(gateway)
            assert chat(api, "role:coder")[1] == "primary/coder-first"
            first.proc.terminate()
            first.proc.wait(timeout=20)
            model, routed, why = chat(api, "role:coder")
            assert (model, routed) == (CODER_ID, f"code/{CODER_ID}")
            assert "primary/coder-first failed (backend_unavailable)" in why


def test_lattice_init_writes_roles_the_gateway_uses(
    upstreams: tuple[RunningProcess, RunningProcess], tmp_path: Path
) -> None:
    fast, coder = upstreams
    toml = config(("small", fast.url), ("code", coder.url))
    config_path = tmp_path / "lattice.toml"
    config_path.write_text(toml)
    roles_path = tmp_path / "roles.json"
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", ""), "MIDDLE_LAYER_API_KEY": ""}
    argv = [PYTHON, "-m", "local_lattice", "init", "--config", str(config_path), "--backend", "openai"]
    done = subprocess.run([*argv, "--output", str(roles_path)], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    roles = orjson.loads(roles_path.read_bytes())
    assert roles["coder"] == [CODER_ID]
    assert roles["fast"] == [FAST_ID, CODER_ID]
    assert "_comment" in roles
    again = subprocess.run([*argv, "--output", str(roles_path)], capture_output=True, text=True, env=env, timeout=60)
    assert again.returncode == 1
    assert "already exists" in again.stderr
    as_toml = subprocess.run([*argv, "--dry-run", "--output", str(tmp_path / "r.toml")], capture_output=True,
                             text=True, env=env, timeout=60)  # fmt: skip
    assert as_toml.returncode == 0
    assert f'"coder" = ["{CODER_ID}"]' in as_toml.stdout

    with gateway_process(toml, env={"MODEL_ROLES_FILE": str(roles_path)}) as gateway:
        api = client(gateway)
        assert chat(api, "role:coder")[1] == f"code/{CODER_ID}"
        assert chat(api, "role:fast")[1] == f"small/{FAST_ID}"
        listing = subprocess.run(
            [PYTHON, "-m", "local_lattice", "models", "--config", str(config_path)],
            capture_output=True, text=True, env={**env, "MODEL_ROLES_FILE": str(roles_path), "COLUMNS": "200"},
            timeout=60,
        )  # fmt: skip
        assert listing.returncode == 0, listing.stderr
        assert FAST_ID in listing.stdout
        assert "coder" in listing.stdout


def test_a_malformed_roles_file_stops_the_start(tmp_path: Path) -> None:
    bad = tmp_path / "roles.json"
    bad.write_text('{\n  "coder": ["x"],\n  "fast": [\n}\n')
    port = str(free_port())
    env = {**os.environ, "MODEL_ROLES_FILE": str(bad), "MIDDLE_LAYER_API_KEY": ""}
    done = subprocess.run([PYTHON, "-m", "local_lattice", "serve", "--port", port], capture_output=True, text=True,
                          env=env, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert f"{bad}:4:" in done.stderr
