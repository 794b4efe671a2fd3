"""Comparing answers: the comparable core of an answer (``normalize_answer``) and the groups of
candidates that gave the same one. Pure; the vote strategies and the judge's fallback share it."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from local_lattice.swarm.candidates import Candidate

_FILLER = re.compile(r"^(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)\s*", re.IGNORECASE)


def normalize_answer(text: str) -> str:
    """The comparable core of an answer: case, accents, markup, filler and end punctuation removed."""
    core = unicodedata.normalize("NFKC", text).strip().casefold()
    core = re.sub(r"[*_`#>]+", "", core)
    core = _FILLER.sub("", core)
    core = re.sub(r"\s+", " ", core).strip(" .!?;:\"'()[]")
    return core


def answer_groups(candidates: Sequence[Candidate], among: Sequence[int] | None = None) -> dict[str, list[int]]:
    """The good candidates (of ``among``) grouped by their normalized answer, in first-seen order."""
    groups: dict[str, list[int]] = {}
    for i in among if among is not None else range(len(candidates)):
        if candidates[i].ok:
            groups.setdefault(normalize_answer(candidates[i].text), []).append(i)
    return groups


def sole_leader(groups: dict[str, list[int]]) -> list[int] | None:
    """The members of the one largest group, or None when the largest size is shared."""
    if not groups:
        return None
    top = max(len(members) for members in groups.values())
    leaders = [members for members in groups.values() if len(members) == top]
    return leaders[0] if len(leaders) == 1 else None
