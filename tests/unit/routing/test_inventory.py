"""The inventory's cache: a model list is reused for ``ttl`` seconds, unless an in-process engine
loaded or unloaded a model since (then the next snapshot is taken anew)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from local_lattice.backends.fake import FakeBackend
from local_lattice.routing.inventory import Inventory
from local_lattice.types import ModelInfo


@dataclass
class ResidentFake(FakeBackend):
    """A fake that counts its loads like the engines do."""

    residency: int = 0

    def load(self, model: str) -> None:
        self.model_list = [dataclasses.replace(m, loaded=m.id == model or m.loaded) for m in self.model_list]
        self.residency += 1


def loaded(snapshot_models: tuple[ModelInfo, ...]) -> list[str]:
    return [m.id for m in snapshot_models if m.loaded]


async def test_a_load_in_process_shows_in_the_next_snapshot_within_the_ttl() -> None:
    engine = ResidentFake("local", [ModelInfo(id="small", backend="local", loaded=False)])
    inventory = Inventory({"local": engine}, ttl=3600)
    assert loaded((await inventory.snapshot()).models) == []
    engine.load("small")
    assert loaded((await inventory.snapshot()).models) == ["small"]


async def test_a_remote_list_is_reused_for_the_ttl() -> None:
    remote = FakeBackend.with_models("remote", "a", loaded=False)
    inventory = Inventory({"remote": remote}, ttl=3600)
    first = await inventory.snapshot()
    remote.model_list = [ModelInfo(id="a", backend="remote", loaded=True)]
    assert await inventory.snapshot() is first  # cached: no residency to say it changed
    assert loaded((await inventory.snapshot(fresh=True)).models) == ["a"]
