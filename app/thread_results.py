"""Results of other threads awaited on the event loop, handed over in one wake-up per burst.

`asyncio.wrap_future` wakes the loop once per finished future (a write to its self-pipe and a callback). The
group-commit writer (movierec/store/group_commit.py) finishes every write of a committed batch at once, so at
16 connections that was a wake-up per PUT, 7% of the process's time (py-spy). `ThreadResults` queues finished
futures and wakes the loop only when the queue was empty: the writes of one commit are handed over together.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from contextlib import suppress
from typing import Any, TypeVar

T = TypeVar("T")


class ThreadResults:
    """Bridges `concurrent.futures.Future`s to asyncio futures of one event loop, waking it once per burst."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._finished: list[tuple[asyncio.Future[Any], Future[Any]]] = []
        self._lock = threading.Lock()

    async def wait(self, future: Future[T]) -> T:
        """`future`'s result (or exception), awaited on this loop."""
        waiter: asyncio.Future[T] = self._loop.create_future()
        future.add_done_callback(lambda done: self._finish(waiter, done))
        return await waiter

    def _finish(self, waiter: asyncio.Future[Any], done: Future[Any]) -> None:
        # Runs in the thread that finished `done` (or here, when it had finished already).
        with self._lock:
            first = not self._finished
            self._finished.append((waiter, done))
        if first:
            with suppress(RuntimeError):  # the loop closed (shutdown): nobody waits any more
                self._loop.call_soon_threadsafe(self._hand_over)

    def _hand_over(self) -> None:
        with self._lock:
            finished, self._finished = self._finished, []
        for waiter, done in finished:
            if waiter.done():  # the request was cancelled (its client went away)
                continue
            if done.cancelled():
                waiter.cancel()
                continue
            exc = done.exception()
            if exc is not None:
                waiter.set_exception(exc)
            else:
                waiter.set_result(done.result())
