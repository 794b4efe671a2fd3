"""Backend for Ollama: installed models from ``/api/tags``, loaded ones from ``/api/ps``, chat
through its OpenAI-compatible ``/v1``. ``keep_alive`` passes through (configurable default)."""

from __future__ import annotations

from typing import Any

from local_lattice.backends.openai_compat import OpenAIBackend, guess_kind
from local_lattice.config import BackendConfig
from local_lattice.types import BackendRequest, ModelInfo, ModelKind


class OllamaBackend(OpenAIBackend):
    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self.root = config.url.removesuffix("/v1")
        self.base_url = self.root + "/v1"

    def prepare_body(self, request: BackendRequest) -> dict[str, Any]:
        body = super().prepare_body(request)
        if self.config.keep_alive is not None:
            body.setdefault("keep_alive", self.config.keep_alive)
        return body

    async def fetch_models(self) -> list[ModelInfo]:
        tags = await self._get_json(self.root + "/api/tags")
        running = await self._get_json(self.root + "/api/ps")
        loaded = {
            str(item.get("name") or item.get("model"))
            for item in (running.get("models") or [] if isinstance(running, dict) else [])
            if isinstance(item, dict)
        }
        out = []
        for item in tags.get("models") or [] if isinstance(tags, dict) else []:
            if not isinstance(item, dict) or not (item.get("name") or item.get("model")):
                continue
            name = str(item.get("name") or item.get("model"))
            details = item.get("details") if isinstance(item.get("details"), dict) else {}
            family = str(details.get("family", "")) if details else ""
            kind: ModelKind = "embedding" if "bert" in family or guess_kind(name) == "embedding" else "chat"
            size = item.get("size")
            out.append(
                ModelInfo(
                    id=name,
                    backend=self.name,
                    kind=kind,
                    loaded=name in loaded,
                    size_bytes=size if isinstance(size, int) else None,
                )
            )
        return out
