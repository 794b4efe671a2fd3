"""Resolution: a request's ``model`` value → an ordered list of concrete candidates, with reasons.

Pure functions over an inventory snapshot (no I/O). The order of work:

1. hard hints remove models that cannot serve the request (none left → 404 naming the constraints);
   soft hints narrow the pool only if something passes;
2. ``PREFER_LOADED_MODELS`` decides the passes: ``strict`` only loaded models when any is loaded,
   ``1`` loaded first then installed, ``0`` everything at once (``loaded=None`` counts as loaded:
   a server that does not report it serves what it lists);
3. each spec of the priority list contributes its matches in order (the first is the answer, the
   rest are the fallback order); copies of one id on several backends are ordered healthy first,
   then loaded, then fewest requests in flight;
4. nothing matched → ``ON_MODEL_MISS``: auto-pick and say so, or 404 listing what is available.

Agents repeat the same few specs, so a resolution is remembered on the snapshot's index, keyed by
everything it depends on (spec, policy, hints but the prompt length, runtime default, cooling
backends), unless copies of one id are ordered by the backends' live load.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from local_lattice.errors import ModelNotFound
from local_lattice.routing.grammar import Spec, parse_model_field
from local_lattice.routing.hints import Hints, hard_checks, preferred_check, soft_checks
from local_lattice.routing.index import Accept, ModelIndex
from local_lattice.routing.policy import BackendStatus, RoutingPolicy
from local_lattice.types import ModelInfo, ModelKind

_DEFAULT_POLICY = RoutingPolicy()
_NO_HINTS = Hints()
_HEALTHY = BackendStatus(order=1 << 30)


@dataclass(frozen=True, slots=True)
class Resolution:
    """The resolver's answer: candidate models in the order to try them (``chosen`` first), with the
    explanation and notes of how it got there, the spec as requested and the hints it used."""

    candidates: tuple[ModelInfo, ...]
    explanation: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    requested: str = ""
    hints: Hints = _NO_HINTS

    @property
    def chosen(self) -> ModelInfo:
        return self.candidates[0]


Found = tuple[ModelInfo, str]


@dataclass(slots=True)
class _Run:
    """One resolution's inputs and the notes it gathers."""

    index: ModelIndex
    policy: RoutingPolicy
    runtime_default: str
    limit: int
    notes: list[str] = field(default_factory=list)
    preferred: Accept | None = None  # tried first within each pass (the fast tier's marked models)

    def match(self, needle: str, accept: Accept) -> list[ModelInfo]:
        return self.index.match(needle, accept, self.limit)

    def expand(self, spec: Spec, accept: Accept) -> Iterator[Found]:
        if spec.kind == "role":
            prefs = self.policy.roles.get(spec.needle)
            if prefs is None:
                self.notes.append(f"unknown role {spec.needle!r}")
                return
            for pref in prefs:
                for model in self.match(pref.lower().replace("*", ""), accept):
                    yield model, f"{spec.text} '{pref}'"
        elif spec.kind == "auto":
            yield from self.auto(accept)
        elif spec.needle:
            for model in self.match(spec.needle, accept):
                if spec.kind == "wildcard":
                    how = f"wildcard '{spec.text}'"
                else:
                    how = "exact id" if model.id.lower() == spec.needle else f"substring '{spec.text}'"
                yield model, how

    def auto(self, accept: Accept) -> Iterator[Found]:
        """Runtime default → DEFAULT_MODEL → role ``default`` → everything in inventory order."""
        if self.runtime_default:
            for model in self.match(self.runtime_default.lower(), accept):
                yield model, "runtime default"
        if self.policy.default_model:
            for model in self.match(self.policy.default_model.lower(), accept):
                yield model, "DEFAULT_MODEL"
        for pref in self.policy.roles.get("default") or ():
            for model in self.match(pref.lower().replace("*", ""), accept):
                yield model, f"role:default '{pref}'"
        count = 0
        for model in self.index.models():
            if accept(model):
                yield model, "first available"
                count += 1
                if count >= self.limit:
                    return


def _accept_all(model: ModelInfo) -> bool:
    return True


def _parsed(index: ModelIndex, spec: Any, policy: RoutingPolicy) -> tuple[Spec, ...]:
    """Parse once per distinct string per snapshot: agents repeat the same few specs."""
    if not isinstance(spec, str):
        return parse_model_field(spec, policy.placeholders)
    key = (spec, policy.placeholders)
    found = index.parsed.get(key)
    if found is None:
        if len(index.parsed) >= 1024:
            index.parsed.clear()
        found = index.parsed[key] = parse_model_field(spec, policy.placeholders)
    assert isinstance(found, tuple)
    return found


