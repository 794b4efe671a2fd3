"""The transport seam of the HTTP backends: ``Upstream``, one method that sends a request to one
origin and returns its answer once the status and headers are in, and the choice of transport.

Two transports satisfy it:

- ``http1.Pool``, the gateway's own HTTP/1.1 client: loopback upstreams and any origin reached
  directly (the hot path: local model servers);
- ``httpx_upstream.HttpxUpstream``: an origin behind a proxy (the backend's ``proxy`` key, whatever
  the origin; or ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` from the environment, minus
  ``NO_PROXY``, for origins off this machine) and remote ``https`` origins, where it speaks HTTP/2
  when the origin offers it.

Both bound an answer's body (received and decoded), keep the call's time limit (``within``, the
one time limit of an upstream call) and fail with the ``http1`` failure family, which each backend
maps to ``local_lattice.errors`` in one place. Unit tests of the backends use a fake upstream.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Protocol

from local_lattice.backends.http1 import Origin, Pool


class UpstreamAnswer(Protocol):
    """An answer whose status and headers have arrived. Reading its body to the end (``read``,
    ``line_groups``) frees the call; leaving ``async with`` before the end drops the rest."""

    status: int

    def header(self, name: str) -> str | None: ...

    async def read(self) -> bytes: ...

    def line_groups(self) -> AsyncIterator[list[bytes]]: ...

    async def __aenter__(self) -> UpstreamAnswer: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class Upstream(Protocol):
    """Requests to one origin. ``path`` is sent under the base URL's path."""

    async def request(
        self, method: str, path: str, body: bytes = b"", *, within: float | None = None
    ) -> UpstreamAnswer: ...

    @property
    def in_use(self) -> int:
        """Requests being sent or answered."""
        ...

    async def aclose(self) -> None: ...


def is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def proxy_for(origin: Origin, configured: str | None, env: Mapping[str, str]) -> str | None:
    """The proxy a backend's calls go through, or None to connect directly: the configured one
    (any origin), else the environment's for an origin off this machine that ``NO_PROXY`` does not
    exempt."""
    if configured:
        return configured
    if is_loopback(origin.host):
        return None
    proxies = {name.lower()[:-6]: value for name, value in env.items() if name.lower().endswith("_proxy") and value}
    chosen = proxies.get("https" if origin.tls else "http") or proxies.get("all")
    if not chosen:
        return None
    return None if exempt(origin.host, proxies.get("no", "")) else chosen


def exempt(host: str, no_proxy: str) -> bool:
    """Does ``NO_PROXY`` (comma-separated names, ``.suffix`` or ``*``; ports ignored) cover ``host``?"""
    host = host.lower().rstrip(".")
    for entry in no_proxy.lower().split(","):
        name = entry.strip().rsplit(":", 1)[0] if entry.count(":") == 1 else entry.strip()
        name = name.strip("[]").lstrip("*").lstrip(".")
        if entry.strip() == "*" or (name and (host == name or host.endswith("." + name))):
            return True
    return False


def open_upstream(
    base_url: str,
    *,
    headers: Mapping[str, str],
    limit: int,
    connect_timeout: float,
    max_answer_bytes: int,
    max_decoded_bytes: int,
    proxy: str | None,
    env: Mapping[str, str],
) -> Upstream:
    """The transport for one backend's origin (see the module docstring for which)."""
    origin = Origin(base_url)
    via = proxy_for(origin, proxy, env)
    if via is None and not (origin.tls and not is_loopback(origin.host)):
        return Pool(
            base_url,
            headers=headers,
            limit=limit,
            connect_timeout=connect_timeout,
            max_answer_bytes=max_answer_bytes,
            max_decoded_bytes=max_decoded_bytes,
        )
    from local_lattice.backends.httpx_upstream import HttpxUpstream  # httpx only where it is used

    return HttpxUpstream(
        base_url,
        headers=headers,
        limit=limit,
        connect_timeout=connect_timeout,
        max_answer_bytes=max_answer_bytes,
        max_decoded_bytes=max_decoded_bytes,
        proxy=via,
    )
