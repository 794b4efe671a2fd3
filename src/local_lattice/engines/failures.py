"""Classifying model load and generation failures: out-of-memory versus everything else.

Owns the word list (whole words, case-insensitive) and the guidance shown with each class. It
turns foreign exceptions into messages; it raises nothing itself. The messages reach clients and
the key-free ``/healthz``, so they name the model, never where its files live: the model's own
path and anything else that looks like an absolute path are replaced (the log keeps the detail).
"""

from __future__ import annotations

import re
from pathlib import Path

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


# An absolute POSIX path (two components at least) or a Windows drive path.
_PATH = re.compile(r"(?<![\w.~])(?:/[^\s'\"/:]+){2,}/?|\b[A-Za-z]:\\[^\s'\"]+")


def without_paths(text: str, path: Path | None = None) -> str:
    """``text`` with ``path`` (and its folder) and any other absolute path replaced."""
    if path is not None:
        text = text.replace(str(path), "<model file>").replace(str(path.parent), "<model folder>")
    return _PATH.sub("<path>", text)


def describe_load_failure(model: str, exc: BaseException, path: Path | None = None) -> tuple[str, str]:
    """``(kind, message)`` for a failed load: kind is ``out_of_memory`` or ``load_failed``."""
    detail = without_paths(str(exc).strip(), path) or type(exc).__name__
    if is_oom(exc):
        return "out_of_memory", f"model {model!r} could not be loaded: {detail}; {OOM_GUIDANCE}"
    return "load_failed", f"model {model!r} could not be loaded: {detail}; {LOAD_GUIDANCE}"
