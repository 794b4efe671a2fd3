"""The original product's documented examples, replayed as black-box HTTP against the real gateway.

Two set-ups, each a real gateway process:

- ``engine_gateway``: the in-process llama.cpp engine with the real SmolLM2, configured the way the
  original's recorded captures were taken (its key, one resident model, small token budgets,
  ``ON_MODEL_MISS=fallback``, a roles file through ``MODEL_ROLES_JSON``). The backend is named
  ``mlx`` because the original's in-process gateway named its routes so (``mlx/<id>``).
- ``scripted_gateway``: a scripted OpenAI-compatible upstream process whose model names pick their
  behaviour (``boom-500`` answers 500, ``empty`` empty content, ``echo`` the last message, ``hang``
  five seconds late), for the cases that need particular ids or failures.

Each module gets its own gateway, so a module's first request meets a gateway nobody has used.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.models import SMOLLM2_ID, smollm2_path
from tests.support.procs import RunningProcess
from tests.support.servers import gateway_process
from tests.support.upstream import scripted_upstream_process

KEY = "baseline-test-key-do-not-use"  # the test-only key of the original's captures
AUTH = {"X-API-Key": KEY}
MODEL = SMOLLM2_ID
ROLES = {"fast": [MODEL], "coder": [MODEL], "reasoner": [MODEL], "default": [MODEL]}
# What the original's captures ran with (its baseline README), in its own variables.
CAPTURE_ENV = {
    "ANTHROPIC_AUTO_ROUTE": "0",
    "MAX_CONCURRENT_MODELS": "1",
    "MAX_PARALLEL_MODEL_CALLS": "1",
    "MLX_PER_MODEL_INFLIGHT_CAP": "1",
    "DEFAULT_MAX_TOKENS": "64",
    "MAX_TOKENS_CEILING": "256",
    "ON_MODEL_MISS": "fallback",
    "DEFAULT_MODEL": MODEL,
    "MODEL_ROLES_JSON": json.dumps(ROLES),
}
SCRIPTED_MODELS = ["fast-model", "coder-model", "reasoner-model", "boom-500", "empty", "echo", "hang"]
SCRIPTED_ROLES = {"fast": ["fast-model"], "coder": ["coder-model"], "reasoner": ["reasoner-model"]}


def engine_toml(api_key: str | None = KEY) -> str:
    keys = f'api_keys = ["{api_key}"]\n' if api_key else ""
    return (
        f"[server]\n{keys}\n[[backends]]\n"
        'name = "mlx"\ntype = "llamacpp"\ndiscover = false\nn_threads = 1\nn_ctx = 2048\n'
        f'model_files = {{ "{MODEL}" = "{smollm2_path()}" }}\n'
    )


@pytest.fixture(scope="module")
def engine_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProcess]:
    home = tmp_path_factory.mktemp("home")
    env = {**CAPTURE_ENV, "HOME": str(home), "MLX_DASHBOARD_MAX_EVENTS": "8"}
    with gateway_process(engine_toml(), env=env) as proc:
        yield proc


@pytest.fixture(scope="session")
def scripted_upstream_url() -> Iterator[str]:
    with scripted_upstream_process(SCRIPTED_MODELS) as proc:
        yield proc.url


def scripted_toml(url: str, api_key: str | None = KEY) -> str:
    keys = f'api_keys = ["{api_key}"]\n' if api_key else ""
    return f'[server]\n{keys}\n[[backends]]\nname = "upstream"\ntype = "openai"\nurl = "{url}"\n'


@pytest.fixture(scope="module")
def scripted_gateway(scripted_upstream_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProcess]:
    env = {
        "HOME": str(tmp_path_factory.mktemp("home")),
        "ON_MODEL_MISS": "error",
        "MLX_PER_MODEL_INFLIGHT_CAP": "1",
        "MODEL_ROLES_JSON": json.dumps(SCRIPTED_ROLES),
    }
    with gateway_process(scripted_toml(scripted_upstream_url), env=env) as proc:
        yield proc


def client_for(gateway: RunningProcess, key: str | None = KEY) -> httpx.Client:
    return httpx.Client(base_url=gateway.url, headers={"X-API-Key": key} if key else {}, timeout=300)


@pytest.fixture(scope="module")
def engine(engine_gateway: RunningProcess) -> Iterator[httpx.Client]:
    """A client of ``engine_gateway`` sending the key, as the captures did."""
    with client_for(engine_gateway) as client:
        yield client


@pytest.fixture(scope="module")
def scripted(scripted_gateway: RunningProcess) -> Iterator[httpx.Client]:
    with client_for(scripted_gateway) as client:
        yield client


def settled(client: httpx.Client) -> dict[str, int]:
    """The admission counts once nothing runs or waits (polled for a short while: a call ends just
    after its answer is written)."""
    deadline = time.monotonic() + 15
    while True:
        admission = client.get("/healthz").json()["admission"]
        counts = {"inflight": admission["inflight_total"], "queued": admission["queued_total"]}
        if counts == {"inflight": 0, "queued": 0} or time.monotonic() > deadline:
            return counts
        time.sleep(0.05)
