"""What reaches the sockets of the test's own (asyncio) event loop, one entry per transport write."""

from __future__ import annotations

import asyncio

import pytest


def record_socket_writes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every ``write`` on a socket transport of asyncio's loop from now on, servers' and clients'."""
    writes: list[bytes] = []
    transport_class = asyncio.selector_events._SelectorSocketTransport  # type: ignore[attr-defined]
    write = transport_class.write

    def recording(self: asyncio.Transport, data: bytes) -> None:
        writes.append(bytes(data))
        write(self, data)

    monkeypatch.setattr(transport_class, "write", recording)
    return writes
