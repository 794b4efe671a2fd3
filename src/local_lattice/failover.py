"""Failover: run a request on its resolved candidates in order until one answers.

A candidate that fails before its first byte (refused, 5xx, upstream 429, a load or out-of-memory
error) hands the request to the next one, up to ``fallback_attempts``. A backend that fails
``failure_threshold`` times in a row is skipped for ``cooldown_seconds``; when that ends, one
health probe decides whether it is re-admitted or cools down again. Client errors (4xx other than
429) are the request's fault and never fail over. Owns the per-backend in-flight counts too.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeVar, runtime_checkable

from local_lattice.backends.base import Backend
from local_lattice.errors import BackendUnavailable, LatticeError, RateLimited, UpstreamError, UpstreamStatusError
from local_lattice.routing.policy import BackendStatus
from local_lattice.routing.profiles import ProfileBook, apply_generation_defaults
from local_lattice.routing.resolver import Resolution
from local_lattice.types import BackendRequest, ChunkStream, Endpoint, JSONObject, ModelInfo, StreamChunk

T = TypeVar("T")


@runtime_checkable
class ModelListCache(Protocol):
    """A backend that caches its model list; a health probe must not trust a stale one."""

    def forget_models(self) -> None: ...


def fails_over(exc: LatticeError) -> bool:
    """True for failures another candidate may not share: unreachable, 5xx, 429, load errors."""
    if isinstance(exc, UpstreamStatusError):
        return exc.status >= 500 or exc.status == 429
    # RateLimited here is the backend's (upstream 429, a spent budget), never the client's own limit.
    return isinstance(exc, BackendUnavailable | UpstreamError | RateLimited)


@dataclass
class BackendTracker:
    """In-flight counts, failures in a row and cool-downs, per backend name."""

    threshold: int = 3
    cooldown: float = 30.0
    clock: Callable[[], float] = time.monotonic
    in_flight: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    cooling_until: dict[str, float] = field(default_factory=dict)
    recovered_at: dict[str, float] = field(default_factory=dict)  # when a cool-down last ended (slow start)
    # Told of every cool-down this replica starts (replicas sharing a store skip the backend too).
    announce: Callable[[str, float], None] | None = None

    def begin(self, name: str) -> None:
        self.in_flight[name] = self.in_flight.get(name, 0) + 1

    def end(self, name: str) -> None:
        self.in_flight[name] = max(0, self.in_flight.get(name, 0) - 1)

    def succeeded(self, name: str) -> None:
        self.failures.pop(name, None)
        if self.cooling_until.pop(name, None) is not None:
            self.recovered_at[name] = self.clock()

    def failed(self, name: str) -> None:
        count = self.failures[name] = self.failures.get(name, 0) + 1
        if count >= self.threshold:
            self._start_cooling(name)

    def eject(self, name: str) -> None:
        """A health check failed: skip the backend for a cool-down, as if it had failed repeatedly."""
        self.failures[name] = max(self.failures.get(name, 0), self.threshold)
        self._start_cooling(name)

    def _start_cooling(self, name: str) -> None:
        fresh = name not in self.cooling_until
        self.cooling_until[name] = self.clock() + self.cooldown
        if fresh and self.announce is not None:
            self.announce(name, self.cooldown)

    def cool(self, name: str, seconds: float) -> None:
        """Another replica put ``name`` on cool-down: skip it as long (probed here when it ends)."""
        self.failures[name] = max(self.failures.get(name, 0), self.threshold)
        self.cooling_until[name] = max(self.cooling_until.get(name, 0.0), self.clock() + seconds)

    def cooling(self, name: str) -> bool:
        return name in self.cooling_until

    def due_for_probe(self) -> list[str]:
        now = self.clock()
        return [name for name, until in self.cooling_until.items() if until <= now]

    async def readmit(self, backends: Mapping[str, Backend]) -> None:
        """Probe every backend whose cool-down ended: healthy → back in, else another cool-down."""
        for name in self.due_for_probe():
            backend = backends.get(name)
            if backend is None:
                self.succeeded(name)
                continue
            if isinstance(backend, ModelListCache):
                backend.forget_models()
            health = await backend.health()
            if health.ok:
                self.succeeded(name)
            else:
                self.cooling_until[name] = self.clock() + self.cooldown

    def status(self, names: list[str]) -> dict[str, BackendStatus]:
        return {
            name: BackendStatus(
                healthy=not self.failures.get(name),
                in_flight=self.in_flight.get(name, 0),
                order=i,
                cooling=self.cooling(name),
            )
            for i, name in enumerate(names)
        }


@dataclass(frozen=True, slots=True)
class Attempt:
    """The candidate that answered, the resolution as it stands after failovers."""

    model: ModelInfo
    resolution: Resolution


async def run_candidates(
    resolution: Resolution,
    *,
    endpoint: Endpoint,
    body: JSONObject,
    backends: Mapping[str, Backend],
    tracker: BackendTracker,
    profiles: ProfileBook,
    prompt_chars: int,
    attempts: int,
    call: Callable[[Backend, BackendRequest], Awaitable[T]],
) -> tuple[Attempt, T]:
    """Call ``call`` on each candidate in order until one succeeds; raise the last failure.

    Each attempt gets its own copy of ``body`` with the candidate's profile defaults applied.
    ``call`` must count as "answered" only once the first byte is in (for streams: the first chunk).
    On success the backend's in-flight count stays raised: the caller ends it when the work ends.
    """
    notes: list[str] = []
    dead: set[str] = set()
    last: LatticeError | None = None
    tried = 0
    for model in resolution.candidates:
        if tried >= attempts:
            break
        if model.backend in dead or model.backend not in backends:
            continue
        tried += 1
        request_body = dict(body)
        clamps = apply_generation_defaults(request_body, endpoint, profiles.profile_for(model), prompt_chars)
        request = BackendRequest(endpoint, model.id, request_body)
        tracker.begin(model.backend)
        try:
            result = await call(backends[model.backend], request)
        except LatticeError as exc:
            tracker.end(model.backend)
            if not fails_over(exc):
                raise
            tracker.failed(model.backend)
            if isinstance(exc, BackendUnavailable) and exc.code == "backend_unavailable":
                dead.add(model.backend)
                if isinstance(backends[model.backend], ModelListCache):
                    backends[model.backend].forget_models()  # type: ignore[attr-defined]
            notes.append(f"{model.backend}/{model.id} failed ({exc.code}), failed over")
            last = exc
            continue
        except BaseException:
            tracker.end(model.backend)  # cancelled (the client left, a hedge won): the call is over
            raise
        tracker.succeeded(model.backend)
        return Attempt(model, _annotated(resolution, model, notes + clamps)), result
    if last is None:
        raise BackendUnavailable("no backend is available for the resolved candidates")
    if notes:
        last.headers["X-Model-Resolution"] = _annotated(resolution, resolution.chosen, notes).explanation
    raise last


def explain(resolution: Resolution, model: ModelInfo, notes: list[str]) -> Resolution:
    """``resolution`` as it stands once ``model`` answered, with the attempts' notes added."""
    return _annotated(resolution, model, notes)


def _annotated(resolution: Resolution, model: ModelInfo, notes: list[str]) -> Resolution:
    if not notes:
        return resolution
    head = resolution.explanation or f"{resolution.requested} -> {resolution.chosen.id}"
    if model != resolution.chosen:
        head += f"; now {model.backend}/{model.id}"
    text = "; ".join([head, *notes]).encode("ascii", "backslashreplace").decode("ascii")
    return replace(resolution, explanation=text, notes=(*resolution.notes, *notes))


async def open_stream(stream: ChunkStream) -> tuple[StreamChunk | None, ChunkStream]:
    """Wait for a stream's first chunk, so a failure before it can fail over."""
    try:
        first = await stream.__anext__()
    except StopAsyncIteration:
        return None, stream
    except BaseException:
        await stream.aclose()
        raise
    return first, stream


async def tracked(stream: ChunkStream, on_end: Callable[[], None]) -> AsyncGenerator[StreamChunk, None]:
    """``stream``, calling ``on_end`` once it finishes, fails or is closed."""
    try:
        async for chunk in stream:
            yield chunk
    finally:
        await stream.aclose()
        on_end()
