"""An in-process gateway over FakeBackends with a key and a private ledger file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from local_lattice.api.app import create_app
from local_lattice.backends.fake import FakeBackend
from local_lattice.config import Config, load

KEY = "obs-key"
AUTH = {"X-API-Key": KEY}


def make_config(ledger: Path | str, **env: str) -> Config:
    # A request for a model that is not there is these tests' 404: misses do not fall back here.
    return load(
        None, {"MIDDLE_LAYER_API_KEY": KEY, "LATTICE_LEDGER_PATH": str(ledger), "ON_MODEL_MISS": "error", **env}
    )


@pytest.fixture
def fake() -> FakeBackend:
    return FakeBackend.with_models("f", "m1", reply="one two three")


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite3"


@pytest.fixture
def client(fake: FakeBackend, ledger_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_config(ledger_path), {"f": fake})) as test_client:
        yield test_client
