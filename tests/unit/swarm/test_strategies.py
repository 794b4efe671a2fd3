from __future__ import annotations

import asyncio
import time

import pytest

from local_lattice.backends.fake import FakeBackend
from local_lattice.swarm.candidates import SwarmFailed
from local_lattice.swarm.debate import DebatePlan, run_debate
from local_lattice.swarm.pipeline import parse_steps, run_pipeline
from local_lattice.swarm.runner import Job, SwarmRunner
from local_lattice.swarm.specs import AgentSpec, CallContext
from local_lattice.swarm.strategies import VotePlan, normalize_answer, run_vote
from local_lattice.swarm.streaming import LiveText

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def plan(models: str, strategy: str, judge: str | None = "judge", **kw: object) -> VotePlan:
    agents = [AgentSpec(m) for m in models.split(",")]
    return VotePlan(agents, MESSAGES, {"max_tokens": 16}, strategy, AgentSpec(judge) if judge else None, **kw)  # type: ignore[arg-type]


async def test_best_of_n_uses_the_judges_pick_and_sums_usage(runner: SwarmRunner) -> None:
    outcome = await run_vote(runner, plan("short,long,other", "best-of-n"), CallContext())
    assert outcome.winner is not None
    assert outcome.winner.model == "long"
    assert outcome.text.endswith("Seine.")
    meta = outcome.meta()
    assert [row["agent_id"] for row in meta["judge"]["order"]] != []
    per = meta["usage"]["per_candidate"]
    assert set(per) == {"agent-0", "agent-1", "agent-2", "judge", "judge-2"}
    assert meta["usage"]["total"]["total_tokens"] == sum(u["total_tokens"] for u in per.values())


async def test_longest_and_fanout(runner: SwarmRunner) -> None:
    longest = await run_vote(runner, plan("short,long", "longest"), CallContext())
    assert longest.winner is not None
    assert longest.winner.model == "long"
    fan = await run_vote(runner, plan("broken,short,long", "fanout"), CallContext())
    assert fan.winner is not None
    assert fan.winner.model == "short"
    assert [r["ok"] for r in fan.fanout()["candidates"]] == [False, True, True]
    assert fan.headers()["X-Swarm-Error-Kinds"] == "connection_error=1"


async def test_error_kinds_and_all_failed(strict_runner: SwarmRunner) -> None:
    with pytest.raises(SwarmFailed) as info:
        await run_vote(strict_runner, plan("broken,crashy,mute,nosuch", "best-of-n"), CallContext())
    err = info.value
    assert err.status == 502
    details = err.envelope()["error_details"]
    assert details["kinds"] == {
        "connection_error": 1, "upstream_5xx": 1, "empty_response": 1, "model_not_resolved": 1
    }  # fmt: skip
    assert details["agent_count"] == 4
    assert details["upstream_statuses"] == {"404": 1, "500": 1, "503": 1}  # the original's count map
    assert (
        err.headers["X-Swarm-Error-Kinds"] == "connection_error=1,empty_response=1,model_not_resolved=1,upstream_5xx=1"
    )


async def test_majority_counts_normalized_answers(runner: SwarmRunner, backends: dict[str, FakeBackend]) -> None:
    backends["b2"].reply = "**paris.**"
    backends["b3"].reply = "The answer is Paris!"
    outcome = await run_vote(runner, plan("short,long,other", "majority"), CallContext())
    assert outcome.rationale.startswith("3 of 3")
    assert outcome.meta()["votes"][0]["count"] == 3
    assert normalize_answer("  The final answer: `Paris`. ") == "paris"


async def test_majority_tie_goes_to_the_judge(runner: SwarmRunner, backends: dict[str, FakeBackend]) -> None:
    outcome = await run_vote(runner, plan("short,long,other", "majority"), CallContext())
    assert outcome.winner is not None
    assert outcome.winner.model == "long"
    assert "tie" in outcome.rationale
    assert outcome.calls


async def test_synthesize_merges_through_the_aggregator(runner: SwarmRunner, backends: dict[str, FakeBackend]) -> None:
    backends["j"].script = None
    backends["j"].reply = "Paris (merged)"
    outcome = await run_vote(runner, plan("short,long", "synthesize"), CallContext())
    assert outcome.text == "Paris (merged)"
    assert outcome.winner is not None
    assert outcome.winner.model == "judge"
    prompt = str(backends["j"].seen[0].body["messages"][-1]["content"])
    assert "Paris" in prompt
    assert "short" not in prompt


async def test_synthesize_without_aggregator_falls_back(runner: SwarmRunner) -> None:
    outcome = await run_vote(runner, plan("short,long", "synthesize", judge="broken"), CallContext())
    assert outcome.winner is not None
    assert outcome.winner.model == "long"
    assert "aggregator unavailable" in outcome.rationale


