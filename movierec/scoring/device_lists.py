"""Ranker-ordered top-k lists of a batch of users, computed end to end on the device (`MOVIEREC_DEVICE=gpu`).

On the CPU a list is pruned (`Recommender._rank_by_ranker`: the rating model scores only the movies that can
still reach the top k). On a GPU scoring the whole catalogue is cheap and each transfer is what costs, so the
device path does a batch in one pass there: the ranker's propensities (b, r) @ (r, n_movies), the rating model's
catalogue scores and head, the blend (`movierec.ranking.blend`), filters, exclusions and top-k. Only k movie
indices, predicted ratings and rank scores per user come back. The same numbers as the CPU path up to float32
rounding of the device's products (tests/test_accel.py holds the lists equal on Keras' CPU backend).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from movierec.ranking import PROPENSITY_FLOOR, ItemRanker
from movierec.scoring.base import F32, I64
from movierec.scoring.head import Head

# What one list of the batch asks for (a `movierec.recommender.ListQuery`'s fields, without the import cycle).
ListAsk = tuple[F32, float, NDArray[Any], bool, F32 | None, int]  # user_vec, bias, rated, exclude, penalty, k


class DeviceListRanker:
    """The device copies of the ranker's item side, and the batch list computation over them.

    `scorer` is a device scorer (`movierec.scoring.device`): its `raw_scores` scores user vectors against the
    catalogue on the device.
    """

    def __init__(self, ranker: ItemRanker, scorer: Any, head: Head) -> None:
        from keras import ops

        self._ops = ops
        self._ranker = ranker
        self._scorer = scorer
        self._head = head
        self._item_side = ops.convert_to_tensor(ranker.item_factors_t)
        self.n_movies = int(ranker.item_factors_t.shape[1])

    def _ratings(self, raw: Any) -> Any:
        """`Head.apply` in keras.ops."""
        ops, head = self._ops, self._head
        if head.squash:
            out = head.low + head.span * ops.sigmoid(ops.clip(raw + head.logit_offset, -50.0, 50.0))
        else:
            out = raw + head.offset
        return ops.clip(out, head.min_rating, head.max_rating)

    def rank(self, asks: Sequence[ListAsk], ranker_vectors: F32) -> list[tuple[I64, F32, F32]]:
        """Per list: (movie indices best first, predicted ratings, rank scores), at most k of each; fewer when
        fewer movies pass the filters."""
        ops, n = self._ops, self.n_movies
        vectors = ops.convert_to_tensor(np.stack([a[0] for a in asks]).astype(np.float32))
        biases = ops.convert_to_tensor(np.array([a[1] for a in asks], dtype=np.float32))
        ratings = self._ratings(self._scorer.raw_scores(vectors, biases))
        propensity = ops.matmul(ops.convert_to_tensor(ranker_vectors.astype(np.float32)), self._item_side)
        rows, cols, adds = [], [], []  # rated movies: their self weight when kept, -inf when excluded
        for row, (_, _, rated, exclude, _, _) in enumerate(asks):
            if len(rated) and not exclude:
                rows.append(np.full(len(rated), row))
                cols.append(rated)
                adds.append(self._ranker.self_weight[rated])
        if rows:
            propensity = propensity + self._scatter(rows, cols, adds, len(asks))
        like = ops.sigmoid((ratings - self._ranker.like_threshold) / self._ranker.like_temperature)
        scores = ops.maximum(propensity, PROPENSITY_FLOOR) * like
        penalties = [a[4] for a in asks]
        if any(p is not None for p in penalties):
            zero = np.zeros(n, dtype=np.float32)
            scores = scores + ops.convert_to_tensor(np.stack([zero if p is None else p for p in penalties]))
        rows, cols, adds = [], [], []
        for row, (_, _, rated, exclude, _, _) in enumerate(asks):
            if len(rated) and exclude:
                rows.append(np.full(len(rated), row))
                cols.append(rated)
                adds.append(np.full(len(rated), -np.inf, dtype=np.float32))
        if rows:
            scores = scores + self._scatter(rows, cols, adds, len(asks))
        k = min(max(a[5] for a in asks), n)
        top_scores, top = ops.top_k(scores, k=k)
        top_ratings = ops.take_along_axis(ratings, top, axis=1)
        top_scores, top, top_ratings = (
            np.asarray(ops.convert_to_numpy(t)) for t in (top_scores, top, top_ratings)
        )
        lists = []
        for row, ask in enumerate(asks):
            keep = np.isfinite(top_scores[row, : ask[5]])
            lists.append(
                (
                    top[row, : ask[5]][keep].astype(np.int64),
                    top_ratings[row, : ask[5]][keep].astype(np.float32),
                    top_scores[row, : ask[5]][keep].astype(np.float32),
                )
            )
        return lists

    def _scatter(self, rows: list[Any], cols: list[Any], values: list[Any], batch: int) -> Any:
        """A (batch, n_movies) device tensor with `values` at (rows, cols) and zeros elsewhere."""
        ops = self._ops
        indices = np.stack([np.concatenate(rows), np.concatenate(cols)], axis=1).astype(np.int32)
        return ops.scatter(
            ops.convert_to_tensor(indices),
            ops.convert_to_tensor(np.concatenate(values).astype(np.float32)),
            (batch, self.n_movies),
        )
