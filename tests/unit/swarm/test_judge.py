from __future__ import annotations

import asyncio

import pytest

from local_lattice.backends.fake import FakeBackend
from local_lattice.swarm.candidates import Candidate
from local_lattice.swarm.judge import Ballot, judge, parse_verdict
from local_lattice.swarm.runner import SwarmRunner
from local_lattice.swarm.specs import AgentSpec, CallContext

LABELS = ("A", "B", "C")


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ('{"winner": "B", "reason": "clearest"}', "B"),
        ('Sure! Here is my verdict:\n```json\n{"winner": "Candidate C", "reason": "x"}\n```', "C"),
        ("A\nIt is the only correct one.", "A"),
        ("After careful thought, the best answer is Candidate B because it is complete.", "B"),
        ("**Winner:** (C)", "C"),
        ("I think candidate a is good but a full answer needs more.", None),
        ("asdf qwerty 12345", None),
        ('{"winner": "Q"}', None),
        ("Candidate A is fine and Candidate B is also fine.", None),
        ("", None),
    ],
)
def test_parse_verdict(text: str, label: str | None) -> None:
    assert parse_verdict(text, LABELS)[0] == label


def test_parse_verdict_keeps_the_reason() -> None:
    assert parse_verdict('{"winner": "A", "reason": "cites the source"}', LABELS) == ("A", "cites the source")


def test_ballot_maps_labels_back_through_the_shuffle() -> None:
    ballot = Ballot((2, 0, 1))
    assert ballot.labels == ("A", "B", "C")
    assert [ballot.index_of(x) for x in "ABCD"] == [2, 0, 1, None]


def _cands() -> list[Candidate]:
    return [
        Candidate("agent-0", "short", ok=True, text="Paris"),
        Candidate("agent-1", "long", ok=True, text="The capital of France is Paris, on the Seine."),
        Candidate("agent-2", "other", ok=True, text="Lyon"),
    ]


async def test_judge_sees_anonymized_shuffled_candidates(runner: SwarmRunner, backends: dict[str, FakeBackend]) -> None:
    verdict = await judge(runner, _cands(), "capital of France?", AgentSpec("judge"), CallContext())
    assert verdict.index == 1
    assert verdict.fallback_reason is None
    prompt = str(backends["j"].seen[0].body["messages"][-1]["content"])
    for model_id in ("short", "long", "other", "agent-"):
        assert model_id not in prompt  # model ids and agent ids never reach the judge
    assert verdict.ballot is not None
    assert sorted(verdict.ballot.order) == [0, 1, 2]
    assert backends["j"].seen[0].body["temperature"] == 0


async def test_judge_order_is_shuffled_across_requests(runner: SwarmRunner) -> None:
    orders = set()
    for _ in range(12):
        verdict = await judge(runner, _cands(), "q", AgentSpec("judge"), CallContext())
        assert verdict.ballot is not None
        orders.add(verdict.ballot.order)
    assert len(orders) > 1


@pytest.mark.parametrize(
    ("setup", "reason_part"),
    [
        ({"reply": "I cannot decide, they are all lovely answers in their own way."}, "no valid candidate"),
        ({"reply": '{"winner": "F"}'}, "no valid candidate"),
        ({"reply": "%%%%\x00garbage"}, "no valid candidate"),
        ({"fail": True}, "judge unavailable"),
        ({"slow": True}, "judge unavailable (timeout"),
    ],
)
async def test_bad_judges_fall_back_to_longest(
    runner: SwarmRunner, backends: dict[str, FakeBackend], setup: dict[str, object], reason_part: str
) -> None:
    j = backends["j"]
    j.script = None
    j.reply = str(setup.get("reply", ""))
    if setup.get("fail"):
        from local_lattice.errors import UpstreamError

        j.fail_with = UpstreamError("judge crashed", code="upstream_500")
    if setup.get("slow"):
        j.delay = 5
    spec = AgentSpec("judge", timeout=0.2)
    verdict = await asyncio.wait_for(judge(runner, _cands(), "q", spec, CallContext()), 3)
    assert verdict.index == 1  # the longest
    assert verdict.fallback_reason is not None
    assert reason_part in verdict.fallback_reason


async def test_judge_retries_without_json_mode_on_a_4xx(runner: SwarmRunner, backends: dict[str, FakeBackend]) -> None:
    from local_lattice.errors import UpstreamStatusError
    from local_lattice.types import BackendRequest

    def script(request: BackendRequest) -> str:
        if "response_format" in request.body:
            raise UpstreamStatusError("response_format unsupported", status=400)
        return "B"

    backends["j"].script = script
    verdict = await judge(runner, _cands(), "q", AgentSpec("judge"), CallContext())
    assert len(backends["j"].seen) == 4  # each of the two passes asked twice
    assert ["response_format" in r.body for r in backends["j"].seen].count(True) == 2
    assert [p.label for p in verdict.passes] == ["B", "B"]  # the answer in plain text was read


async def test_passes_see_swapped_orders_and_a_consistent_judge_stands(
    runner: SwarmRunner, backends: dict[str, FakeBackend]
) -> None:
    verdict = await judge(runner, _cands(), "q", AgentSpec("judge"), CallContext())
    first, second = verdict.passes
    a, b, c = first.ballot.order
    assert second.ballot.order == (b, c, a)  # every candidate moved
    assert verdict.consistent is True
    assert verdict.fallback_reason is None
    assert verdict.index == 1
    assert len(verdict.calls) == 2


async def test_a_position_biased_judge_is_inconsistent(runner: SwarmRunner, backends: dict[str, FakeBackend]) -> None:
    backends["j"].script = None
    backends["j"].reply = '{"winner": "A"}'
    verdict = await judge(runner, _cands(), "q", AgentSpec("judge"), CallContext())
    assert verdict.consistent is False
    assert verdict.index == 1  # no answers agree: the longest
    assert verdict.fallback_reason is not None
    assert verdict.fallback_reason.startswith("judge passes disagreed (A, A over swapped orders)")


async def test_one_pass_is_a_plain_verdict(backends: dict[str, FakeBackend]) -> None:
    import random

    from local_lattice.config import Config
    from local_lattice.gateway import Gateway

    config = Config.model_validate({"swarm": {"judge_passes": 1}})
    runner = SwarmRunner(Gateway(config, backends), config.swarm, rng=random.Random(3))
    backends["j"].script = None
    backends["j"].reply = '{"winner": "A"}'
    verdict = await judge(runner, _cands(), "q", AgentSpec("judge"), CallContext())
    assert verdict.consistent is True
    assert verdict.ballot is not None
    assert verdict.index == verdict.ballot.order[0]
    assert len(backends["j"].seen) == 1
