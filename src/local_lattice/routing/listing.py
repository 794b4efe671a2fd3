"""``lattice models``: every model a server started from the config would serve (the embedded and
discovered ones too, see ``routing.serving``), with its roles and key profile fields.

Builds the rows (pure, over an inventory snapshot and the routing policy) and the rich table;
the CLI only prints it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.table import Table

from local_lattice.config import Config
from local_lattice.errors import LatticeError
from local_lattice.routing.index import ModelIndex
from local_lattice.routing.policy import RoutingPolicy, build_policy
from local_lattice.routing.resolver import resolve
from local_lattice.types import ModelInfo


@dataclass(frozen=True, slots=True)
class ModelRow:
    """One model as ``/v1/models`` and the routing listing show it: roles and profile facts."""

    model: ModelInfo
    roles: tuple[str, ...]
    context_window: int
    max_tokens_ceiling: int
    latency_tier: str
    vision: bool
    tools: bool


def role_winners(models: Sequence[ModelInfo], policy: RoutingPolicy) -> dict[tuple[str, str], list[str]]:
    """(backend, id) → the roles whose ``role:<name>`` resolves to it right now."""
    index = ModelIndex.build(models, "chat")
    strict = RoutingPolicy(
        roles=policy.roles, profiles=policy.profiles, prefer_loaded=policy.prefer_loaded, on_model_miss="error"
    )
    out: dict[tuple[str, str], list[str]] = {}
    for role in policy.roles.table:
        try:
            chosen = resolve(f"role:{role}", models, policy=strict, index=index).chosen
        except LatticeError:
            continue
        out.setdefault((chosen.backend, chosen.id), []).append(role)
    return out


def model_rows(models: Sequence[ModelInfo], policy: RoutingPolicy) -> list[ModelRow]:
    winners = role_winners(models, policy)
    rows = []
    for model in models:
        profile = policy.profiles.profile_for(model)
        rows.append(
            ModelRow(
                model,
                tuple(winners.get((model.backend, model.id), ())),
                profile.context_window,
                profile.max_tokens_ceiling,
                profile.latency_tier,
                profile.supports_vision,
                profile.supports_tools,
            )
        )
    return rows


def models_table(rows: Sequence[ModelRow], errors: dict[str, str]) -> Table:
    title = "Models" + (f" (unreachable: {', '.join(sorted(errors))})" if errors else "")
    table = Table(title=title)
    for column in ("model", "backend", "kind", "loaded", "roles", "context", "max tokens", "tier", "vision", "tools"):
        table.add_column(column)
    for row in rows:
        m = row.model
        loaded = "?" if m.loaded is None else ("yes" if m.loaded else "no")
        table.add_row(
            m.id,
            m.backend,
            m.kind,
            loaded,
            ", ".join(row.roles),
            str(row.context_window),
            str(row.max_tokens_ceiling),
            row.latency_tier,
            "yes" if row.vision else "no",
            "yes" if row.tools else "no",
        )
    return table


async def inventory_table(config: Config) -> Table:
    """Gather the models a server started from ``config`` would serve, once, and build the table."""
    from local_lattice.routing.serving import served

    async with served(config) as found:
        snapshot = found.snapshot
    return models_table(model_rows(snapshot.models, build_policy(config)), dict(snapshot.errors))
