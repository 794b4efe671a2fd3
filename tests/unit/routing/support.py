"""Builders shared by the routing unit tests: inventories from a compact notation, policies from env."""

from __future__ import annotations

from local_lattice.config import load
from local_lattice.routing.policy import RoutingPolicy, build_policy
from local_lattice.types import ModelInfo


def inventory(text: str) -> list[ModelInfo]:
    """``"a@b1+, embed:e@b2, c-@b1"`` → models: ``@backend``, ``+`` loaded, ``-`` not, ``embed:`` kind."""
    models = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        kind = "embedding" if item.startswith("embed:") else "chat"
        item = item.removeprefix("embed:")
        ident, _, backend = item.partition("@")
        loaded = True if ident.endswith("+") else False if ident.endswith("-") else None
        models.append(ModelInfo(id=ident.rstrip("+-"), backend=backend or "local", kind=kind, loaded=loaded))
    return models


def policy(settings: str = "") -> RoutingPolicy:
    """A policy from ``"NAME=value; NAME2=value"`` environment settings, through the real config loader."""
    env = {}
    for pair in (p.strip() for p in settings.split(";")):
        if pair:
            name, _, value = pair.partition("=")
            env[name.strip()] = value.strip()
    return build_policy(load(None, env))
