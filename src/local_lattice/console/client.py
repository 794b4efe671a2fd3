"""A small HTTP client for a running gateway, used by ``ps`` and ``demo``: JSON in, status, headers
and JSON out, the API key sent as a bearer token. Connection failures raise ``GatewayUnreachable``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp


class GatewayUnreachable(Exception):
    """Nothing answered at the URL (the message says where and why)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer of the gateway to the console: status, headers, decoded body and time taken."""

    status: int
    headers: dict[str, str]
    body: Any
    seconds: float

    @property
    def error(self) -> str:
        """The error envelope's message, or the status when the body is not the envelope."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return str(self.body["error"].get("message", ""))
        return f"HTTP {self.status}"


class GatewayClient:
    """The console commands' small HTTP client for a running gateway (with its key, if any)."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 300.0) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._session = aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=timeout))

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._session.close()

    async def request(self, method: str, path: str, body: Any = None) -> Reply:
        started = time.perf_counter()
        try:
            async with self._session.request(method, self.url + path, json=body) as response:
                text = await response.text()
                try:
                    payload: Any = await response.json(content_type=None) if text else None
                except ValueError:
                    payload = text
                headers = {k.lower(): v for k, v in response.headers.items()}
                return Reply(response.status, headers, payload, time.perf_counter() - started)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GatewayUnreachable(f"no gateway answers at {self.url} ({type(exc).__name__}: {exc})") from None

    async def get(self, path: str) -> Reply:
        return await self.request("GET", path)

    async def post(self, path: str, body: Any) -> Reply:
        return await self.request("POST", path, body)
