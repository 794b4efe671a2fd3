"""Key-shaped text masked: the patterns of the usual secret shapes, as one pure function.

``sk-…`` keys, ``Bearer …`` tokens, ``x-api-key: …`` and key-like query parameters are replaced by
``***``. It sits on the bottom floor with ``errors.py`` (whose envelope masks every message it
renders) and imports nothing of the package; ``security.redact`` builds the deployment's literal
secrets and the log filter on top of it.
"""

from __future__ import annotations

import re

MASK = "***"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}"), "sk-" + MASK),
    (re.compile(r"(?i)\b(bearer\s+)[^\s\"',;]+"), r"\1" + MASK),
    (re.compile(r"(?i)\b(x-api-key[\"']?\s*[:=]\s*[\"']?)[^\s\"',;]+"), r"\1" + MASK),
    (re.compile(r"(?i)\b((?:api[_-]?key|access_token|key|token)=)[^&\s\"']+"), r"\1" + MASK),
)
# Every pattern needs one of these in the lower-cased text (``re.IGNORECASE`` also matches U+0130, U+0131
# and U+017F to ``i``/``s``, which ``str.lower`` does not map: no trigger contains those letters), so
# text without any is returned untouched without running the patterns, which cost ~40 µs a line.
_TRIGGERS = ("sk-", "bearer", "key", "token=")


def redact(text: str) -> str:
    """``text`` with key-shaped substrings masked."""
    lowered = text.lower()
    if not any(trigger in lowered for trigger in _TRIGGERS):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
