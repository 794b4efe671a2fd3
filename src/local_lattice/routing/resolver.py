"""Resolution: a request's ``model`` value → an ordered list of concrete candidates.

Pure functions over an inventory snapshot (no I/O). This is the seam the capability grammar
plugs into; today it matches an exact id, case-insensitively, on any backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from local_lattice.errors import ModelNotFound
from local_lattice.types import ModelInfo, ModelKind


@dataclass(frozen=True, slots=True)
class Resolution:
    candidates: tuple[ModelInfo, ...]
    explanation: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def chosen(self) -> ModelInfo:
        return self.candidates[0]


def resolve(spec: Any, models: Sequence[ModelInfo], kind: ModelKind = "chat") -> Resolution:
    """Candidates for ``spec`` among ``models`` of ``kind``; raises ``ModelNotFound`` (404)."""
    pool = [m for m in models if m.kind == kind]
    if isinstance(spec, str) and spec.strip():
        wanted = spec.strip().lower()
        found = tuple(m for m in pool if m.id.lower() == wanted)
        if found:
            return Resolution(candidates=found)
    available = sorted({m.id for m in pool})
    raise ModelNotFound(
        f"model {spec!r} is not available; available: {', '.join(available) or 'none'}",
        param="model",
        extra={"available": available},
    )
