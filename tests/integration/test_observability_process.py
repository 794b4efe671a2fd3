"""The real gateway process in front of llama.cpp's server with the real SmolLM2: ``/metrics`` counts
exactly the traffic sent, the JSON log has the request id, the ledger file outlives the process
and ``lattice usage`` reads it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import openai
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.models import SMOLLM2_ID
from tests.support.procs import PYTHON, RunningProcess
from tests.support.servers import gateway_process

pytestmark = pytest.mark.slow

KEY = "obs-process-key"
QUESTION = [{"role": "user", "content": "Say hello."}]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_ledger_and_logs_of_a_real_process(smollm2_server: RunningProcess, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    toml = f'[server]\napi_keys = ["{KEY}"]\n[[backends]]\nname = "llama"\nurl = "{smollm2_server.url}"\n'
    # A model that is not there is the 404 counted below: misses do not fall back here.
    env = {"LATTICE_LEDGER_PATH": str(ledger), "LATTICE_LOG_FORMAT": "json", "ON_MODEL_MISS": "error"}
    with gateway_process(toml, env=env) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0)
        completion_tokens = prompt_tokens = 0
        for _ in range(2):
            answer = client.chat.completions.create(model=SMOLLM2_ID, messages=QUESTION, max_tokens=8, temperature=0)
            assert answer.usage is not None
            completion_tokens += answer.usage.completion_tokens
            prompt_tokens += answer.usage.prompt_tokens
        stream = client.chat.completions.create(
            model=SMOLLM2_ID,
            messages=QUESTION,
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"X-Request-Id": "stream-req-1"},
        )
        usage = [chunk.usage for chunk in stream if chunk.usage is not None]
        completion_tokens += usage[-1].completion_tokens
        prompt_tokens += usage[-1].prompt_tokens
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="no-such-model", messages=QUESTION)

        assert httpx.get(gw.url + "/metrics").status_code == 401
        s = samples(httpx.get(gw.url + "/metrics", headers={"X-API-Key": KEY}).text)
        route = "/v1/chat/completions"
        ok = {"route": route, "model": SMOLLM2_ID, "backend": "llama"}
        assert s[("lattice_requests_total", frozenset({**ok, "status": "200"}.items()))] == 3
        missing = {"route": route, "model": "-", "backend": "-", "status": "404"}
        assert s[("lattice_requests_total", frozenset(missing.items()))] == 1
        assert s[("lattice_time_to_first_token_seconds_count", frozenset(ok.items()))] == 1
        tokens = {"model": SMOLLM2_ID, "backend": "llama"}
        assert s[("lattice_tokens_total", frozenset({**tokens, "type": "output"}.items()))] == completion_tokens
        assert s[("lattice_tokens_total", frozenset({**tokens, "type": "input"}.items()))] == prompt_tokens
        assert s[("lattice_models_available", frozenset({"backend": "llama"}.items()))] == 1
    lines = [orjson.loads(line) for line in gw.log().splitlines() if line.startswith("{")]
    timing = [line for line in lines if line["logger"] == "lattice.request" and line["request_id"] == "stream-req-1"]
    assert len(timing) == 1
    assert "status=200" in timing[0]["message"]

    out = subprocess.run(
        [PYTHON, "-m", "local_lattice", "usage", "--since", "1h", "--ledger", str(ledger)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    row = next(line for line in out.splitlines() if SMOLLM2_ID in line)
    cells = [cell.strip() for cell in row.split("│") if cell.strip()]
    assert cells[1:6] == [SMOLLM2_ID, "3", "0", str(prompt_tokens), str(completion_tokens)]
