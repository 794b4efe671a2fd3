"""Shared fixtures: real upstream processes live for the whole session (they take seconds to start)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.procs import RunningProcess
from tests.support.servers import llama_server


@pytest.fixture(scope="session")
def smollm2_server() -> Iterator[RunningProcess]:
    """llama.cpp's OpenAI-compatible server with the real SmolLM2-135M-Instruct."""
    with llama_server() as server:
        yield server
