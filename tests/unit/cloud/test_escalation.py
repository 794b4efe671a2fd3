"""Big-task detection and the escalation decisions (pure)."""

from __future__ import annotations

import itertools

import pytest

from local_lattice.cloud.escalation import (
    Policy,
    Target,
    Thresholds,
    big_task_reason,
    decide_after_failure,
    decide_up_front,
    is_code_like,
    task_text,
)

PROSE_BIG = " ".join(["Please explain how the scheduler should treat fairness across tenants."] * 9)
PROSE_SMALL = "What is the capital of France?"
CODE_BIG = "```python\n" + "\n".join(f"def f{i}(x):\n    return x + {i}" for i in range(40)) + "\n```"
CODE_UNFENCED = "def add(a, b):\n    return a + b\n\nclass Box:\n    def __init__(self):\n        self.items = []\n"
BULLETS = "Plan:\n- gather data\n- clean it\n- train\n- ship"
STEPS = "First sketch the architecture, then write the design doc, finally review it."
TARGET = Target("anthropic", "claude-sonnet-4-5")


def body(text: str) -> dict[str, object]:
    return {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]}


def test_thresholds_each_make_a_task_big() -> None:
    limits = Thresholds()
    assert "words" in (big_task_reason(PROSE_BIG, limits) or "")
    assert "chars" in (big_task_reason("x" * 40 + " " + "y" * 470, limits) or "")
    assert "bullet" in (big_task_reason(BULLETS, limits) or "")
    assert "markers" in (big_task_reason(STEPS, limits) or "")
    assert big_task_reason(PROSE_SMALL, limits) is None
    assert big_task_reason("", limits) is None


def test_thresholds_are_configurable() -> None:
    assert big_task_reason(PROSE_SMALL, Thresholds(words=5)) == "6 words >= 5"
    assert big_task_reason(BULLETS, Thresholds(bullets=5)) is None


def test_code_like_text_never_escalates() -> None:
    assert is_code_like(CODE_BIG)
    assert is_code_like(CODE_UNFENCED)
    assert not is_code_like(PROSE_BIG)
    assert not is_code_like(STEPS)
    assert big_task_reason(CODE_BIG, Thresholds()) is None
    assert big_task_reason(CODE_UNFENCED * 10, Thresholds()) is None


def test_task_text_is_the_last_user_turn() -> None:
    parts = [
        {"type": "text", "text": "a"},
        {"type": "image_url", "image_url": {"url": "u"}},
        {"type": "text", "text": "b"},
    ]
    messages = [
        {"role": "user", "content": "old"},
        {"role": "assistant", "content": "x"},
        {"role": "user", "content": parts},
    ]
    assert task_text({"messages": messages}) == "a\nb"
    assert task_text({"messages": []}) == ""


TEXTS = {"big-prose": PROSE_BIG, "small-prose": PROSE_SMALL, "big-code": CODE_BIG, "small-code": "x = f(y); z = [1]"}


@pytest.mark.parametrize(
    ("auto", "text", "queue_full", "spill", "budget"),
    list(itertools.product([False, True], TEXTS, [False, True], [False, True], [True, False])),
)
def test_up_front_matrix(auto: bool, text: str, queue_full: bool, spill: bool, budget: bool) -> None:
    policy = Policy(auto_route=auto, spill_on_reject=spill, target=TARGET)
    decision = decide_up_front(policy, body(TEXTS[text]), would_reject=queue_full, budget_left=budget)
    big = text == "big-prose"
    expected = budget and ((auto and big) or (queue_full and spill))
    assert decision.escalate is expected
    if decision.escalate:
        assert decision.target == TARGET
        assert str(TARGET) in decision.reason
    if not budget and ((auto and big and not queue_full) or (queue_full and spill)):
        assert "budget" in decision.reason
    if not auto and not (queue_full and spill):
        assert decision.reason == ""


def test_no_target_means_nothing_escalates() -> None:
    policy = Policy(auto_route=True, spill_on_reject=True, fallback_on_failure=True, target=None)
    assert not decide_up_front(policy, body(PROSE_BIG), would_reject=True, budget_left=True).escalate
    assert not decide_after_failure(policy, "down", budget_left=True).escalate


@pytest.mark.parametrize(("configured", "budget"), list(itertools.product([False, True], [True, False])))
def test_after_failure(configured: bool, budget: bool) -> None:
    policy = Policy(fallback_on_failure=configured, target=TARGET)
    decision = decide_after_failure(policy, "backend 'local' is unreachable", budget_left=budget)
    assert decision.escalate is (configured and budget)
    if configured:
        assert "unreachable" in decision.reason
    if configured and not budget:
        assert "budget" in decision.reason


def test_auto_route_is_off_by_default() -> None:
    from local_lattice.cloud.specs import directory_of
    from local_lattice.config import load

    config = load(None, {"ANTHROPIC_API_KEY": "sk-ant-test"})
    policy = Policy.of(config, directory_of(config))
    assert policy.target == TARGET
    assert not (policy.auto_route)
    assert not (policy.spill_on_reject)
    assert not (policy.fallback_on_failure)
    on = load(None, {"ANTHROPIC_API_KEY": "k", "ANTHROPIC_AUTO_ROUTE": "1", "BIG_TASK_MIN_WORDS": "12"})
    assert Policy.of(on, directory_of(on)).auto_route
    assert on.escalation.big_task_min_words == 12
