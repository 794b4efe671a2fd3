"""The HTTP server: uvicorn's, with the gateway's protocol and the gateway's way of stopping.

On SIGTERM or SIGINT uvicorn stops accepting connections, asks each one to close after its
current answer and waits for the requests still running. ``GatewayServer`` bounds that wait by the
drain time (``server.drain_seconds``): then every request still running is ended through its
lifeline (``api/lifeline.py``) with ``ServerShuttingDown`` — a stream writes its error event and
``[DONE]`` and ends its chunked body properly, any other request answers 503 — and uvicorn gets
``END_GRACE`` more seconds for those last writes before it cancels whatever is left.
"""

from __future__ import annotations

import asyncio
import math
import socket
import sys
from typing import Any

import uvicorn

from local_lattice.api.server_protocol import BatchingHttpProtocol
from local_lattice.errors import ServerShuttingDown

END_GRACE = 2.0  # seconds for the ended requests' last writes


class GatewayServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain_seconds: float) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        timer = asyncio.get_running_loop().call_later(self.drain_seconds, self.end_running)
        try:
            await super().shutdown(sockets)
        finally:
            timer.cancel()

    def end_running(self) -> None:
        """The drain time is over: end every request still being answered."""
        ending = ServerShuttingDown()
        for connection in list(self.server_state.connections):
            if isinstance(connection, BatchingHttpProtocol):
                connection.end_request(ending)


def run(
    app: Any, host: str, port: int, drain_seconds: float, protocol: type[BatchingHttpProtocol] = BatchingHttpProtocol
) -> None:
    """Run ``app`` with connections of ``protocol`` (the gateway's own, or one under a connection
    guard: ``api/connection_guard.py``) until told to stop, then drain as above."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        http=protocol,  # httptools with batched writes and lifelines
        ws="none",  # no WebSocket routes
        access_log=False,
        server_header=False,  # one header less to validate and send per response; names no version
        log_level="warning",
        log_config=None,  # uvicorn's lines go through our handler: same format, request ids, keys masked
        # uvicorn's own bound on the wait: the drain, then the grace for the last writes.
        timeout_graceful_shutdown=math.ceil(drain_seconds + END_GRACE),
    )
    GatewayServer(config, drain_seconds).run()
