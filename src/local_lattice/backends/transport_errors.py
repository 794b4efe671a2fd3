"""The failures of the upstream transports, one small family both speak.

``http1.Pool`` raises them; ``httpx_upstream`` maps httpx's exceptions onto them, so a backend
translates one family into ``local_lattice.errors`` whichever transport carried its call.
``TimeoutError`` (a call's time limit) is the builtin one.
"""

from __future__ import annotations


class HTTPFailure(Exception):
    """Base of this client's own failures."""


class ConnectFailed(HTTPFailure):
    """No connection could be made (refused, unknown host, TLS handshake failed)."""


class Disconnected(HTTPFailure):
    """The server closed the connection before its answer was complete; ``answering`` says whether
    its status line and headers had arrived (it broke off) or not (it closed unanswered)."""

    def __init__(self, message: str, *, answering: bool = False) -> None:
        super().__init__(message)
        self.answering = answering


class ProtocolFailure(HTTPFailure):
    """The server's bytes are not an HTTP/1.1 answer this client can read."""


class AnswerTooLarge(ProtocolFailure):
    """The answer's body, as received or as decoded, is larger than the pool allows."""
