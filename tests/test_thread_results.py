"""Results of another thread reach the event loop intact, a burst of them in one wake-up (app/thread_results.py)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

import pytest

from app.thread_results import ThreadResults


def test_a_burst_finished_together_wakes_the_loop_once_and_each_waiter_gets_its_own_outcome() -> None:
    async def scenario() -> tuple[list[object], int]:
        loop = asyncio.get_running_loop()
        wakeups = 0
        threadsafe = loop.call_soon_threadsafe

        def counting(*args: object) -> object:
            nonlocal wakeups
            wakeups += 1
            return threadsafe(*args)  # type: ignore[arg-type]

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        results = ThreadResults(loop)
        futures: list[Future[int]] = [Future() for _ in range(20)]
        waiting = [asyncio.ensure_future(results.wait(f)) for f in futures]
        await asyncio.sleep(0)  # every waiter is registered

        def finish_all() -> None:  # what the writer thread does after one commit
            for n, future in enumerate(futures):
                if n == 7:
                    future.set_exception(ValueError("rejected"))
                else:
                    future.set_result(n * 10)

        thread = threading.Thread(target=finish_all)
        thread.start()
        thread.join()
        outcomes = await asyncio.gather(*waiting, return_exceptions=True)
        return outcomes, wakeups

    outcomes, wakeups = asyncio.run(scenario())
    assert wakeups == 1
    assert isinstance(outcomes[7], ValueError)
    assert [o for n, o in enumerate(outcomes) if n != 7] == [n * 10 for n in range(20) if n != 7]


def test_a_cancelled_waiter_is_skipped_and_a_finished_future_is_handed_over_at_once() -> None:
    async def scenario() -> int:
        results = ThreadResults(asyncio.get_running_loop())
        pending: Future[int] = Future()
        gone = asyncio.ensure_future(results.wait(pending))
        await asyncio.sleep(0)
        gone.cancel()  # its client went away before the commit
        pending.set_result(1)
        with pytest.raises(asyncio.CancelledError):
            await gone
        done: Future[int] = Future()
        done.set_result(5)
        return await results.wait(done)

    assert asyncio.run(scenario()) == 5
