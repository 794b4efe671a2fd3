"""Shared fixtures: real upstream processes live for the whole session (they take seconds to start)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.procs import RunningProcess
from tests.support.servers import embedding_server, llama_server


@pytest.fixture(scope="session")
def smollm2_server() -> Iterator[RunningProcess]:
    """llama.cpp's OpenAI-compatible server with the real SmolLM2-135M-Instruct."""
    with llama_server() as server:
        yield server


@pytest.fixture(scope="session")
def embedding_upstream() -> Iterator[RunningProcess]:
    """The same model served mean-pooled on ``/v1/embeddings`` as ``smollm2-embed``."""
    with embedding_server() as server:
        yield server


@pytest.fixture(scope="session", autouse=True)
def _private_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the request ledger's default file (under the user data dir) out of the real home."""
    import os

    previous = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("data-home"))
    yield
    if previous is None:
        os.environ.pop("XDG_DATA_HOME", None)
    else:
        os.environ["XDG_DATA_HOME"] = previous
