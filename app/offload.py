"""Costly request work off the event loop, bounded, with 503 + Retry-After when saturated.

The hot routes are `async` and score on the event loop: for microseconds of numpy that is cheaper than a
thread hop. A 10,000-pair /predict batch or an `nn` fold-in (200 optimizer steps) takes milliseconds to
seconds, and on the loop it would stall every other request meanwhile. Routes hand such work (chosen by a
measured cost threshold, see `app.settings`) to `HeavyWork.run`: at most `threads` run at once, at most
`queue` more wait, and anything beyond is refused at once with 503 and `Retry-After` rather than queued
without limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

from app.errors import ApiError

T = TypeVar("T")


class HeavyWork:
    """A bounded pool for costly request work; all bookkeeping happens on the event loop (no locks)."""

    def __init__(self, threads: int, queue: int, retry_after_s: int = 1) -> None:
        self._limiter = anyio.CapacityLimiter(threads)
        self.capacity = threads + queue
        self.retry_after_s = retry_after_s
        self.in_flight = 0
        self.refused = 0

    async def run(self, work: Callable[[], T]) -> T:
        """`work()` in a worker thread; ApiError 503 when `capacity` requests are already running or waiting."""
        if self.in_flight >= self.capacity:
            self.refused += 1
            raise ApiError(
                503,
                "overloaded",
                f"the server is busy with {self.in_flight} costly requests; retry in {self.retry_after_s} s",
                {"Retry-After": str(self.retry_after_s)},
            )
        self.in_flight += 1
        try:
            return await anyio.to_thread.run_sync(work, limiter=self._limiter)
        finally:
            self.in_flight -= 1
