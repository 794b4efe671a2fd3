"""The bridge from a blocking token loop in a worker thread to the event loop.

``pump(executor, produce, on_done)`` runs ``produce(stop)`` (a blocking iterator) in ``executor``
and yields its items on the loop as they come. Closing the async iterator sets ``stop``; the
producer checks it before every token step, so generation ends within one step. ``on_done`` runs
on the loop once the worker has really finished with the model, which is when a pin may go.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import Executor
from typing import Any, TypeVar

T = TypeVar("T")

_ITEM, _ERROR, _END = 0, 1, 2


async def pump(
    executor: Executor,
    produce: Callable[[threading.Event], Iterator[T]],
    on_done: Callable[[], None],
) -> AsyncGenerator[T, None]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
    stop = threading.Event()

    def post(kind: int, value: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
        except RuntimeError:  # the loop is gone (shutdown): nobody is listening any more
            stop.set()

    def work() -> None:
        try:
            for item in produce(stop):
                if stop.is_set():
                    return
                post(_ITEM, item)
        except BaseException as exc:
            post(_ERROR, exc)
        else:
            post(_END, None)

    try:
        future = loop.run_in_executor(executor, work)
    except BaseException:
        on_done()
        raise
    future.add_done_callback(lambda _: on_done())
    try:
        while True:
            kind, value = await queue.get()
            if kind == _ITEM:
                yield value
                continue
            # The worker is returning: wait for it so the model is let go before the caller moves on.
            await asyncio.wait([future])
            if kind == _ERROR:
                raise value
            return
    finally:
        stop.set()