async def test_first_success_cancels_the_losers_at_once(runner: SwarmRunner, backends: dict[str, FakeBackend]) -> None:
    backends["b2"].delay = 10
    backends["b3"].delay = 10
    started = time.perf_counter()
    outcome = await run_vote(runner, plan("long,short,other", "first-success"), CallContext())
    assert time.perf_counter() - started < 1
    assert outcome.winner is not None
    assert outcome.winner.model == "short"
    rows = outcome.meta()["candidates"]
    assert [r.get("cancelled", False) for r in rows] == [True, False, True]


async def test_first_success_streams_the_leader_and_closes_the_others(
    runner: SwarmRunner, backends: dict[str, FakeBackend]
) -> None:
    backends["b1"].delay = 0.01
    backends["b2"].delay = 10
    sink = LiveText()
    outcome = await asyncio.wait_for(run_vote(runner, plan("short,long", "first-success"), CallContext(), sink), 2)
    assert sink.model == "short"
    assert backends["b2"].closed_streams == 1  # the loser's stream was closed, not left running
    events = [sink.queue.get_nowait() for _ in range(sink.queue.qsize())]
    assert events[0] == ("start", "short")
    assert "".join(v for k, v in events if k == "delta") == outcome.text


async def test_overall_deadline_and_max_parallel(runner: SwarmRunner, backends: dict[str, FakeBackend]) -> None:
    for name in ("b1", "b2", "b3"):
        backends[name].delay = 0.2
    started = time.perf_counter()
    await runner.gather(
        [Job(f"a{i}", AgentSpec(m), MESSAGES) for i, m in enumerate(["short", "long", "other"])], CallContext(), 1
    )
    assert time.perf_counter() - started >= 0.55  # one at a time
    ctx = CallContext(deadline=time.monotonic() + 0.1)
    rows = await runner.gather([Job("a", AgentSpec("short"), MESSAGES)], ctx)
    assert rows[0].error_kind == "timeout"


async def test_pipeline_substitutes_and_reports_history(runner: SwarmRunner, backends: dict[str, FakeBackend]) -> None:
    backends["b1"].reply = "PLAN {{code}}"
    steps = parse_steps(
        [
            {"name": "plan", "model": "short"},
            {"name": "code", "model": "long", "system": "Implement {{plan}} / {{nope}}"},
            {"name": "review", "model": "other", "user": "Review {{code}} given {{plan}}"},
        ]
    )
    outcome = await run_pipeline(runner, steps, MESSAGES, {}, CallContext())
    assert [h["name"] for h in outcome.extra["history"]] == ["plan", "code", "review"]
    assert backends["b2"].seen[0].body["messages"][0]["content"] == "Implement PLAN {{code}} / {{nope}}"
    assert backends["b3"].seen[0].body["messages"] == [
        {"role": "user", "content": f"Review {backends['b2'].reply} given PLAN {{{{code}}}}"}
    ]
    assert outcome.text == "Lyon"
    assert outcome.winner is not None
    assert outcome.winner.model == "other"


async def test_pipeline_failed_step_is_502_with_history(runner: SwarmRunner) -> None:
    steps = parse_steps([{"name": "a", "model": "short"}, {"name": "b", "model": "broken"}])
    with pytest.raises(SwarmFailed) as info:
        await run_pipeline(runner, steps, MESSAGES, {}, CallContext())
    history = info.value.envelope()["error_details"]["history"]
    assert [h["name"] for h in history] == ["a", "b"]
    assert history[1]["ok"] is False


async def test_debate_rounds_transcript_and_judge(runner: SwarmRunner, backends: dict[str, FakeBackend]) -> None:
    backends["j"].script = None
    backends["j"].reply = "Paris, all things considered."
    debate = DebatePlan([AgentSpec("short"), AgentSpec("other")], MESSAGES, {}, rounds=2, judge=AgentSpec("judge"))
    outcome = await run_debate(runner, debate, CallContext())
    assert outcome.text == "Paris, all things considered."
    transcript = outcome.extra["transcript"]
    assert [(t["round"], t["model"]) for t in transcript] == [(1, "short"), (1, "other"), (2, "short"), (2, "other")]
    round2 = backends["b1"].seen[1].body["messages"]
    assert "Lyon" in round2[-1]["content"]
    assert "other" not in round2[-1]["content"]
    assert backends["j"].seen[0].body["temperature"] == 0.3
    assert len(outcome.meta()["usage"]["per_candidate"]) == 5


async def test_debate_judge_failure_falls_back_to_longest(runner: SwarmRunner) -> None:
    debate = DebatePlan([AgentSpec("short"), AgentSpec("long")], MESSAGES, {}, rounds=1, judge=AgentSpec("broken"))
    outcome = await run_debate(runner, debate, CallContext())
    assert outcome.winner is not None
    assert outcome.winner.model == "long"
    assert "judge unavailable" in outcome.rationale
