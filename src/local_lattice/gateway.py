"""The gateway's state and its one service: route a request to a backend that can serve it.

Built in the app's lifespan from the config (or given backends, for tests) and passed down; the
HTTP layer calls it, it calls routing and backends. It holds no HTTP types.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from local_lattice.backends.base import Backend
from local_lattice.backends.registry import build_backend
from local_lattice.cloud.cost import BudgetLedger, PriceBook
from local_lattice.cloud.escalation import Decision, Policy, decide_after_failure, decide_up_front
from local_lattice.cloud.specs import directory_of, resolve_with_cloud
from local_lattice.config import Config
from local_lattice.routing.inventory import Inventory
from local_lattice.routing.resolver import Resolution, resolve
from local_lattice.types import Endpoint, JSONObject, ModelInfo, ModelKind


def _never_rejects(model: ModelInfo) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class Routed:
    backend: Backend
    model: ModelInfo
    resolution: Resolution

    @property
    def routed_to(self) -> str:
        return f"{self.model.backend}/{self.model.id}"


class Gateway:
    def __init__(self, config: Config, backends: Mapping[str, Backend]) -> None:
        self.config = config
        self.backends = dict(backends)
        self.inventory = Inventory(self.backends)
        self.cloud = directory_of(config)
        self.escalation = Policy.of(config, self.cloud)
        self.prices = PriceBook.of(config)
        self.budget = BudgetLedger.of(config)
        # Admission's answer to "would you reject this model now?"; the admission layer sets it.
        self.would_reject: Callable[[ModelInfo], bool] = _never_rejects

    @classmethod
    def from_config(cls, config: Config) -> Gateway:
        return cls(config, {b.name: build_backend(b) for b in config.backends})

    async def route(self, endpoint: Endpoint, spec: Any, body: JSONObject | None = None) -> Routed:
        """The first candidate for ``spec``; given the chat ``body``, the escalation policy may send
        it to the cloud instead (big task, or local admission would reject)."""
        snapshot = await self.inventory.snapshot()
        kind: ModelKind = "embedding" if endpoint == "embeddings" else "chat"
        resolution = resolve_with_cloud(spec, snapshot.models, kind, self.cloud, resolve)
        chosen = resolution.chosen
        if body is not None and endpoint == "chat" and not self.cloud.is_cloud(chosen.backend):
            target = self.escalation.target
            decision = decide_up_front(
                self.escalation,
                body,
                would_reject=self.would_reject(chosen),
                budget_left=target is not None and self.budget.left(target.backend),
            )
            return self._apply(decision, resolution)
        return Routed(self.backends[chosen.backend], chosen, resolution)

    def escalate_after_failure(self, error: str) -> Routed | None:
        """The cloud route when every local candidate failed and the policy falls back, else None."""
        target = self.escalation.target
        budget_left = target is not None and self.budget.left(target.backend)
        decision = decide_after_failure(self.escalation, error, budget_left=budget_left)
        return self._apply(decision, None) if decision.escalate else None

    def _apply(self, decision: Decision, resolution: Resolution | None) -> Routed:
        if decision.target is None:
            assert resolution is not None
            explained = " ; ".join(p for p in (resolution.explanation, decision.reason) if p)
            chosen = resolution.chosen
            return Routed(self.backends[chosen.backend], chosen, replace(resolution, explanation=explained))
        cloud = ModelInfo(id=decision.target.model, backend=decision.target.backend, supports_tools=True)
        local = resolution.candidates if resolution is not None else ()
        escalated = Resolution(candidates=(cloud, *local), explanation=decision.reason)
        return Routed(self.backends[cloud.backend], cloud, escalated)

    async def aclose(self) -> None:
        for backend in self.backends.values():
            await backend.aclose()
