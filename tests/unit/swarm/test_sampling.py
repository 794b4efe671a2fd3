from __future__ import annotations

import itertools

import pytest

from local_lattice.backends.fake import FakeBackend
from local_lattice.swarm.candidates import Candidate
from local_lattice.swarm.runner import SwarmRunner
from local_lattice.swarm.sampling import SAMPLING_TEMPERATURE, still_needed
from local_lattice.swarm.specs import CallContext
from local_lattice.swarm.strategies import run_vote
from local_lattice.types import BackendRequest
from tests.unit.swarm.test_strategies import plan


def _answers(*texts: str) -> list[Candidate]:
    return [Candidate(f"sample-{i}", "m", ok=True, text=t) for i, t in enumerate(texts)]


@pytest.mark.parametrize(
    ("texts", "remaining", "needed"),
    [
        ((), 5, 3),  # three alike out of five settle it
        (("Paris", "Paris", "Paris"), 2, 0),
        (("Paris", "Paris"), 3, 1),
        (("Paris", "Lyon"), 3, 2),
        (("Paris", "Paris", "Lyon"), 2, 1),
        (("Paris", "Lyon", "Nice"), 0, 0),  # nothing left to draw: the tie is the judge's
        (("Paris", "Lyon"), 1, 1),
    ],
)
def test_still_needed_is_the_fewest_samples_that_could_settle_the_vote(
    texts: tuple[str, ...], remaining: int, needed: int
) -> None:
    assert still_needed(_answers(*texts), remaining) == needed


async def test_adaptive_majority_stops_once_the_majority_cannot_change(
    runner: SwarmRunner, backends: dict[str, FakeBackend]
) -> None:
    outcome = await run_vote(runner, plan("short", "majority", samples=7), CallContext())
    assert outcome.text == "Paris"
    assert outcome.extra["samples"] == {"taken": 4, "max": 7, "stopped_early": True}
    assert len(backends["b1"].seen) == 4
    assert all(r.body["temperature"] == SAMPLING_TEMPERATURE for r in backends["b1"].seen)


async def test_adaptive_majority_keeps_drawing_while_answers_split(
    runner: SwarmRunner, backends: dict[str, FakeBackend]
) -> None:
    replies = itertools.cycle(["Paris", "Lyon"])

    def split(request: BackendRequest) -> str:
        return next(replies)

    backends["b1"].script = split
    outcome = await run_vote(runner, plan("short", "majority", samples=5), CallContext())
    assert outcome.extra["samples"]["taken"] == 5
    assert outcome.extra["samples"]["stopped_early"] is False
    assert outcome.text == "Paris"  # three of five


async def test_self_moa_samples_one_model_and_it_merges_its_own_drafts(
    runner: SwarmRunner, backends: dict[str, FakeBackend]
) -> None:
    run = plan("long", "self-moa", judge=None, samples=3, max_parallel=2)
    outcome = await run_vote(runner, run, CallContext())
    assert outcome.strategy == "self-moa"
    assert [c.agent_id for c in outcome.candidates] == ["sample-0", "sample-1", "sample-2"]
    assert len(backends["b2"].seen) == 4  # three samples and the merge
    merge = backends["b2"].seen[-1].body
    assert "Draft answers" in str(merge["messages"][-1]["content"])
    assert outcome.extra["aggregator"]["ok"] is True
    assert outcome.extra["samples"] == {"taken": 3, "max": 3, "stopped_early": False}
    assert outcome.meta()["cost"]["calls"] == 4
