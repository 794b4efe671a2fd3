from __future__ import annotations

import math
from pathlib import Path

from local_lattice.config import load
from local_lattice.swarm.eval import EvalResult, EvalRow, grade, load_dataset, paired_delta, render, summarize, wilson

ROOT = Path(__file__).resolve().parents[3]


def test_shipped_dataset_loads() -> None:
    rows = load_dataset(ROOT / "datasets" / "eval_small.jsonl")
    assert len(rows) == 10
    assert {r.grader for r in rows} == {"substring", "regex", "exact", "llm_judge"}


def test_graders() -> None:
    assert grade(EvalRow("1", "q", "Paris"), "It is paris.") is True
    assert grade(EvalRow("1", "q", "7", "exact"), " 7. ") is True
    assert grade(EvalRow("1", "q", "7", "exact"), "seven") is False
    assert grade(EvalRow("1", "q", r"\b(8|eight)\b", "regex"), "Eight legs") is True
    assert grade(EvalRow("1", "q", None, "llm_judge", "polite"), "hi") is None


def test_summary_deltas_against_single() -> None:
    results = [
        EvalResult("1", "single", True, 100, "a"),
        EvalResult("2", "single", False, 300, "b"),
        EvalResult("1", "vote", True, 400, "a"),
        EvalResult("2", "vote", True, 600, "b"),
    ]
    table = summarize(results, ["single", "vote"])
    assert table[1]["accuracy"] == 1.0
    assert table[1]["accuracy_delta"] == 0.5
    assert table[1]["median_ms_delta"] == 300
    assert render(table).splitlines()[2].split()[0] == "vote"


def test_wilson_interval_holds_the_share_and_stays_in_bounds() -> None:
    low, high = wilson(5, 10)
    assert round(low, 3) == 0.237
    assert round(high, 3) == 0.763
    assert wilson(0, 10)[0] == 0.0
    assert 0.0 < wilson(0, 10)[1] < 0.35
    assert wilson(0, 0) == (0.0, 1.0)


def test_paired_delta_counts_only_rows_both_graded() -> None:
    single = [EvalResult(str(i), "single", i % 2 == 0, 1, "") for i in range(10)]
    better = [EvalResult(str(i), "vote", True, 1, "") for i in range(10)] + [EvalResult("x", "vote", True, 1, "")]
    delta, half, paired = paired_delta(better, single)
    assert (delta, paired) == (0.5, 10)
    assert 0.3 < half < 0.4
    assert paired_delta([], single) == (0.0, math.inf, 0)


def test_the_verdict_says_reliable_only_when_the_interval_excludes_zero() -> None:
    rows = [str(i) for i in range(40)]
    single = [EvalResult(i, "single", False, 100, "", tokens=10) for i in rows]
    vote = [EvalResult(i, "vote", True, 300, "", tokens=31) for i in rows]
    noisy = [EvalResult(i, "majority", int(i) % 2 == 0, 100, "", tokens=20) for i in rows]
    worse = [EvalResult(i, "synthesize", False, 100, "", tokens=20) for i in rows]
    worse_base = [EvalResult(i, "single", True, 100, "", tokens=10) for i in rows]
    table = summarize([*single, *vote, *noisy], ["single", "vote", "majority"])
    assert table[0]["verdict"] is None
    assert table[1]["verdict"] == "vote: +100.0 ± 0.0 points, 3.1x tokens, 3.0x latency: a reliable gain"
    assert table[2]["verdict"].endswith(": a reliable gain")  # +50 ± 15.7: still above zero
    lost = summarize([*worse_base, *worse], ["single", "synthesize"])[1]["verdict"]
    assert lost == "synthesize: -100.0 ± 0.0 points, 2.0x tokens, 1.0x latency: a reliable loss"
    few = summarize([*single[:1], *noisy[:2]], ["single", "majority"])[1]["verdict"]
    assert few == "majority: +100.0 ± ∞ points, 2.0x tokens, 1.0x latency: no reliable gain"
    lines = render(table).splitlines()
    assert lines[-3] == ""
    assert lines[-2].startswith("vote: ")
    assert "95% CI" in lines[0]


def test_swarm_env_settings() -> None:
    env = {
        "SWARM_PER_CALL_TIMEOUT": "30",
        "SWARM_CHAT_DEFAULT_MODELS": "a, role:coder",
        "SWARM_CHAT_AUTO_MAX": "0",
        "SWARM_CHAT_ENABLED": "0",
        "SWARM_STREAM_CHUNK_CHARS": "16",
    }
    swarm = load(None, env).swarm
    assert swarm.per_call_timeout == 30
    assert swarm.chat_default_models == ["a", "role:coder"]
    assert swarm.chat_auto_max == 0
    assert swarm.chat_enabled is False
    assert swarm.stream_chunk_chars == 16
    assert load(None, {}).swarm.chat_default_strategy == "best-of-n"