def _load_rank(model: ModelInfo) -> int:
    return 0 if model.loaded else (1 if model.loaded is None else 2)


def _order_copies(found: list[Found], status: Mapping[str, BackendStatus]) -> tuple[list[Found], bool]:
    """Keep the id order; within one id, healthy, loaded, least busy, earlier backend first.
    Also says whether any id had copies to order (then the order holds for this moment only)."""
    groups: dict[str, list[Found]] = {}
    for item in found:
        groups.setdefault(item[0].id.lower(), []).append(item)
    if len(groups) == len(found):
        return found, False
    out: list[Found] = []
    for group in groups.values():
        if len(group) > 1:

            def key(item: Found) -> tuple[bool, int, int, int]:
                st = status.get(item[0].backend, _HEALTHY)
                return (not st.healthy, _load_rank(item[0]), st.in_flight, st.order)

            group.sort(key=key)
        out.extend(group)
    return out, True


def _with_preferred(passes: Sequence[Accept], preferred: Accept | None) -> Sequence[Accept]:
    if preferred is None:
        return passes
    out: list[Accept] = []
    for accept in passes:

        def first(m: ModelInfo, _a: Accept = accept) -> bool:
            return _a(m) and preferred(m)

        out += [first, accept]
    return out


def _collect(run: _Run, specs: Sequence[Spec], passes: Sequence[Accept]) -> list[Found]:
    seen: set[tuple[str, str]] = set()
    found: list[Found] = []
    for accept in _with_preferred(passes, run.preferred):
        for spec in specs:
            for model, how in run.expand(spec, accept):
                key = (model.backend, model.id)
                if key not in seen:
                    seen.add(key)
                    found.append((model, how))
                    if len(found) >= run.limit:
                        return found
    return found


def _ids(models: Iterator[ModelInfo]) -> list[str]:
    return list(dict.fromkeys(m.id for m in models))


def _hint_accept(run: _Run, hints: Hints, base: Accept, available: Callable[[], list[str]], requested: str) -> Accept:
    """Narrow ``base`` by the hints; raise for unmet hard hints; note unmet soft ones."""
    profile_for = run.policy.profiles.profile_for
    hard = hard_checks(hints)
    accept = base
    if hard:

        def capable(m: ModelInfo, _b: Accept = base) -> bool:
            return _b(m) and all(check(profile_for(m)) for _, check in hard)

        accept = capable
        if not any(accept(m) for m in run.index.models()):
            unmet = [name for name, check in hard if not any(check(profile_for(m)) for m in run.index.models())]
            unmet = unmet or [name for name, _ in hard]
            raise ModelNotFound(
                f"no model satisfies the request's needs ({', '.join(unmet)}) for {requested!r}; "
                f"available: {', '.join(available()) or 'none'}",
                param="model",
                extra={"available": available(), "unmet": unmet},
            )
    for name, check in soft_checks(hints):

        def narrowed(m: ModelInfo, _a: Accept = accept, _c: Callable[..., bool] = check) -> bool:
            return _a(m) and _c(profile_for(m))

        if any(narrowed(m) for m in run.index.models()):
            accept = narrowed
        else:
            run.notes.append(f"soft hint {name} unmet, using all models")
    first = preferred_check(hints)
    if first is not None:

        def preferred(m: ModelInfo, _c: Callable[..., bool] = first) -> bool:
            return _c(profile_for(m))

        run.preferred = preferred
    return accept


def _passes(run: _Run, accept: Accept) -> tuple[list[Accept], bool]:
    """The accept predicates to try in turn, and whether strict loading narrowed the pool."""

    def ready(m: ModelInfo) -> bool:
        return m.ready and accept(m)

    mode = run.policy.prefer_loaded
    index = run.index
    if mode == "0":
        return [accept], False
    # With no hint or cool-down narrowing the pool, the index already knows the answers.
    trivial = accept is _accept_all
    if not (index.any_ready if trivial else any(ready(m) for m in index.models())):
        return [accept], False
    if mode == "1":
        return [ready, accept], False
    return [ready], index.any_unloaded if trivial else any(not m.ready and accept(m) for m in index.models())


def _explain(requested: str, specs: Sequence[Spec], chosen: Found, notes: list[str]) -> str:
    model, how = chosen
    trivial = len(specs) == 1 and how == "exact id" and not notes
    if trivial:
        return ""
    if len(specs) == 1 and how.startswith(requested + " "):
        how = how[len(requested) + 1 :]
    head = f"{requested} -> {model.id} via {how}"
    if notes and notes[0].startswith("fallback ("):
        head, notes = f"{notes[0]} -> {model.id} via {how}", notes[1:]
    text = "; ".join([head, *notes])
    # Header values must be latin-1; ids and specs may not be.
    return text.encode("ascii", "backslashreplace").decode("ascii")


