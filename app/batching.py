"""Dynamic batching of concurrent requests (what TF Serving and Triton call batching), for costly list scoring.

On a large catalogue a top-N list is dominated by reading the model's item side: a (1, r) @ (r, n_movies)
product streams the whole (r, n_movies) matrix from memory for one user. Lists asked for at the same time are
scored together instead, `(b, r) @ (r, n_movies)`, which reads it once for all b users
(`movierec.lists.rank_lists`).

There is no waiting window: a request that finds the scorer idle is scored at once, alone, so a lone request
pays only the hand-off to the scoring thread. Requests that arrive while a batch is being scored wait for it
to finish and then go together, up to `max_batch`. The batch size thus follows the load by itself. Scoring
runs in one dedicated thread: numpy releases the GIL in the product, so the event loop keeps accepting and
parsing requests meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class BatchStats:
    """Counters for /metrics: batches run and the items they held."""

    batches: int = 0
    items: int = 0
    largest: int = 0


class MicroBatcher(Generic[Item, Result]):
    """Runs `run_batch` over the items submitted concurrently; one batch at a time, in its own thread.

    `run_batch` returns one entry per item, in order: the result, or the exception that item raises.
    """

    def __init__(
        self, run_batch: Callable[[list[Item]], Sequence[Result | BaseException]], max_batch: int = 64
    ) -> None:
        self._run_batch = run_batch
        self.max_batch = max_batch
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._busy = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="list-batcher")
        self.stats = BatchStats()

    async def submit(self, item: Item) -> Result:
        """The result for `item`, computed alone when the batcher is idle, else with the next batch."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.append((item, future))
        if not self._busy:
            self._dispatch(loop)
        return await future

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        self._busy = True
        self.stats.batches += 1
        self.stats.items += len(batch)
        self.stats.largest = max(self.stats.largest, len(batch))
        running = loop.run_in_executor(self._executor, self._run_batch, [item for item, _ in batch])
        running.add_done_callback(lambda done: self._finish(loop, batch, done))

    def _finish(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[tuple[Item, asyncio.Future[Result]]],
        done: asyncio.Future[Sequence[Result | BaseException]],
    ) -> None:
        # Runs on the event loop (a done callback), so `_pending` and `_busy` are only touched there.
        error = done.exception() if not done.cancelled() else asyncio.CancelledError()
        results: Sequence[Result | BaseException] = [error] * len(batch) if error else done.result()
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # the client went away
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
        self._busy = False
        if self._pending:
            self._dispatch(loop)
