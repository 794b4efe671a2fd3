"""A search index over one kind of model in an inventory snapshot: exact and substring lookups.

Built once per snapshot (the gateway caches it), so resolving a request does no per-model
lower-casing. Substring search starts from the rarest 3-character piece of the needle (a trigram
posting list), so a miss among hundreds of ids costs a few dictionary lookups, not a scan; needles
shorter than three characters scan one joined string of the ids with ``str.find``. Pure: no I/O.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from local_lattice.types import ModelInfo, ModelKind

Accept = Callable[[ModelInfo], bool]


def accept_all(model: ModelInfo) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class ModelIndex:
    """Distinct ids (lower-cased) in inventory order, each with every backend's copy."""

    kind: ModelKind
    keys: tuple[str, ...]
    copies: dict[str, tuple[ModelInfo, ...]]
    blob: str
    starts: tuple[int, ...]
    grams: dict[str, tuple[int, ...]] | None
    any_ready: bool = False
    any_unloaded: bool = False
    any_copies: bool = False  # some id is served by several backends (their live status orders them)
    parsed: dict[object, object] = field(default_factory=dict)
    resolved: dict[object, tuple[object, object]] = field(default_factory=dict)  # see resolver.resolve

    @classmethod
    def build(cls, models: Sequence[ModelInfo], kind: ModelKind, *, grams: bool = True) -> ModelIndex:
        """``grams=False`` skips the trigram postings: cheaper to build, slower to search."""
        copies: dict[str, list[ModelInfo]] = {}
        for model in models:
            if model.kind == kind:
                copies.setdefault(model.id.lower(), []).append(model)
        keys = tuple(copies)
        starts: list[int] = []
        offset = 0
        for key in keys:
            starts.append(offset)
            offset += len(key) + 1
        postings: dict[str, list[int]] = {}
        for slot, key in enumerate(keys) if grams else ():
            for gram in {key[i : i + 3] for i in range(len(key) - 2)}:
                postings.setdefault(gram, []).append(slot)
        return cls(
            kind,
            keys,
            {k: tuple(v) for k, v in copies.items()},
            "\n".join(keys),
            tuple(starts),
            {g: tuple(v) for g, v in postings.items()} if grams else None,
            any_ready=any(m.ready for group in copies.values() for m in group),
            any_unloaded=any(not m.ready for group in copies.values() for m in group),
            any_copies=any(len(group) > 1 for group in copies.values()),
        )

    def __len__(self) -> int:
        return len(self.keys)

    def models(self) -> Iterator[ModelInfo]:
        for key in self.keys:
            yield from self.copies[key]

    def exact(self, needle: str) -> tuple[ModelInfo, ...]:
        return self.copies.get(needle, ())

    def containing(self, needle: str) -> Iterator[str]:
        """Keys containing ``needle``, in inventory order."""
        if not needle or "\n" in needle:
            return
        if self.grams is not None and len(needle) >= 3:
            yield from self._by_grams(self.grams, needle)
            return
        starts, find = self.starts, self.blob.find
        position = find(needle)
        while position >= 0:
            slot = bisect_right(starts, position) - 1
            yield self.keys[slot]
            following = slot + 1
            if following >= len(starts):
                return
            position = find(needle, starts[following])

    def _by_grams(self, grams: dict[str, tuple[int, ...]], needle: str) -> Iterator[str]:
        rarest: tuple[int, ...] | None = None
        for i in range(len(needle) - 2):
            slots = grams.get(needle[i : i + 3])
            if slots is None:
                return
            if rarest is None or len(slots) < len(rarest):
                rarest = slots
        keys = self.keys
        for slot in rarest or ():
            if needle in keys[slot]:
                yield keys[slot]

    def match(self, needle: str, accept: Accept, limit: int) -> list[ModelInfo]:
        """Models for one needle: exact id if any copy is acceptable, else ids containing it."""
        found = [m for m in self.exact(needle) if accept(m)]
        if found:
            return found
        out: list[ModelInfo] = []
        for key in self.containing(needle):
            out.extend(m for m in self.copies[key] if accept(m))
            if len(out) >= limit:
                break
        return out