def _miss(run: _Run, requested: str, specs: Sequence[Spec], passes: list[Accept], strict: bool) -> list[Found]:
    # What is loaded now, whatever the policy: a model whose backend does not say counts as loaded.
    loaded = _ids(m for m in run.index.models() if m.loaded is not False)
    strict_note = f"STRICT_LOADED_MODELS: only loaded models are eligible; loaded: {loaded}" if strict else ""
    if run.policy.on_model_miss == "fallback" and not all(s.kind == "auto" for s in specs):
        found = _collect(run, [Spec("auto", "auto", "")], passes)
        if found:
            reason = "not loaded" if strict else "not present"
            run.notes.insert(0, f"fallback (requested '{requested}', {reason})")
            return found
    available = _ids(run.index.models())
    message = f"model {requested!r} is not available; available: {', '.join(available) or 'none'}"
    if strict:
        message = f"{strict_note} — {requested!r} did not match any loaded model; installed: {', '.join(available)}"
    raise ModelNotFound(message, param="model", extra={"available": available, "loaded": loaded})


def resolve(
    spec: Any,
    models: Sequence[ModelInfo],
    kind: ModelKind = "chat",
    *,
    policy: RoutingPolicy = _DEFAULT_POLICY,
    hints: Hints = _NO_HINTS,
    backends: Mapping[str, BackendStatus] | None = None,
    runtime_default: str = "",
    index: ModelIndex | None = None,
) -> Resolution:
    """Candidates for ``spec`` among ``models`` of ``kind``; raises ``ModelNotFound`` (404).

    ``index`` (built from ``models``) saves rebuilding the search index on every request.
    """
    index = index if index is not None else ModelIndex.build(models, kind, grams=False)
    status = backends or {}
    cooling = frozenset(name for name, st in status.items() if st.cooling)
    key = (spec, hints.routing_key, runtime_default, cooling) if isinstance(spec, str) else None
    if key is not None:
        remembered = index.resolved.get(key)
        if remembered is not None and remembered[0] is policy:
            found = remembered[1]
            assert isinstance(found, Resolution)
            return found if found.hints == hints else replace(found, hints=hints)
    resolution, by_load = _resolve(index, spec, kind, policy, hints, status, runtime_default, cooling)
    if key is not None and not by_load:
        if len(index.resolved) >= 1024:
            index.resolved.clear()
        index.resolved[key] = (policy, resolution)
    return resolution


def _resolve(
    index: ModelIndex,
    spec: Any,
    kind: ModelKind,
    policy: RoutingPolicy,
    hints: Hints,
    status: Mapping[str, BackendStatus],
    runtime_default: str,
    cooling: frozenset[str],
) -> tuple[Resolution, bool]:
    """The resolution, and whether its order depends on the backends' live load (copies of an id)."""
    run = _Run(index, policy, runtime_default, policy.max_candidates)
    requested = spec if isinstance(spec, str) else repr(spec)
    active_default = runtime_default or policy.default_model
    if policy.force_default and active_default:
        run.notes.append(f"forced default (requested '{requested}')")
        spec = active_default
    specs = _parsed(index, spec, policy)
    shown = requested if not policy.force_default or not active_default else active_default
    if not len(index):
        raise ModelNotFound(f"no {kind} models are available", param="model", extra={"available": []})

    def skip_cooling(m: ModelInfo) -> bool:
        return m.backend not in cooling

    base = skip_cooling if cooling else _accept_all

    def available() -> list[str]:
        return _ids(index.models())

    accept = _hint_accept(run, hints, base, available, shown)
    passes, strict = _passes(run, accept)
    found = _collect(run, specs, passes)
    if not found and cooling:
        found = _collect(run, specs, _passes(run, _hint_accept(run, hints, _accept_all, available, shown))[0])
        if found:
            run.notes.append(f"only cooling-down backends match: {', '.join(sorted(cooling))}")
    elif cooling:
        run.notes.append(f"skipped cooling-down backends: {', '.join(sorted(cooling))}")
    if not found:
        found = _miss(run, shown, specs, passes, strict)
    ordered, by_load = _order_copies(found, status)
    run.notes = list(dict.fromkeys(run.notes))
    resolution = Resolution(
        candidates=tuple(m for m, _ in ordered),
        explanation=_explain(shown, specs, ordered[0], run.notes),
        notes=tuple([f"{m.backend}/{m.id}: {how}" for m, how in ordered[:5]] + run.notes),
        requested=requested,
        hints=hints,
    )
    return resolution, by_load
