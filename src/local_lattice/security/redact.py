"""Redaction of secrets from text the gateway writes: logs, error messages, anything rendered.

The usual shapes (``sk-…`` keys, ``Bearer …`` tokens, ``x-api-key: …`` and key-like query
parameters) are masked by ``local_lattice.masking.redact``; a ``Redactor`` also knows the literal
keys of this deployment (client keys and the backends' own keys). ``LogFilter`` applies it to every
log record (the request id is stamped by ``observability.logs.RequestIdFilter``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from local_lattice.masking import MASK, redact

# Very short "keys" would mask ordinary words; such keys are refused nowhere but redacted by shape only.
_MIN_LITERAL = 6


class Redactor:
    """Masks this deployment's literal secrets as well as key-shaped text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        literal = sorted({s for s in secrets if len(s) >= _MIN_LITERAL}, key=len, reverse=True)
        self._literal = re.compile("|".join(re.escape(s) for s in literal)) if literal else None

    def text(self, text: str) -> str:
        if self._literal is not None:
            text = self._literal.sub(MASK, text)
        return redact(text)


class LogFilter(logging.Filter):
    """Redacts every record's message (and traceback). (The request id is stamped by
    ``observability.logs.RequestIdFilter``.)"""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        # The formatted message replaces msg/args either way, so the formatter does not format it again.
        message = record.getMessage()
        record.msg, record.args = self.redactor.text(message), None
        if record.exc_info:
            # Another handler may have formatted the traceback already; mask whichever text will be printed.
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.redactor.text(text)
        return True


def install(redactor: Redactor, logger: logging.Logger | None = None) -> LogFilter:
    """Attach one ``LogFilter`` to every handler of ``logger`` (the root logger by default)."""
    log_filter = LogFilter(redactor)
    for handler in (logger or logging.getLogger()).handlers:
        handler.addFilter(log_filter)
    return log_filter
