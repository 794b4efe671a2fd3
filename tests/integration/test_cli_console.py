"""The human side of the CLI against real processes: the ``serve`` banner, ``ps``, ``doctor`` and
``demo``, with the real gateway in front of two llama.cpp servers running the real SmolLM2 (one
aliased as a coder so the roles resolve to different models)."""

from __future__ import annotations

import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.models import SMOLLM2_ID
from tests.support.procs import PYTHON, RunningProcess, free_port
from tests.support.servers import gateway_process, llama_server

pytestmark = pytest.mark.slow

KEY = "console-key"
CODER = "smollm2-coder"


def config_toml(llama_url: str, coder_url: str, key: bool = True) -> str:
    head = f'[server]\napi_keys = ["{KEY}"]\n' if key else ""
    return (
        head
        + f"""
[[backends]]
name = "llama"
url = "{llama_url}"

[[backends]]
name = "coder"
url = "{coder_url}"

[roles]
fast = ["{SMOLLM2_ID}"]
coder = ["coder"]
reasoner = ["{SMOLLM2_ID}"]
"""
    )


@pytest.fixture(scope="module")
def coder() -> Iterator[RunningProcess]:
    with llama_server(alias=CODER, n_ctx=1024, n_threads=1) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(smollm2_server: RunningProcess, coder: RunningProcess) -> Iterator[RunningProcess]:
    with gateway_process(config_toml(smollm2_server.url, coder.url)) as proc:
        yield proc


def lattice(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env_clear = {"MIDDLE_LAYER_API_KEY": "", "LATTICE_CONFIG": "", "COLUMNS": "160"}
    import os

    return subprocess.run(
        [PYTHON, "-m", "local_lattice", *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **env_clear},
    )  # fmt: skip


def test_serve_prints_the_banner(gateway: RunningProcess, coder: RunningProcess) -> None:
    log = gateway.log()
    assert f"listening   {gateway.url}" in log
    assert f"OpenAI base URL {gateway.url}/v1" in log
    assert "auth        on (1 key)" in log
    assert f"dashboard   {gateway.url}/dashboard/" in log
    assert coder.url in log
    assert log.count("ok: 1 models") == 2
    lines = log.splitlines()
    llama_row = next(line for line in lines if SMOLLM2_ID in line and "llama" in line)
    assert "fast" in llama_row
    assert "reasoner" in llama_row
    coder_row = next(line for line in lines if CODER in line and "│ coder" in line)
    assert "coder" in coder_row.split(CODER, 1)[1]


def test_banner_shows_a_backend_that_is_down(smollm2_server: RunningProcess) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    toml = f'[[backends]]\nname = "llama"\nurl = "{smollm2_server.url}"\n[[backends]]\nname = "gone"\nurl = "{dead}"\n'
    with gateway_process(toml) as proc:
        log = proc.log()
    assert "auth        off" in log
    assert "DOWN" in log
    assert "ok: 1 models" in log


def test_ps_shows_models_and_calls_in_flight(gateway: RunningProcess) -> None:
    body = {"model": SMOLLM2_ID, "messages": [{"role": "user", "content": "Count to 200."}], "max_tokens": 160}
    headers = {"Authorization": f"Bearer {KEY}"}
    call = threading.Thread(
        target=lambda: httpx.post(gateway.url + "/v1/chat/completions", json=body, headers=headers, timeout=120)
    )
    call.start()
    try:
        deadline = time.monotonic() + 30
        while httpx.get(gateway.url + "/healthz", headers=headers).json()["admission"]["inflight"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        shown = lattice("ps", "--url", gateway.url, "--api-key", KEY)
    finally:
        call.join()
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "Gateway: ok" in out
    assert "1 in flight" in out
    row = next(line for line in out.splitlines() if SMOLLM2_ID in line)
    assert row.split("│")[8].strip() == "1"  # in-flight column of the busy model
    assert row.split("│")[6].strip() == "upstream server"
    assert CODER in out


def test_ps_without_the_key_says_how_to_fix_it(gateway: RunningProcess) -> None:
    shown = lattice("ps", "--url", gateway.url)
    assert shown.returncode == 1
    assert "pass --api-key" in shown.stdout


def test_ps_with_nothing_listening() -> None:
    shown = lattice("ps", "--url", f"http://127.0.0.1:{free_port()}")
    assert shown.returncode == 2
    assert "no gateway answers" in shown.stderr
    assert "lattice serve" in shown.stderr


def write_config(text: str) -> Path:
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as handle:
        handle.write(text)
    return Path(handle.name)


def test_doctor_passes_on_a_healthy_setup(smollm2_server: RunningProcess, coder: RunningProcess) -> None:
    path = write_config(config_toml(smollm2_server.url, coder.url))
    shown = lattice("doctor", "--config", str(path), "--port", str(free_port()))
    path.unlink()
    assert shown.returncode == 0, shown.stdout
    out = shown.stdout
    assert "no problems found" in out
    assert "FAIL" not in out
    for check in ("config", "bind", "port", "backend llama", "backend coder", "models", "engine llama_cpp"):
        line = next(line for line in out.splitlines() if f"│ {check} " in line)
        assert "OK" in line, line
    assert f"llama/{SMOLLM2_ID}" in out  # role:fast resolves
    assert f"coder/{CODER}" in out


def test_doctor_names_each_problem_and_its_fix(gateway: RunningProcess, smollm2_server: RunningProcess) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    port = gateway.url.rsplit(":", 1)[1]
    path = write_config(f'[[backends]]\nname = "gone"\nurl = "{dead}"\n')
    shown = lattice("doctor", "--config", str(path), "--port", port)
    path.unlink()
    assert shown.returncode == 1
    out = shown.stdout
    assert "a Local Lattice gateway already runs" in out
    assert "lattice ps --url" in out
    gone = out[out.index("backend gone") :]
    assert "FAIL" in gone.splitlines()[0]
    assert "start the server" in out
    assert "no chat model is available" in out
    assert "problems found" in shown.stderr


def test_doctor_rejects_a_bad_config() -> None:
    path = write_config("[server]\nprot = 5001\n")
    shown = lattice("doctor", "--config", str(path))
    path.unlink()
    assert shown.returncode == 1
    assert "server.prot" in shown.stdout


def test_demo_replays_the_pitch(gateway: RunningProcess) -> None:
    shown = lattice("demo", "--url", gateway.url, "--api-key", KEY, "--max-tokens", "32")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    out = shown.stdout
    assert "GET /v1/models" in out
    assert f"role:fast    → llama/{SMOLLM2_ID}" in out
    assert f"role:coder   → coder/{CODER}" in out
    assert "POST /swarm/vote" in out
    assert "winner" in out
    assert out.count("candidate ") == 2


def test_demo_reports_a_failing_step(gateway: RunningProcess) -> None:
    shown = lattice("demo", "--url", gateway.url, "--api-key", "wrong")
    assert shown.returncode == 1
    assert "failed" in shown.stdout
