"""Micro-batched lists and bounded costly work: the batcher, the block scoring it relies on, and the 503."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.batching import MicroBatcher, TurnBatcher
from app.errors import ApiError
from app.main import create_app
from app.offload import HeavyWork
from app.settings import Settings
from movierec.artifacts import load_bundle
from movierec.recommender import ListQuery, Ranked, Recommender


def test_a_lone_request_runs_at_once_and_concurrent_ones_share_a_batch() -> None:
    sizes: list[int] = []
    release = threading.Event()

    def run_batch(items: list[int]) -> list[int | BaseException]:
        sizes.append(len(items))
        if len(sizes) == 1:
            release.wait(5)  # the first batch is slow: the others arrive meanwhile
        return [ValueError(f"bad {i}") if i == 7 else i * 10 for i in items]

    async def scenario() -> list[object]:
        batcher: MicroBatcher[int, int] = MicroBatcher(run_batch, max_batch=4)
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.05)  # the first is running alone now
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 10)]
        await asyncio.sleep(0.05)
        release.set()
        results = await asyncio.gather(first, *rest, return_exceptions=True)
        batcher.close()
        return results

    results = asyncio.run(scenario())
    assert sizes == [1, 4, 4, 1]  # alone, then the waiting ones in batches of at most max_batch
    assert results[:7] == [0, 10, 20, 30, 40, 50, 60] and results[8:] == [80, 90]
    assert isinstance(results[7], ValueError)  # an item's own error reaches only that item


def test_a_failing_batch_fails_its_requests_and_the_batcher_goes_on() -> None:
    calls = 0

    def run_batch(items: list[int]) -> list[int | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("scoring failed")
        return list(items)

    async def scenario() -> tuple[BaseException | int, int]:
        batcher: MicroBatcher[int, int] = MicroBatcher(run_batch)
        failed = await asyncio.gather(batcher.submit(1), return_exceptions=True)
        after = await batcher.submit(2)
        batcher.close()
        return failed[0], after

    failed, after = asyncio.run(scenario())
    assert isinstance(failed, RuntimeError) and after == 2


def _slow_batcher(release: threading.Event, **bounds: float) -> MicroBatcher[int, int]:
    """A batcher whose batches wait for `release` (at most 5 s) and echo their items."""

    def run_batch(items: list[int]) -> list[int | BaseException]:
        release.wait(5)
        return list(items)

    return MicroBatcher(run_batch, max_batch=2, **bounds)  # type: ignore[arg-type]


def _api_error(result: object) -> ApiError:
    assert isinstance(result, ApiError), result
    return result


def test_a_full_queue_refuses_at_once_with_503_and_retry_after() -> None:
    release = threading.Event()

    async def scenario() -> tuple[list[object], float, int]:
        batcher = _slow_batcher(release, max_pending=3)
        running = asyncio.ensure_future(batcher.submit(0))  # taken by the scoring thread at once
        await asyncio.sleep(0.05)
        waiting = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 4)]
        await asyncio.sleep(0.01)
        started = time.monotonic()
        refused = await asyncio.gather(batcher.submit(4), return_exceptions=True)
        refused_after = time.monotonic() - started
        release.set()
        answered = await asyncio.gather(running, *waiting)
        batcher.close()
        return [*refused, *answered], refused_after, batcher.stats.refused

    results, refused_after, refused = asyncio.run(scenario())
    error = _api_error(results[0])
    assert (error.status, error.code, error.headers) == (503, "overloaded", {"Retry-After": "1"})
    assert refused_after < 0.5 and refused == 1
    assert results[1:] == [0, 1, 2, 3]  # what was queued is still answered


def test_a_list_not_scored_in_time_answers_503_and_is_never_scored() -> None:
    release = threading.Event()
    scored: list[int] = []

    def run_batch(items: list[int]) -> list[int | BaseException]:
        scored.extend(items)
        release.wait(5)
        return list(items)

    async def scenario() -> tuple[object, object, int]:
        batcher: MicroBatcher[int, int] = MicroBatcher(run_batch, timeout_s=0.2)
        first = asyncio.ensure_future(batcher.submit(1))
        await asyncio.sleep(0.05)
        late = await asyncio.gather(batcher.submit(2), return_exceptions=True)  # waits behind the stuck one
        release.set()
        first_result = await asyncio.gather(first, return_exceptions=True)
        await asyncio.sleep(0.05)
        batcher.close()
        return late[0], first_result[0], batcher.stats.timed_out

    late, first, timed_out = asyncio.run(scenario())
    assert _api_error(late).status == 503 and "within 0.2 s" in _api_error(late).detail
    assert _api_error(first).code == "overloaded"  # the stuck one timed out too
    assert timed_out == 2 and scored == [1]  # the late list was dropped, not scored


def test_a_batch_returning_the_wrong_number_of_results_fails_only_that_batch() -> None:
    calls = 0

    def run_batch(items: list[int]) -> list[int | BaseException]:
        nonlocal calls
        calls += 1
        return [] if calls == 1 else list(items)

    async def scenario() -> tuple[object, int]:
        batcher: MicroBatcher[int, int] = MicroBatcher(run_batch)
        failed = await asyncio.gather(batcher.submit(1), return_exceptions=True)
        after = await batcher.submit(2)
        batcher.close()
        return failed[0], after

    failed, after = asyncio.run(scenario())
    assert isinstance(failed, RuntimeError) and after == 2


def test_close_fails_the_waiting_lists_and_refuses_new_ones() -> None:
    release = threading.Event()

    async def scenario() -> list[object]:
        batcher = _slow_batcher(release)
        running = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.05)
        waiting = asyncio.ensure_future(batcher.submit(1))
        await asyncio.sleep(0.01)
        batcher.close()
        after = await asyncio.gather(batcher.submit(2), return_exceptions=True)
        release.set()
        return [*await asyncio.gather(waiting, return_exceptions=True), *after, await running]

    waiting, after, running = asyncio.run(scenario())
    assert _api_error(waiting).code == "shutting_down" and _api_error(after).code == "shutting_down"
    assert running == 0  # the batch already being scored still answers


@pytest.fixture(scope="module")
def recommender(tiny_bundle_dir: Path) -> Recommender:
    return Recommender(load_bundle(tiny_bundle_dir))


def test_a_turn_batcher_scores_one_turns_items_together_and_at_most_max_batch_per_turn() -> None:
    events: list[object] = []

    def run_batch(items: list[int]) -> list[int | BaseException]:
        events.append(len(items))
        return [ValueError(f"bad {i}") if i == 3 else i * 10 for i in items]

    async def scenario() -> list[object]:
        batcher: TurnBatcher[int, int] = TurnBatcher(run_batch, max_batch=4)
        waiting = [asyncio.ensure_future(batcher.submit(i)) for i in range(10)]
        await asyncio.sleep(0)  # the ten submit in this turn; the first batch is due after them
        # Due in the same turn as the first batch, after it: between the batches, other work gets its turn.
        asyncio.get_running_loop().call_soon(events.append, "other work")
        results = await asyncio.gather(*waiting, return_exceptions=True)
        alone = await batcher.submit(5)  # a lone item later runs in a batch of its own
        batcher.close()
        return [*results, alone, batcher.stats.batches, batcher.stats.largest]

    *results, alone, batches, largest = asyncio.run(scenario())
    assert events == [4, "other work", 4, 2, 1]
    assert results[:3] == [0, 10, 20] and results[4:] == [40, 50, 60, 70, 80, 90]
    assert isinstance(results[3], ValueError)  # an item's own error reaches only that item
    assert (alone, batches, largest) == (50, 4, 4)


def test_a_turn_batcher_fails_a_failing_batch_refuses_beyond_its_queue_and_closes() -> None:
    calls = 0

    def run_batch(items: list[int]) -> list[int | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("scoring failed")
        if calls == 2:
            return [1]  # the wrong number of results
        return list(items)

    async def scenario() -> list[object]:
        batcher: TurnBatcher[int, int] = TurnBatcher(run_batch, max_batch=8, max_pending=3)
        first = await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
        refused = await asyncio.gather(*(batcher.submit(i) for i in range(4)), return_exceptions=True)
        after = await asyncio.gather(*(batcher.submit(i) for i in range(2)), return_exceptions=True)
        waiting = asyncio.ensure_future(batcher.submit(9))
        batcher.close()  # before that one ran: it is refused, as is every later one
        closed = await asyncio.gather(waiting, batcher.submit(1), return_exceptions=True)
        return [first, refused, after, closed, batcher.stats.refused]

    first, refused, after, closed, refused_count = asyncio.run(scenario())
    assert all(isinstance(r, RuntimeError) for r in first)
    # Three fit the queue (their batch returned one result: all three fail), the fourth is refused with 503.
    assert [type(r) for r in refused] == [RuntimeError, RuntimeError, RuntimeError, ApiError]
    assert refused[3].status == 503 and refused[3].headers == {"Retry-After": "1"}  # type: ignore[union-attr]
    assert after == [0, 1] and refused_count == 1
    assert all(isinstance(r, ApiError) and r.code == "shutting_down" for r in closed)


def test_lists_scored_together_equal_lists_scored_alone(recommender: Recommender) -> None:
    users = [int(u) for u in recommender.bundle.user_ids.ids[:12]]
    queries = []
    for n, user in enumerate(users):
        query = recommender.list_query(
            user, 5 + n % 3, exclude_rated=n % 2 == 0, genres=["Comedy"] if n % 4 == 0 else None
        )
        assert isinstance(query, ListQuery)
        queries.append(query)
    together = recommender.rank_lists(queries)
    for query, ranked in zip(queries, together, strict=True):
        alone = recommender.rank_lists([query])[0]
        assert ranked.movie_index.tolist() == alone.movie_index.tolist()
        np.testing.assert_allclose(ranked.scores, alone.scores, rtol=1e-5)
        assert ranked.rank_scores is not None and alone.rank_scores is not None
        np.testing.assert_allclose(ranked.rank_scores, alone.rank_scores, rtol=1e-4, atol=1e-7)


def test_heavy_work_refuses_beyond_its_capacity_with_503_and_retry_after() -> None:
    async def scenario() -> list[object]:
        heavy = HeavyWork(threads=1, queue=1)
        slow = [asyncio.ensure_future(heavy.run(lambda: time.sleep(0.3) or 1)) for _ in range(2)]
        await asyncio.sleep(0.05)
        refused = await asyncio.gather(heavy.run(lambda: 2), return_exceptions=True)
        return [*(await asyncio.gather(*slow)), refused[0], heavy.refused]

    first, second, refused, count = asyncio.run(scenario())
    assert (first, second, count) == (1, 1, 1)
    assert isinstance(refused, ApiError) and refused.status == 503
    assert refused.headers == {"Retry-After": "1"}


@pytest.fixture(scope="module", params=["on", "turn"])
def batching_client(request: pytest.FixtureRequest, tiny_bundle_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(model_dir=tiny_bundle_dir, list_batching=request.param))) as client:
        yield client


def test_batched_lists_over_http_equal_the_inline_ones(
    batching_client: TestClient, tiny_bundle_dir: Path
) -> None:
    """In a thread (`on`) or with the other lists of a loop turn (`turn`): the lists scored alone."""
    ids = [int(u) for u in load_bundle(tiny_bundle_dir).user_ids.ids[:24]]
    with TestClient(create_app(Settings(model_dir=tiny_bundle_dir, list_batching="off"))) as inline:
        expected = {u: inline.get(f"/recommend/{u}?k=7").json()["items"] for u in ids}
    with ThreadPoolExecutor(8) as pool:
        got = dict(
            zip(ids, pool.map(lambda u: batching_client.get(f"/recommend/{u}?k=7").json(), ids), strict=True)
        )
    for user, body in got.items():
        # The same movies in the same order; scores equal up to float32 summation order (GEMM vs GEMV).
        assert [i["movie_id"] for i in body["items"]] == [i["movie_id"] for i in expected[user]]
        for item, alone in zip(body["items"], expected[user], strict=True):
            assert item["predicted_rating"] == pytest.approx(alone["predicted_rating"], abs=2e-4)
            assert item["rank_score"] == pytest.approx(alone["rank_score"], rel=1e-3, abs=2e-6)
    state = batching_client.app.state  # type: ignore[attr-defined]
    batcher = state.list_batcher if state.settings.list_batching == "on" else state.turn_batcher
    assert batcher.stats.items >= len(ids) and batcher.stats.batches <= batcher.stats.items


def test_recommend_is_unchanged_for_a_ranked_cold_start(recommender: Recommender) -> None:
    assert isinstance(recommender.list_query(999_999_999, 5), Ranked)


def test_batches_answered_off_the_event_loop_equal_the_inline_answers(tiny_bundle_dir: Path) -> None:
    bundle = load_bundle(tiny_bundle_dir)
    pairs = [
        {"user_id": int(u), "movie_id": int(m)}
        for u, m in zip(bundle.user_ids.ids[:40], bundle.movie_ids.ids[:40], strict=True)
    ]
    answers = []
    for threshold in (0, 10**9):  # every body off the loop, then none
        with TestClient(
            create_app(Settings(model_dir=tiny_bundle_dir, offload_min_body_bytes=threshold))
        ) as client:
            batch = client.post("/predict", json={"instances": pairs})
            one = client.post("/predict", json=pairs[0])
            unknown = client.post(
                "/predict?strict=true", json={"instances": [*pairs, {"user_id": 10**9, "movie_id": 1}]}
            )
            answers.append(
                (batch.status_code, batch.json(), one.json(), unknown.status_code, unknown.json()["code"])
            )
            heavy = client.app.state.heavy_work  # type: ignore[attr-defined]
            assert heavy.in_flight == 0 and heavy.refused == 0
    assert answers[0] == answers[1]
    assert answers[0][0] == 200 and answers[0][3] == 404
