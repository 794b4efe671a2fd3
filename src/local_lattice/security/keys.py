"""API keys: the keys-file format and the constant-time match of a presented key to its name.

Keys file format (``server.keys_file`` / ``LATTICE_KEYS_FILE``), one key per line::

    # comment lines and blank lines are ignored
    alice:sk-local-1f9c...
    ci-bot:another-long-secret

The name (before the first ``:``) is what logs, metrics and limits show; the key is everything after
it, surrounding spaces removed. This module reads no files: the config loader hands it the text.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence

_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
ANONYMOUS = "anonymous"


def parse_keys_file(text: str) -> list[tuple[str, str]]:
    """``(name, key)`` pairs from keys-file text; raises ``ValueError`` naming the bad line."""
    pairs: list[tuple[str, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, key = line.partition(":")
        name, key = name.strip(), key.strip()
        if not sep or not key:
            raise ValueError(f"line {number}: expected name:key")
        if not _NAME.match(name):
            raise ValueError(f"line {number}: name {name!r} may use only letters, digits, _ . - (1-64)")
        pairs.append((name, key))
    return pairs


class KeyRing:
    """The accepted keys; ``match`` says which name a presented key belongs to, in constant time."""

    def __init__(self, named_keys: Sequence[tuple[str, str]]) -> None:
        self._entries = [(name, key.encode()) for name, key in named_keys]

    def __bool__(self) -> bool:
        return bool(self._entries)

    def secrets(self) -> list[str]:
        return [key.decode() for _, key in self._entries]

    def match(self, given: bytes) -> str | None:
        """The name of the key equal to ``given``, or None.

        Every key is compared, whatever matched, so the time taken says nothing about which key
        (or how much of one) was right; ``hmac.compare_digest`` is constant-time per comparison.
        """
        found: str | None = None
        for name, key in self._entries:
            if hmac.compare_digest(given, key) and found is None:
                found = name
        return found
