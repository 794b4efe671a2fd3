"""The stderr handler batches lines logged on an event loop and keeps their order."""

from __future__ import annotations

import asyncio
import io
import logging

from local_lattice.observability.logs import BatchingHandler


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def make_logger(name: str, delay: float = 0.05) -> tuple[logging.Logger, BatchingHandler, CountingStream]:
    stream = CountingStream()
    handler = BatchingHandler(delay=delay)
    handler.setStream(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, handler, stream


def test_lines_on_a_loop_are_written_together_after_the_delay() -> None:
    logger, _, stream = make_logger("batch.delay")

    async def main() -> tuple[str, str]:
        for i in range(5):
            logger.info("line %d", i)
        before = stream.getvalue()
        await asyncio.sleep(0.15)
        return before, stream.getvalue()

    before, after = asyncio.run(main())
    assert before == ""
    assert after == "".join(f"INFO line {i}\n" for i in range(5))
    assert stream.writes == 1


def test_a_warning_is_written_at_once_after_the_lines_waiting() -> None:
    logger, _, stream = make_logger("batch.warning", delay=10)

    async def main() -> str:
        logger.info("first")
        logger.warning("second")
        return stream.getvalue()

    assert asyncio.run(main()) == "INFO first\nWARNING second\n"


def test_without_a_loop_each_line_is_written_at_once() -> None:
    logger, _, stream = make_logger("batch.noloop", delay=10)
    logger.info("now")
    assert stream.getvalue() == "INFO now\n"


def test_flush_writes_what_is_waiting() -> None:
    logger, handler, stream = make_logger("batch.flush", delay=10)

    async def main() -> None:
        logger.info("pending")
        handler.flush()

    asyncio.run(main())
    assert stream.getvalue() == "INFO pending\n"


def test_a_loop_that_closed_before_its_flush_does_not_hold_later_lines() -> None:
    logger, _, stream = make_logger("batch.twoloops", delay=0.05)

    async def log(text: str) -> None:
        logger.info(text)

    asyncio.run(log("one"))  # the loop closes before its flush runs: "one" is still waiting

    async def later() -> None:
        logger.info("two")
        await asyncio.sleep(0.15)

    asyncio.run(later())
    assert stream.getvalue() == "INFO one\nINFO two\n"


def test_a_waiting_line_shows_its_arguments_as_they_were_when_logged() -> None:
    # Lines are formatted when the batch is written; what they show is fixed when they are logged.
    logger, _, stream = make_logger("batch.args")
    state = {"step": "first"}

    async def main() -> None:
        logger.info("state %s", state)
        state["step"] = "changed"
        await asyncio.sleep(0.1)

    asyncio.run(main())
    assert stream.getvalue() == "INFO state {'step': 'first'}\n"


def test_a_line_that_cannot_be_formatted_is_reported_and_the_rest_written() -> None:
    logger, handler, stream = make_logger("batch.broken")
    reported: list[logging.LogRecord] = []
    handler.handleError = reported.append  # type: ignore[method-assign]

    async def main() -> None:
        logger.info("one %d", "not a number")
        logger.info("two")
        await asyncio.sleep(0.1)

    asyncio.run(main())
    assert stream.getvalue() == "INFO two\n"
    assert [r.msg for r in reported] == ["one %d"]
