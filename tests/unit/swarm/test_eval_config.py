from __future__ import annotations

from pathlib import Path

from local_lattice.config import load
from local_lattice.swarm.eval import EvalResult, EvalRow, grade, load_dataset, render, summarize

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
