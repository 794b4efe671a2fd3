"""A finished request is counted at once; its metrics, chart point and log line follow in one pass
within ``FLUSH_DELAY``, or before anything reads them."""

from __future__ import annotations

import asyncio
import io
import logging
import time

from local_lattice.observability import observer as observer_module
from local_lattice.observability.logs import RequestIdFilter, TextFormatter
from local_lattice.observability.observer import Observer
from local_lattice.observability.timing import Timings
from tests.unit.observability.conftest import make_config

ROUTE = "/v1/chat/completions"


def finished(obs: Observer, request_id: str, seconds_ago: float) -> None:
    state = {"request_id": request_id, "started": time.perf_counter() - seconds_ago, "key_name": "k"}
    rec = obs.begin(state, ROUTE, "chat")
    obs.routed(rec, "m1", "f")
    obs.finish(rec, 200)


def count(obs: Observer) -> str:
    return next(
        line for line in obs.metrics.render().decode().splitlines() if line.startswith("lattice_requests_total")
    )


def test_a_loop_pass_feeds_the_metrics_and_the_log_with_the_requests_own_times() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(TextFormatter())
    log = logging.getLogger("lattice.request")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    obs = Observer(make_config("off"))

    async def main() -> tuple[int, str]:
        finished(obs, "r1", seconds_ago=0.25)
        before = obs.requests, stream.getvalue()
        await asyncio.sleep(observer_module.FLUSH_DELAY * 3)
        return before

    try:
        requests, logged_before = asyncio.run(main())
    finally:
        log.removeHandler(handler)
    assert requests == 1  # counted at once
    assert logged_before == ""  # the line comes with the pass
    assert count(obs).endswith(" 1.0")
    (line,) = stream.getvalue().splitlines()
    total_ms = float(line.split("total_ms=")[1].split()[0])
    assert 250 <= total_ms < 300  # the request's own end, not the time of the pass
    assert "[r1]" in line


def test_reads_flush_first_and_without_a_loop_nothing_waits() -> None:
    obs = Observer(make_config("off"))

    async def main() -> str:
        finished(obs, "r2", seconds_ago=0.0)
        obs.flush()  # what /metrics and the dashboard do before reading
        return count(obs)

    assert asyncio.run(main()).endswith(" 1.0")
    finished(obs, "r3", seconds_ago=0.0)  # no running loop: fed at once
    assert count(obs).endswith(" 2.0")


def test_timings_log_defaults_to_now() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    log = logging.getLogger("lattice.request")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        Timings(time.perf_counter() - 0.01).log(path="/x", status=200, request_id="r4")
    finally:
        log.removeHandler(handler)
    assert float(stream.getvalue().split("total_ms=")[1].split()[0]) >= 10


def test_a_long_backlog_is_fed_a_chunk_per_loop_turn() -> None:
    obs = Observer(make_config("off"))
    total = observer_module.PASS_CHUNK * 3 + 1
    fed: list[int] = []
    feed = obs._feed

    def counted(count: int) -> None:
        fed.append(min(count, len(obs._pending)))
        feed(count)

    obs._feed = counted  # type: ignore[method-assign]

    async def main() -> None:
        for i in range(total):
            finished(obs, f"r{i}", seconds_ago=0.0)
        await asyncio.sleep(observer_module.FLUSH_DELAY * 3)

    asyncio.run(main())
    assert fed == [observer_module.PASS_CHUNK] * 3 + [1]  # one chunk a turn, oldest first
    assert count(obs).endswith(f" {float(total)}")
