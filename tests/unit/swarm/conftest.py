"""Fake backends (one per model, each with its own reply, delay or failure) behind a real Gateway."""

from __future__ import annotations

import random
import re

import pytest

from local_lattice.backends.fake import FakeBackend
from local_lattice.config import Config
from local_lattice.errors import BackendUnavailable, UpstreamError
from local_lattice.gateway import Gateway
from local_lattice.swarm.runner import SwarmRunner
from local_lattice.types import BackendRequest


def judge_picks(substring: str) -> object:
    """A judge script that finds the label of the candidate containing ``substring`` in its prompt."""

    def script(request: BackendRequest) -> str:
        prompt = str(request.body["messages"][-1]["content"])
        for label, text in re.findall(r"### Candidate ([A-Z])\n(.*?)(?=\n\n### |\n\nWhich|\Z)", prompt, re.S):
            if substring in text:
                return f'{{"winner": "{label}", "reason": "it is right"}}'
        return '{"winner": "Z"}'

    return script


@pytest.fixture
def backends() -> dict[str, FakeBackend]:
    return {
        "b1": FakeBackend.with_models("b1", "short", reply="Paris"),
        "b2": FakeBackend.with_models("b2", "long", reply="The capital of France is Paris, on the Seine."),
        "b3": FakeBackend.with_models("b3", "other", reply="Lyon"),
        "down": FakeBackend.with_models("down", "broken", fail_with=BackendUnavailable("nope", backend="down")),
        "boom": FakeBackend.with_models("boom", "crashy", fail_with=UpstreamError("kaboom", code="upstream_500")),
        "empty": FakeBackend.with_models("empty", "mute", reply=""),
        "j": FakeBackend.with_models("j", "judge", script=judge_picks("Seine")),  # type: ignore[arg-type]
    }


@pytest.fixture
def gateway(backends: dict[str, FakeBackend]) -> Gateway:
    return Gateway(Config(), backends)


@pytest.fixture
def runner(gateway: Gateway) -> SwarmRunner:
    return SwarmRunner(gateway, Config().swarm, rng=random.Random(7))


@pytest.fixture
def strict_runner(backends: dict[str, FakeBackend]) -> SwarmRunner:
    """ON_MODEL_MISS=error: an agent whose model matches nothing fails instead of falling back."""
    config = Config.model_validate({"routing": {"on_model_miss": "error"}})
    return SwarmRunner(Gateway(config, backends), config.swarm, rng=random.Random(7))
