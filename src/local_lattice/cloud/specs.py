"""Cloud model specs: ``anthropic`` and ``anthropic:<model>``, alone or in priority lists, and the
original's ``litellm/<provider>/<model>`` names read in that grammar (``litellm_equivalent``).

Owns the ``CloudDirectory`` (which cloud backends are configured, their default model, the setting
each still misses) and ``resolve_with_cloud``, which wraps any local resolver so that list items
with a cloud prefix become cloud candidates. Pure: no I/O, no backend calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from local_lattice.config import Config
from local_lattice.errors import BackendUnavailable, InvalidRequest, LatticeError, ModelNotFound
from local_lattice.routing.resolver import Resolution
from local_lattice.types import ModelInfo, ModelKind

CLOUD_PREFIXES = ("anthropic",)
LITELLM_PREFIX = "litellm/"
Resolver = Callable[[Any, Sequence[ModelInfo], ModelKind], Resolution]


@dataclass(frozen=True, slots=True)
class CloudEntry:
    """One configured cloud backend."""

    backend: str
    provider: str
    default_model: str
    missing_setting: str | None = None


@dataclass(frozen=True, slots=True)
class CloudDirectory:
    """The cloud backends of a config, found by provider or backend name."""

    entries: tuple[CloudEntry, ...] = ()
    litellm_prefix: bool = True  # read litellm/<provider>/<model> (ENABLE_LITELLM_PREFIX_ROUTING)

    def by_provider(self, provider: str) -> CloudEntry | None:
        return next((e for e in self.entries if e.provider == provider), None)

    def by_backend(self, backend: str) -> CloudEntry | None:
        return next((e for e in self.entries if e.backend == backend), None)

    def is_cloud(self, backend: str) -> bool:
        return self.by_backend(backend) is not None


def litellm_equivalent(item: str) -> str:
    """One ``litellm/<provider>/<model>`` item in this grammar: Claude models are ``anthropic:<model>``,
    any other model is looked up by its own name (the provider part named LiteLLM's route to it)."""
    rest = item.strip()[len(LITELLM_PREFIX) :].strip()
    provider, sep, model = rest.partition("/")
    if sep and provider.strip().lower() == "anthropic":
        return f"anthropic:{model.strip()}"
    if rest.lower().startswith("claude"):
        return f"anthropic:{rest}"
    return model.strip() if sep else rest


def without_litellm(spec: str) -> str:
    """``spec`` with each ``litellm/…`` item of its list replaced by its equivalent."""
    items = spec.split(",")
    return ",".join(
        litellm_equivalent(item) if item.strip().lower().startswith(LITELLM_PREFIX) else item for item in items
    )


def parse_cloud_spec(item: str) -> tuple[str, str | None] | None:
    """``("anthropic", model or None)`` when ``item`` names a cloud, else None."""
    head, sep, model = item.strip().partition(":")
    provider = head.strip().lower()
    if provider not in CLOUD_PREFIXES:
        return None
    return provider, (model.strip() or None) if sep else None


def cloud_candidate(item: str, directory: CloudDirectory) -> ModelInfo | None:
    """The candidate a cloud spec names; None when ``item`` is not a cloud spec. Raises a 400 when
    no such cloud is configured and a 503 when it lacks its key, each naming the setting."""
    parsed = parse_cloud_spec(item)
    if parsed is None:
        return None
    provider, model = parsed
    entry = directory.by_provider(provider)
    if entry is None:
        raise InvalidRequest(
            f"model {item!r} needs a cloud backend that is not configured: set ANTHROPIC_API_KEY "
            f'(or add a backend with type = "{provider}")',
            param="model",
            code="cloud_not_configured",
        )
    if entry.missing_setting is not None:
        raise BackendUnavailable(
            f"model {item!r} needs backend {entry.backend!r}, which cannot be called: set {entry.missing_setting}",
            backend=entry.backend,
            code="cloud_key_missing",
        )
    return ModelInfo(id=model or entry.default_model, backend=entry.backend, supports_tools=True)


def resolve_with_cloud(
    spec: Any,
    models: Sequence[ModelInfo],
    kind: ModelKind,
    directory: CloudDirectory,
    resolve: Resolver,
    strict: Callable[[], Resolver] | None = None,
) -> Resolution:
    """Resolve ``spec`` with ``resolve``, letting ``anthropic[:model]`` items of a comma list name clouds.

    Items are tried in order and every match is a candidate, so ``role:reasoner,anthropic:m`` puts
    the local reasoner first and the cloud model after it. Without a cloud item this is ``resolve``.
    Each local item is resolved with the resolver ``strict()`` makes (a miss moves on to the next
    item; default ``resolve``); only when every item merely missed does ``resolve`` get the whole
    list, so its ``ON_MODEL_MISS`` policy (fall back, or 404) decides.
    """
    if directory.litellm_prefix and isinstance(spec, str) and "/" in spec and LITELLM_PREFIX in spec.lower():
        spec = without_litellm(spec)
    if not isinstance(spec, str) or not any(parse_cloud_spec(item) for item in spec.split(",")):
        return resolve(spec, models, kind)
    candidates: list[ModelInfo] = []
    notes: list[str] = []
    errors: list[LatticeError] = []
    per_item = strict() if strict is not None else resolve
    for item in (part.strip() for part in spec.split(",")):
        try:
            cloud = cloud_candidate(item, directory)
            found = (cloud,) if cloud is not None else per_item(item, models, kind).candidates
        except (ModelNotFound, InvalidRequest, BackendUnavailable) as exc:
            errors.append(exc)
            notes.append(f"{item}: {exc.message}")
            continue
        candidates.extend(m for m in found if m not in candidates)
    if not candidates:
        if strict is not None and all(isinstance(e, ModelNotFound) for e in errors):
            return resolve(spec, models, kind)
        # A cloud item that cannot be called says which setting it needs, before any local miss.
        raise next((e for e in errors if not isinstance(e, ModelNotFound)), None) or (
            errors[0] if errors else ModelNotFound(f"model {spec!r} is not available", param="model")
        )
    chosen = candidates[0]
    explanation = f"{spec} -> {chosen.backend}/{chosen.id}"
    if notes:
        explanation += " (skipped " + "; ".join(notes) + ")"
    return Resolution(candidates=tuple(candidates), explanation=explanation, notes=tuple(notes))


def directory_of(config: Config) -> CloudDirectory:
    """The cloud backends of ``config``; the escalation model is the default of its backend."""
    entries = []
    for backend in config.backends:
        if backend.type not in CLOUD_PREFIXES:
            continue
        # Here, not at the top: a gateway with no cloud backend never loads the Anthropic backend.
        from local_lattice.backends.anthropic import DEFAULT_MODEL

        model = backend.models[0] if backend.models else DEFAULT_MODEL
        if config.escalation.model and config.escalation.backend in (None, backend.name):
            model = config.escalation.model
        missing = None if backend.api_key is not None and backend.api_key.get_secret_value() else "ANTHROPIC_API_KEY"
        entries.append(CloudEntry(backend.name, backend.type, model, missing))
    return CloudDirectory(tuple(entries), litellm_prefix=config.routing.litellm_prefix)
