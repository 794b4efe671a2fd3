"""Backend for LM Studio: calls through its OpenAI-compatible ``/v1``, models from its own
``/api/v0/models``.

That list says what OpenAI's does not: whether each model is loaded (``state``), its context
length, its type (``llm``, ``vlm``, ``embeddings``) and what LM Studio knows of it (publisher, arch,
quantization …). Those fields ride along on the gateway's ``/v1/models``. An LM Studio without
``/api/v0`` (older builds) is listed from ``/v1/models`` instead, and not asked again; any other
failure of that list falls back for this listing only. Everything else is ``OpenAIBackend``'s.
"""

from __future__ import annotations

from typing import Any

from local_lattice.backends.openai_compat import OpenAIBackend, guess_kind
from local_lattice.config import BackendConfig
from local_lattice.errors import UpstreamError, UpstreamStatusError
from local_lattice.types import ModelInfo, ModelKind

# Answers that mean "this server has no /api/v0", as opposed to a passing failure.
_NO_NATIVE_API = frozenset({400, 404, 405})
_OURS = frozenset({"id", "object"})


def _kind(item: dict[str, Any]) -> ModelKind:
    if item.get("type") == "embeddings":
        return "embedding"
    return "chat" if item.get("type") in ("llm", "vlm") else guess_kind(str(item["id"]))


def native_model(item: dict[str, Any], backend: str) -> ModelInfo:
    """One entry of ``/api/v0/models`` as a model of ``backend``."""
    context = item.get("loaded_context_length") or item.get("max_context_length")
    return ModelInfo(
        id=str(item["id"]),
        backend=backend,
        kind=_kind(item),
        loaded=item.get("state") == "loaded",
        context_length=context if isinstance(context, int) and context > 0 else None,
        supports_vision=True if item.get("type") == "vlm" else None,
        listing={k: v for k, v in item.items() if k not in _OURS},
    )


class LMStudioBackend(OpenAIBackend):
    """An LM Studio server (``type = "lmstudio"``)."""

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self.root = self.base_url.removesuffix("/v1")
        self.native_api = True  # until the server shows it has no /api/v0

    async def fetch_models(self) -> list[ModelInfo]:
        if self.native_api:
            found = await self._native_models()
            if found is not None:
                return found
        data = await self._get_json(self.base_url + "/models")
        items = data.get("data", []) if isinstance(data, dict) else []
        return [
            ModelInfo(
                id=str(item["id"]),
                backend=self.name,
                kind=guess_kind(str(item["id"])),
                listing={k: v for k, v in item.items() if k not in _OURS},
            )
            for item in items
            if isinstance(item, dict) and "id" in item
        ]

    async def _native_models(self) -> list[ModelInfo] | None:
        """The models of ``/api/v0/models``, or None when the server cannot list them there."""
        try:
            data = await self._get_json(self.root + "/api/v0/models")
        except UpstreamStatusError as exc:
            if exc.status in _NO_NATIVE_API:
                self.native_api = False
            return None
        except UpstreamError:
            return None
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            self.native_api = False
            return None
        return [native_model(item, self.name) for item in items if isinstance(item, dict) and "id" in item]
