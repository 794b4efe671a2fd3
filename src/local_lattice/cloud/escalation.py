"""When a chat leaves the machine: big-task detection and the three escalation decisions.

Pure functions of the request text, the configured policy and facts the caller supplies (is the
cloud callable, is its budget left, would local admission reject). Each decision carries the
sentence that ``X-Model-Resolution`` shows. Every path is off unless configured.

    up front      big task (auto_route on)          -> cloud, or "served locally: budget spent"
                  local admission would reject       -> cloud when spill_on_reject, else no change
    after failure every local candidate failed       -> cloud when fallback_on_failure
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from local_lattice.cloud.specs import CloudDirectory
from local_lattice.config import Config, EscalationConfig
from local_lattice.types import JSONObject

_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+\S", re.MULTILINE)
_STEP_MARKERS = re.compile(
    r"\b(?:step\s*\d+|first(?:ly)?|second(?:ly)?|third(?:ly)?|then|next|finally|phase\s*\d+|"
    r"architecture|architect\w*|design|components?|microservices?|trade-?offs?|migrat\w+|roadmap)\b",
    re.IGNORECASE,
)
_CODE_FENCE = re.compile(r"```|~~~")
_CODE_LINE = re.compile(
    r"^\s*(?:def |class |import |from \S+ import |function |const |let |var |public |private |#include|"
    r"return\b|if\s*\(|for\s*\(|while\s*\(|\}|\{$|<\w+[^>]*>|SELECT |INSERT |CREATE TABLE)",
    re.MULTILINE | re.IGNORECASE,
)
_SYMBOLS = re.compile(r"[{}();=<>\[\]]")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a chat request counts as a big task (words, characters, bullets, step markers)."""

    words: int = 80
    chars: int = 500
    bullets: int = 4
    step_markers: int = 3

    @classmethod
    def of(cls, config: EscalationConfig) -> Thresholds:
        return cls(
            config.big_task_min_words,
            config.big_task_min_chars,
            config.big_task_min_bullets,
            config.big_task_min_step_markers,
        )


def is_code_like(text: str) -> bool:
    """Code fences, several code-shaped lines, or a dense share of code punctuation."""
    if _CODE_FENCE.search(text):
        return True
    lines = [line for line in text.splitlines() if line.strip()]
    code_lines = len(_CODE_LINE.findall(text))
    if code_lines >= 3 or (lines and code_lines / len(lines) >= 0.3 and code_lines >= 2):
        return True
    return len(text) >= 40 and len(_SYMBOLS.findall(text)) / len(text) > 0.05


def big_task_reason(text: str, limits: Thresholds) -> str | None:
    """Why ``text`` is a big task (the first threshold it meets), or None; code never is."""
    if not text.strip() or is_code_like(text):
        return None
    words = len(text.split())
    if words >= limits.words:
        return f"{words} words >= {limits.words}"
    if len(text) >= limits.chars:
        return f"{len(text)} chars >= {limits.chars}"
    bullets = len(_BULLET.findall(text))
    if bullets >= limits.bullets:
        return f"{bullets} bullet lines >= {limits.bullets}"
    markers = len(_STEP_MARKERS.findall(text))
    if markers >= limits.step_markers:
        return f"{markers} step/architecture markers >= {limits.step_markers}"
    return None


def task_text(body: JSONObject) -> str:
    """The text a task is judged by: the last user message's text parts."""
    for message in reversed(body.get("messages") or []):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
        return ""
    return ""


@dataclass(frozen=True, slots=True)
class Target:
    """The cloud model escalation sends requests to."""

    backend: str
    model: str

    def __str__(self) -> str:
        return f"{self.backend}/{self.model}"


@dataclass(frozen=True, slots=True)
class Policy:
    """The escalation settings of a config: when requests go to the cloud target (a big task, a local
    model that would reject, a local failure) and which target that is."""

    auto_route: bool = False
    spill_on_reject: bool = False
    fallback_on_failure: bool = False
    thresholds: Thresholds = Thresholds()
    target: Target | None = None

    @property
    def decides_up_front(self) -> bool:
        """Can ``decide_up_front`` say anything? Without a target, or with both up-front paths off,
        it always stays (and the caller can skip gathering its facts)."""
        return self.target is not None and (self.auto_route or self.spill_on_reject)

    @classmethod
    def of(cls, config: Config, directory: CloudDirectory) -> Policy:
        esc = config.escalation
        entry = directory.by_backend(esc.backend) if esc.backend else (directory.entries or (None,))[0]
        # A cloud without its key is no target: escalation then stays local instead of failing.
        target = Target(entry.backend, entry.default_model) if entry and not entry.missing_setting else None
        return cls(esc.auto_route, esc.spill_on_reject, esc.fallback_on_failure, Thresholds.of(esc), target)


@dataclass(frozen=True, slots=True)
class Decision:
    """``target`` set = send there; ``reason`` is shown either way (empty = nothing to say)."""

    target: Target | None = None
    reason: str = ""

    @property
    def escalate(self) -> bool:
        return self.target is not None


STAY = Decision()


def decide_up_front(policy: Policy, body: JSONObject, *, would_reject: bool, budget_left: bool) -> Decision:
    """Before running locally: big-task escalation, then spill-over when admission would reject."""
    target = policy.target
    if policy.auto_route and target is not None:
        reason = big_task_reason(task_text(body), policy.thresholds)
        if reason is not None:
            if budget_left:
                return Decision(target, f"big task ({reason}) -> escalated to {target}")
            if not would_reject:
                return Decision(
                    None, f"big task ({reason}) but the daily budget of {target.backend!r} is spent -> local"
                )
    if would_reject and policy.spill_on_reject and target is not None:
        if budget_left:
            return Decision(target, f"local queue full -> spilled to {target}")
        return Decision(None, f"local queue full and the daily budget of {target.backend!r} is spent")
    return STAY


def decide_after_failure(policy: Policy, error: str, *, budget_left: bool) -> Decision:
    """Every local candidate failed with ``error``: fall back to the cloud when configured."""
    target = policy.target
    if not policy.fallback_on_failure or target is None:
        return STAY
    if not budget_left:
        return Decision(None, f"local failed ({error}); the daily budget of {target.backend!r} is spent")
    return Decision(target, f"local failed ({error}) -> fell back to {target}")
