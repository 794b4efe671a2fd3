"""The one Backend protocol, plus the optional abilities a backend may add.

A backend turns a ``BackendRequest`` (an OpenAI body whose ``model`` is a concrete id) into an
answer. It raises only ``local_lattice.errors`` exceptions: each backend maps its foreign
exceptions in one place. Optional abilities are separate protocols checked with ``isinstance``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from local_lattice.types import BackendHealth, BackendRequest, BackendResponse, ChunkStream, LoadProgress, ModelInfo


@runtime_checkable
class Backend(Protocol):
    """What every backend does. ``name`` is unique in a config and shows in X-Model-Routed-To."""

    name: str

    async def models(self) -> list[ModelInfo]:
        """The models this backend can serve now (may be cached by the backend)."""
        ...

    async def complete(self, request: BackendRequest) -> BackendResponse:
        """Run a non-streamed request to the end."""
        ...

    def stream(self, request: BackendRequest) -> ChunkStream:
        """Run a streamed request; chunks are yielded as produced. Closing the iterator
        (``aclose``) must stop the work upstream at once."""
        ...

    async def health(self) -> BackendHealth: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ModelLoader(Protocol):
    """A backend that can load and unload models on request (in-process engines, LM Studio …)."""

    async def load(self, model: str) -> None: ...

    async def unload(self, model: str) -> bool:
        """Unload now (True) or as soon as in-flight work ends (False: deferred)."""
        ...


@runtime_checkable
class Resident(Protocol):
    """A backend whose model list changes as it loads and unloads models (the in-process engines):
    ``residency`` goes up at every such change, so a cached list of its models is known stale."""

    @property
    def residency(self) -> int: ...


@runtime_checkable
class Startable(Protocol):
    """A backend with work to do before serving (e.g. preloading models); run once at startup."""

    async def start(self, progress: LoadProgress | None = None) -> None: ...


@runtime_checkable
class Probed(Protocol):
    """A backend that can check afresh that its server answers, past what it has cached (active
    health checks use it; a cached answer would say nothing)."""

    async def probe(self) -> BackendHealth: ...
