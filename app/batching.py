"""Dynamic batching of concurrent requests (what TF Serving and Triton call batching), for list scoring.

On a large catalogue a top-N list is dominated by reading the model's item side: a (1, r) @ (r, n_movies)
product streams the whole (r, n_movies) matrix from memory for one user. Lists asked for at the same time are
scored together instead, `(b, r) @ (r, n_movies)`, which reads it once for all b users
(`movierec.lists.rank_lists`).

There is no waiting window: a request that finds the scorer idle is scored at once, alone, so a lone request
pays only the hand-off to the scoring thread. Requests that arrive while a batch is being scored wait for it
to finish and then go together, up to `max_batch`. The batch size thus follows the load by itself. Scoring
runs in one dedicated thread: numpy releases the GIL in the product, so the event loop keeps accepting and
parsing requests meanwhile (`MicroBatcher`).

Cheap lists (ml-latest-small: a fraction of a millisecond) would pay more for the hand-off to a thread than
they save, so they are batched on the event loop instead (`TurnBatcher`): the lists asked for in one turn of
the loop (the requests read from the sockets that were ready together) are scored together at the end of that
turn, with no thread and no waiting window. Under load that is what reading the item side once buys: measured
at 16 connections on ml-latest-small, 350 against 475 µs of server CPU per first list, because the
(r, n_movies) matrix (4.6 MB) no longer stays in the CPU caches between one request and the next. A turn scores
at most `max_batch` lists; the rest go in the next turn, after the loop has served the sockets ready meanwhile,
so no connection waits behind an unbounded batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from app.errors import ApiError

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

# What a refused list asks a client to wait (s): a batch takes milliseconds, a full queue clears quickly.
RETRY_AFTER_S = 1


@dataclass
class BatchStats:
    """Counters for /metrics: batches run, the items they held, and the lists refused or timed out."""

    batches: int = 0
    items: int = 0
    largest: int = 0
    refused: int = 0
    timed_out: int = 0


class _BatchQueue(Generic[Item, Result]):
    """What both batchers share: the bounded queue of waiting items, admission, batch taking and shutdown."""

    def __init__(
        self,
        run_batch: Callable[[list[Item]], Sequence[Result | BaseException]],
        max_batch: int,
        max_pending: int,
    ) -> None:
        self._run_batch = run_batch
        self.max_batch = max_batch
        self.max_pending = max_pending
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._closed = False
        self.stats = BatchStats()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _admit(self, item: Item) -> asyncio.Future[Result]:
        """Queue `item` and return the future of its result; 503 at once when closed or the queue is full."""
        if self._closed:
            raise _shutting_down()
        if len(self._pending) >= self.max_pending:
            self.stats.refused += 1
            raise _overloaded(f"{len(self._pending)} lists are already waiting to be scored")
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        return future

    def _take_batch(self) -> list[tuple[Item, asyncio.Future[Result]]]:
        """The next batch (at most `max_batch`), counted; items whose client went away or timed out are
        dropped, not scored."""
        live = [(item, future) for item, future in self._pending if not future.done()]
        batch, self._pending = live[: self.max_batch], live[self.max_batch :]
        if batch:
            self.stats.batches += 1
            self.stats.items += len(batch)
            self.stats.largest = max(self.stats.largest, len(batch))
        return batch

    def close(self) -> None:
        """Refuse new items and fail the waiting ones (at shutdown)."""
        self._closed = True
        pending, self._pending = self._pending, []
        _fail(pending, _shutting_down())


class MicroBatcher(_BatchQueue[Item, Result]):
    """Runs `run_batch` over the items submitted concurrently; one batch at a time, in its own thread.

    `run_batch` returns one entry per item, in order: the result, or the exception that item raises. The work
    is bounded: at most `max_pending` items wait (beyond, `submit` answers 503 at once), an item waits at most
    `timeout_s` (then 503, and it is dropped unscored), and a batch that fails, however it fails, fails its own
    items and never the batcher.
    """

    def __init__(
        self,
        run_batch: Callable[[list[Item]], Sequence[Result | BaseException]],
        max_batch: int = 64,
        *,
        max_pending: int = 256,
        timeout_s: float = 10.0,
    ) -> None:
        super().__init__(run_batch, max_batch, max_pending)
        self.timeout_s = timeout_s
        self._busy = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="list-batcher")

    async def submit(self, item: Item) -> Result:
        """The result for `item`, computed alone when the batcher is idle, else with the next batch."""
        future = self._admit(item)
        if not self._busy:
            self._dispatch(asyncio.get_running_loop())
        try:
            return await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            self.stats.timed_out += 1
            raise _overloaded(f"the list was not scored within {self.timeout_s:g} s") from None

    def close(self) -> None:
        """Refuse new items, fail the waiting ones, and let the scoring thread go (at shutdown)."""
        super().close()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._take_batch()
        if not batch:
            return
        self._busy = True
        try:
            running = loop.run_in_executor(self._executor, self._run_batch, [item for item, _ in batch])
        except Exception as exc:  # the executor is shut down: fail this batch, stay usable for close()
            self._busy = False
            _fail(batch, exc)
            return
        running.add_done_callback(lambda done: self._finish(loop, batch, done))

    def _finish(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[tuple[Item, asyncio.Future[Result]]],
        done: asyncio.Future[Sequence[Result | BaseException]],
    ) -> None:
        # Runs on the event loop (a done callback), so `_pending` and `_busy` are only touched there. Whatever
        # goes wrong here (a batch that raised, a result list of the wrong length), every future of the batch
        # is settled and the next batch is dispatched: a failure never leaves the batcher busy for good.
        try:
            error = done.exception() if not done.cancelled() else asyncio.CancelledError()
            _settle(batch, [error] * len(batch) if error else done.result())
        except Exception as exc:
            log.exception("list batch failed")
            _fail(batch, exc)
        finally:
            self._busy = False
            if self._pending and not self._closed:
                self._dispatch(loop)


class TurnBatcher(_BatchQueue[Item, Result]):
    """Runs `run_batch` on the event loop over the items submitted in one turn of it (see the module docstring).

    The same contract as `MicroBatcher`: one entry per item, its result or its exception; at most `max_pending`
    items wait (beyond, 503 at once); a batch that fails fails its own items only. No timeout: an item is
    scored in the turn after its request was read, or in the few after that when more than `max_batch` came.
    """

    def __init__(
        self,
        run_batch: Callable[[list[Item]], Sequence[Result | BaseException]],
        max_batch: int = 64,
        *,
        max_pending: int = 256,
    ) -> None:
        super().__init__(run_batch, max_batch, max_pending)
        self._scheduled = False

    async def submit(self, item: Item) -> Result:
        """The result for `item`, scored with the other items of this turn of the event loop."""
        future = self._admit(item)
        if not self._scheduled:
            # call_soon runs after the callbacks already due in this turn: the other requests read with this
            # one reach here first and join the batch.
            self._scheduled = True
            loop = asyncio.get_running_loop()
            loop.call_soon(self._run_turn, loop)
        return await future

    def _run_turn(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False
        batch = self._take_batch()
        if self._pending and not self._closed:
            self._scheduled = True
            loop.call_soon(self._run_turn, loop)
        if not batch:
            return
        try:
            _settle(batch, self._run_batch([item for item, _ in batch]))
        except Exception as exc:  # a batch that raised as a whole, or a result list of the wrong length
            log.exception("list batch failed")
            _fail(batch, exc)


def _settle(
    batch: Sequence[tuple[object, asyncio.Future[Result]]], results: Sequence[Result | BaseException]
) -> None:
    """Give each waiting item its result or exception (items whose client went away are skipped)."""
    if len(results) != len(batch):
        raise RuntimeError(f"a batch of {len(batch)} lists returned {len(results)} results")
    for (_, future), result in zip(batch, results, strict=True):
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


def _fail(batch: Sequence[tuple[object, asyncio.Future[Result]]], exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)


def _shutting_down() -> ApiError:
    return ApiError(503, "shutting_down", "the server is shutting down", {"Retry-After": "1"})


def _overloaded(why: str) -> ApiError:
    return ApiError(
        503,
        "overloaded",
        f"the server is busy: {why}; retry in {RETRY_AFTER_S} s",
        {"Retry-After": str(RETRY_AFTER_S)},
    )
