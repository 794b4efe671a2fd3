"""Test doubles beyond ``FakeBackend``: a backend that can load and unload its models."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from local_lattice.backends.fake import FakeBackend
from local_lattice.errors import ModelNotFound, NotFound


@dataclass
class FakeLoaderBackend(FakeBackend):
    """A ``FakeBackend`` implementing ``ModelLoader``: load/unload flip the models' ``loaded`` flag."""

    def _set(self, model: str, loaded: bool) -> None:
        for i, info in enumerate(self.model_list):
            if info.id == model:
                self.model_list[i] = dataclasses.replace(info, loaded=loaded)
                return
        raise ModelNotFound(f"model {model!r} is not on {self.name}")

    async def load(self, model: str) -> None:
        self._set(model, True)

    async def unload(self, model: str) -> bool:
        if not any(m.id == model and m.loaded for m in self.model_list):
            self._set(model, False)  # unknown ids raise ModelNotFound
            raise NotFound(f"model {model!r} is not loaded", code="model_not_loaded")  # as the engines do
        self._set(model, False)
        return True
