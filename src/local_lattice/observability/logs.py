"""Log set-up: the request id on every line (from a context variable the front door sets) and a
JSON line format for log shippers. Configured once by the CLI; libraries only get loggers."""

from __future__ import annotations

import contextvars
import logging
import time
from typing import TextIO

import orjson

from local_lattice.observability.later import Later

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("lattice_request_id", default="-")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id"}


class RequestIdFilter(logging.Filter):
    """Stamps ``record.request_id`` from the current request's context (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        return True


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT``, with the date and time formatted once per second rather than once per line."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._stamp: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if self._stamp[0] != second:
            self._stamp = (second, time.strftime(self.default_time_format, self.converter(record.created)))
        return f"{self._stamp[1]},{int(record.msecs):03d}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request id, message, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", REQUEST_ID.get()),
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                data[key] = value
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


class BatchingHandler(logging.StreamHandler[TextIO]):
    """A stderr handler that writes the lines logged on an event loop in batches.

    Under load every request logs its timing line; one write and flush per line was a system call
    per request. Records logged from a running event loop are kept, then formatted and written
    together at most ``delay`` seconds later (or at once when ``max_lines`` are waiting): formatting
    a batch in one go costs less than a line at a time between requests. Warnings and errors, and
    lines from threads without a loop, are written at once, after anything still waiting, so the
    order holds. ``flush`` (and so ``logging.shutdown`` at exit) writes what is waiting.
    """

    def __init__(self, delay: float = 0.05, max_lines: int = 256) -> None:
        super().__init__()
        self.delay = delay
        self.max_lines = max_lines
        self._waiting: list[logging.LogRecord] = []
        self._later = Later(lambda loop: self.flush(), delay)

    def emit(self, record: logging.LogRecord) -> None:
        if record.args:  # arguments may change before the batch is formatted: take their text now
            try:
                record.msg, record.args = record.getMessage(), None
            except Exception:
                self.handleError(record)
                return
        self._waiting.append(record)
        if record.levelno >= logging.WARNING or len(self._waiting) >= self.max_lines or not self._later.ask():
            self._write()

    def _write(self) -> None:
        records, self._waiting = self._waiting, []
        lines = []
        for record in records:
            try:
                lines.append(self.format(record) + self.terminator)
            except Exception:
                self.handleError(record)
        if lines:
            self.stream.write("".join(lines))
            self.stream.flush()

    def flush(self) -> None:
        self.acquire()
        try:
            self._later.done()
            self._write()
        finally:
            self.release()


def configure(log_format: str = "text", level: int = logging.INFO) -> BatchingHandler:
    """Replace the root handlers with one stderr handler in ``log_format`` (``text`` or ``json``).

    Neither format shows the caller's file and line, the thread or the process, so log records do
    not gather them (the logging HOWTO's "Optimization" settings): finding the caller walks the
    stack on every line, and every request logs one."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = BatchingHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
