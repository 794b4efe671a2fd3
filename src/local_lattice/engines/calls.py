"""Reading the model's call envelope, ``{"name": …, "arguments": …}``, as it is generated.

``EnvelopeReader`` takes the envelope's text piece by piece and gives back the function's name as
soon as it is written, then the arguments' text as it comes (holding back only what may be the
envelope's closing brace), so a streamed call goes out as OpenAI's ``tool_calls`` deltas without
waiting for the end. ``opens_call`` tells, from the first characters of a free answer, whether
the model is starting a call. Pure: no I/O.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from local_lattice.engines.structured import CALL_OPEN

_WS = " \t\r\n"


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


def opens_call(text: str) -> bool | None:
    """Whether a free answer beginning with ``text`` starts a call: ``None`` while it cannot be told."""
    head = text.lstrip(_WS)
    if not head:
        return None
    if head.startswith("{") or head.startswith(CALL_OPEN):
        return True
    return None if CALL_OPEN.startswith(head) else False


def _literal(buffer: str, at: int, word: str) -> int | None:
    """Position after ``word`` (whitespace before it skipped); -1 when ``buffer`` ends first."""
    while at < len(buffer) and buffer[at] in _WS:
        at += 1
    piece = buffer[at : at + len(word)]
    if piece == word:
        return at + len(word)
    return -1 if word.startswith(piece) else None


@dataclass
class EnvelopeReader:
    """One call envelope, read incrementally."""

    id: str = field(default_factory=new_call_id)
    name: str | None = None
    arguments: str = ""
    _buffer: str = ""
    _held: str = ""

    def _head(self) -> bool | None:
        """Read the head up to the arguments: ``True`` once read, ``False`` when the text is no
        envelope, ``None`` while more is needed."""
        at: int | None = 0
        for word in ("{", '"name"', ":", '"'):
            at = _literal(self._buffer, at, word) if at is not None and at >= 0 else at
        if at is None or at < 0:
            return None if at is not None else False
        end = self._buffer.find('"', at)
        if end < 0:
            return None
        rest: int | None = end + 1
        for word in (",", '"arguments"', ":"):
            rest = _literal(self._buffer, rest, word) if rest is not None and rest >= 0 else rest
        if rest is None or rest < 0:
            return None if rest is not None else False
        self.name = self._buffer[at:end]
        self._held = self._buffer[rest:].lstrip(_WS)
        return True

    def rejects(self) -> bool | None:
        """``False`` when what was fed cannot begin an envelope, else ``None`` (it still may)."""
        return False if self.name is None and self._head() is False else None

    @property
    def pending(self) -> str:
        """Text fed before the head was complete (all of it, if it never was)."""
        return self._buffer if self.name is None else ""

    def feed(self, text: str) -> tuple[str | None, str]:
        """``(name, arguments text)``: the name once, when it is first known; arguments as they come."""
        if self.name is None:
            self._buffer += text
            self._head()
            if self.name is None:
                return None, ""
            return self.name, self._release()
        self._held += text
        return None, self._release()

    def _release(self) -> str:
        if not self.arguments:
            self._held = self._held.lstrip(_WS)
        # The envelope ends with "}" and maybe whitespace: hold such a tail until more comes.
        keep = len(self._held) - len(self._held.rstrip(_WS + "}"))
        out, self._held = self._held[: len(self._held) - keep], self._held[len(self._held) - keep :]
        self.arguments += out
        return out

    def close(self) -> str:
        """The rest of the arguments once the envelope is complete (its closing brace dropped)."""
        tail = self._held.rstrip(_WS)
        if tail.endswith("}"):
            tail = tail[:-1].rstrip(_WS)
        self._held = ""
        self.arguments += tail
        return tail
