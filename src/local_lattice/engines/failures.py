"""Classifying model load and generation failures: out-of-memory versus everything else.

Owns the word list (whole words, case-insensitive) and the guidance shown with each class. It
turns foreign exceptions into messages; it raises nothing itself.
"""

from __future__ import annotations

import re

_OOM = re.compile(
    r"\b(out of memory|oom|resource exhausted|resource_exhausted|killed|bad_alloc|cannot allocate memory|"
    r"failed to allocate|insufficient memory|not enough memory|memoryerror)\b",
    re.IGNORECASE,
)

OOM_GUIDANCE = (
    "the model did not fit in memory: lower MAX_CONCURRENT_MODELS or engines.memory_budget_gb, "
    "use a smaller quantization, or lower n_ctx"
)
LOAD_GUIDANCE = "check that the file is a complete, supported model (re-download it if it was cut short)"


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or bool(_OOM.search(f"{type(exc).__name__} {exc}"))


def describe_load_failure(model: str, exc: BaseException) -> tuple[str, str]:
    """``(kind, message)`` for a failed load: kind is ``out_of_memory`` or ``load_failed``."""
    detail = str(exc).strip() or type(exc).__name__
    if is_oom(exc):
        return "out_of_memory", f"model {model!r} could not be loaded: {detail}; {OOM_GUIDANCE}"
    return "load_failed", f"model {model!r} could not be loaded: {detail}; {LOAD_GUIDANCE}"
