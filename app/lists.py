"""How the service scores a top-N list: inline on the event loop, or batched with concurrent requests.

Which one is a measured choice (`MOVIEREC_LIST_BATCHING`, default `auto`): a list that costs less than
`list_batching_min_ms` (ml-latest-small: about 0.2 ms) is scored inline, where a thread hand-off would cost
more than it saves; a costlier one (a 62,000-movie catalogue: several ms, dominated by reading the item side)
goes through the micro-batcher (`app.batching`), which scores the lists of concurrent requests together.
Finished lists are kept for the next request of the same list (`app.list_cache`).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import Request

from app.batching import MicroBatcher
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


def batches_lists(request: Request, loaded: LoadedModel) -> bool:
    settings = request.app.state.settings
    if settings.list_batching == "auto":
        return loaded.list_cost_ms >= settings.list_batching_min_ms
    return bool(settings.list_batching == "on")


async def rank_list(request: Request, loaded: LoadedModel, query: ListQuery) -> Ranked:
    """`query`'s list, scored inline or with concurrent requests' (see the module docstring)."""
    if not batches_lists(request, loaded):
        return loaded.recommender.rank_lists([query])[0]
    batcher: MicroBatcher[ListItem, Ranked] = request.app.state.list_batcher
    return await batcher.submit((loaded.recommender, query))
