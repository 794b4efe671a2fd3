"""The compatibility suite's parts: one live gateway process with an API key in front of two real
llama.cpp servers (SmolLM2 for chat, the same model mean-pooled for embeddings). Every test here talks
to it with a real client library, exactly as a user's program would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.procs import RunningProcess
from tests.support.servers import backends_toml, gateway_process

KEY = "compat-key"
EMBED_ID = "smollm2-embed"


@pytest.fixture(scope="session")
def gateway(smollm2_server: RunningProcess, embedding_upstream: RunningProcess) -> Iterator[RunningProcess]:
    backends = [("llama", smollm2_server.url), ("embedder", embedding_upstream.url)]
    with gateway_process(backends_toml(backends, api_key=KEY)) as proc:
        yield proc


@pytest.fixture(scope="session")
def base_url(gateway: RunningProcess) -> str:
    """What a client library calls its base URL: the gateway's ``/v1``."""
    return gateway.url + "/v1"
