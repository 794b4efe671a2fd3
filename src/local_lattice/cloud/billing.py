"""Billing a call to a priced backend: refuse it when the day's budget is spent, put the cost in
the answer's usage (``usage.cost_usd``) and book it against the backend's daily budget.

Wraps a backend call (``complete`` or stream opening) so failover treats a spent budget like any
other refusal and moves on to the next candidate. No HTTP types here.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import replace

import orjson

from local_lattice.backends.base import Backend
from local_lattice.cloud.cost import BudgetLedger, PriceBook, TokenPrice, seconds_to_midnight
from local_lattice.errors import RateLimited
from local_lattice.types import BackendRequest, BackendResponse, ChunkStream, StreamChunk, Usage


class Billing:
    """Prices the answers of priced backends and keeps their daily budgets: a spent budget refuses the
    call before it is made (429 ``budget_exceeded`` until midnight UTC)."""

    def __init__(self, prices: PriceBook, budget: BudgetLedger) -> None:
        self.prices = prices
        self.budget = budget

    def _check(self, backend: str) -> None:
        if not self.budget.left(backend):
            raise RateLimited(
                f"the daily budget of backend {backend!r} is spent (${self.budget.spent(backend):.4f})",
                retry_after=seconds_to_midnight(),
                kind="budget_exceeded",
            )

    def _book(self, backend: str, price: TokenPrice, usage: Usage) -> Usage:
        cost = price.cost(usage)
        self.budget.record(backend, cost)
        return replace(usage, cost_usd=cost)

    async def complete(self, backend: Backend, request: BackendRequest) -> BackendResponse:
        self._check(backend.name)
        price = self.prices.price(backend.name, request.model)
        answer = await backend.complete(request)
        if price is None or answer.usage is None:
            return answer
        usage = self._book(backend.name, price, answer.usage)
        data = orjson.loads(answer.content)
        if isinstance(data, dict) and isinstance(data.get("usage"), dict):
            data["usage"]["cost_usd"] = round(usage.cost_usd or 0.0, 8)
        return BackendResponse(orjson.dumps(data), usage)

    def stream(self, backend: Backend, request: BackendRequest) -> ChunkStream:
        self._check(backend.name)
        price = self.prices.price(backend.name, request.model)
        if price is None:
            return backend.stream(request)
        options = request.body.get("stream_options")
        asked = isinstance(options, dict) and options.get("include_usage") is True
        # Usage is needed to know the cost; ask for it and drop the usage-only chunk if the client did not.
        request.body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        return self._priced(backend, request, price, hide_usage_only=not asked)

    async def _priced(
        self, backend: Backend, request: BackendRequest, price: TokenPrice, hide_usage_only: bool
    ) -> AsyncGenerator[StreamChunk, None]:
        chunks = backend.stream(request)
        try:
            async for chunk in chunks:
                if chunk.usage is None:
                    yield chunk
                    continue
                usage = self._book(backend.name, price, chunk.usage)
                data = orjson.loads(chunk.payload)
                if hide_usage_only and not data.get("choices"):
                    continue
                data["usage"]["cost_usd"] = round(usage.cost_usd or 0.0, 8)
                yield StreamChunk(orjson.dumps(data), usage)
        finally:
            await chunks.aclose()
