"""The ``model`` field grammar: a request's ``model`` value → placeholder or an ordered spec list.

    model      := placeholder | spec ("," spec)*
    spec       := "role:" name | text-with-"*" (substring) | text (exact id, then substring)
    placeholder:= "" | "auto" | "default" | a common OpenAI/Claude id | any non-string | configured extras

Parsing only: no inventory, no I/O. Matching is case-insensitive, so needles are lower-cased here once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

CORE_PLACEHOLDERS: frozenset[str] = frozenset(
    {
        "",
        "auto",
        "default",
        "gpt-3.5-turbo",
        "gpt-4",
        "gpt-4o",
        "gpt-4-turbo",
        "gpt-4.1",
        "claude-3-5-sonnet",
        "claude-3-opus",
    }
)
# Ids the original's agent integrations sent to mean "whatever you have"; kept unless the operator sets
# EXTRA_PLACEHOLDER_MODELS (an empty value removes them).
LEGACY_PLACEHOLDERS: frozenset[str] = frozenset(
    {
        "middlelayer",
        "middle-layer",
        "middle_layer",
        "mlxmiddlelayer",
        "mlx-middle-layer",
        "mlx_middle_layer",
        "mlx",
        "lmstudio",
        "openclaw",
    }
)

SpecKind = Literal["auto", "role", "wildcard", "exact"]


@dataclass(frozen=True, slots=True)
class Spec:
    """One entry of a priority list. ``needle`` is lower-case: the role name, or the text to match."""

    kind: SpecKind
    text: str
    needle: str


def placeholders(extra: Iterable[str] | None) -> frozenset[str]:
    """The effective placeholder ids: the core set plus ``extra`` (``None`` → the legacy ids)."""
    added = LEGACY_PLACEHOLDERS if extra is None else frozenset(e.strip().lower() for e in extra if e.strip())
    return CORE_PLACEHOLDERS | added


def is_placeholder(value: Any, known: frozenset[str]) -> bool:
    return not isinstance(value, str) or value.strip().lower() in known


def parse_spec(text: str, known: frozenset[str]) -> Spec | None:
    """One trimmed entry → a ``Spec``; ``None`` for an empty entry (ignored)."""
    text = text.strip()
    lowered = text.lower()
    if not text:
        return None
    if lowered in known:
        return Spec("auto", text, "")
    if lowered.startswith("role:"):
        return Spec("role", text, lowered[5:].strip())
    if "*" in text:
        return Spec("wildcard", text, lowered.replace("*", ""))
    return Spec("exact", text, lowered)


def parse_model_field(value: Any, known: frozenset[str]) -> tuple[Spec, ...]:
    """The whole field → its specs in priority order. A placeholder is one ``auto`` spec."""
    if is_placeholder(value, known):
        shown = value if isinstance(value, str) else repr(value)
        return (Spec("auto", shown, ""),)
    specs = (parse_spec(part, known) for part in value.split(","))
    return tuple(spec for spec in specs if spec is not None)
