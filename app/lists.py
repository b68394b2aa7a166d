"""How the service scores a top-N list: with the other lists of the same event-loop turn, or in a thread.

Which one is a measured choice (`MOVIEREC_LIST_BATCHING`, default `auto`): a list that costs less than
`list_batching_min_ms` (ml-latest-small: about 0.2 ms) is scored on the event loop together with the lists of
the same turn (`app.batching.TurnBatcher`), where a thread hand-off would cost more than it saves; a costlier
one (a 62,000-movie catalogue: several ms, dominated by reading the item side) goes through the thread
micro-batcher (`app.batching.MicroBatcher`), which keeps the event loop free meanwhile. `off` scores each list
alone, inline. Finished lists are kept for the next request of the same list (`app.list_cache`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from fastapi import Request

from app.batching import MicroBatcher, TurnBatcher
from app.list_cache import ListCache
from app.middleware import Metrics
from app.settings import Settings
from app.state import LoadedModel
from movierec.recommender import ListQuery, Ranked, Recommender

ListItem = tuple[Recommender, ListQuery]


def new_list_cache(settings: Settings, metrics: Metrics) -> ListCache:
    """The process's cache of finished lists, its measures in /metrics."""
    cache = ListCache(int(settings.list_cache_mb * 2**20))
    for measure, read in (
        ("entries", lambda: len(cache)),
        ("bytes", lambda: cache.nbytes),
        ("hits", lambda: cache.hits),
        ("misses", lambda: cache.misses),
    ):
        metrics.list_cache.labels(measure).set_function(read)
    return cache


def new_list_batcher(settings: Settings) -> MicroBatcher[ListItem, Ranked]:
    return MicroBatcher(
        rank_grouped,
        max_batch=settings.list_batch_max,
        max_pending=settings.list_queue,
        timeout_s=settings.list_timeout_s,
    )


def new_turn_batcher(settings: Settings) -> TurnBatcher[ListItem, Ranked]:
    return TurnBatcher(rank_grouped, max_batch=settings.list_batch_max, max_pending=settings.list_queue)


def rank_grouped(items: Sequence[ListItem]) -> list[Ranked | BaseException]:
    """Each item's list; items of one model (all of them, except across a reload) are scored together."""
    results: list[Ranked | BaseException] = []
    by_model: dict[int, list[int]] = {}
    for row, (recommender, _) in enumerate(items):
        by_model.setdefault(id(recommender), []).append(row)
        results.append(RuntimeError("not scored"))
    for rows in by_model.values():
        recommender = items[rows[0]][0]
        try:
            ranked: Sequence[Ranked | BaseException] = recommender.rank_lists([items[row][1] for row in rows])
        except Exception as exc:  # one bad batch fails its own requests, never the batcher
            ranked = [exc] * len(rows)
        for row, result in zip(rows, ranked, strict=True):
            results[row] = result
    return results


BatchingMode = Literal["thread", "turn", "inline"]


def batching_mode(request: Request, loaded: LoadedModel) -> BatchingMode:
    """How `loaded`'s lists are scored under the settings (see the module docstring)."""
    setting = request.app.state.settings.list_batching
    if setting == "auto":
        costly = loaded.list_cost_ms >= request.app.state.settings.list_batching_min_ms
        return "thread" if costly else "turn"
    modes: dict[str, BatchingMode] = {"on": "thread", "turn": "turn", "off": "inline"}
    return modes[setting]


async def rank_list(request: Request, loaded: LoadedModel, query: ListQuery) -> Ranked:
    """`query`'s list, scored as `batching_mode` says."""
    mode = batching_mode(request, loaded)
    if mode == "inline":
        return loaded.recommender.rank_lists([query])[0]
    state = request.app.state
    batcher: MicroBatcher[ListItem, Ranked] | TurnBatcher[ListItem, Ranked] = (
        state.list_batcher if mode == "thread" else state.turn_batcher
    )
    return await batcher.submit((loaded.recommender, query))
