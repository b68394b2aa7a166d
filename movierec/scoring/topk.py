"""Top-k selection over whole-catalogue scores, without a full sort (shared by every scorer family)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

I64 = NDArray[np.int64]

# Top-k samples every this-many-th score to find a threshold the top k must reach (see top_k_indices).
_SAMPLE_STRIDE = 8


def top_k_indices(scores: NDArray[Any], k: int) -> I64:
    """Indices of the k largest finite scores, best first, without a full sort.

    Excluded entries are -inf: they lose the partition unless fewer than k entries are finite, and are
    dropped after it, so the common case needs no count of the finite entries first.
    """
    n = scores.size
    k = min(k, n)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    if n >= 4 * _SAMPLE_STRIDE * k:
        top = _top_k_above_sampled_threshold(scores, k)
        if top is not None:
            return top
    # Partition the negated scores at k-1: with many -inf (excluded) entries, partitioning at n-k instead
    # degenerates in numpy's introselect (30x slower on a genre-filtered 62k catalogue).
    part = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
    part = part[np.isfinite(scores[part])]
    if len(part) < k:  # NaN scores or exclusions crowded the top k: choose among the finite ones only
        finite = np.flatnonzero(np.isfinite(scores))
        take = min(k, finite.size)
        if take == 0:
            return np.empty(0, dtype=np.int64)
        part = finite[np.argpartition(-scores[finite], take - 1)[:take]]
    order = np.argsort(-scores[part], kind="stable")
    return part[order].astype(np.int64)


def _top_k_above_sampled_threshold(scores: NDArray[Any], k: int) -> I64 | None:
    """Top k among the scores that reach the k-th largest of every `_SAMPLE_STRIDE`-th score; None when that
    cannot decide.

    When at least k finite scores reach the threshold, the k-th largest finite score does too, so the whole top
    k is among them: a few dozen to sort instead of partitioning the catalogue (3x faster on 9k movies, and no
    catalogue-sized index array). Ties come out in index order, like a stable full sort.
    """
    sample = scores[::_SAMPLE_STRIDE]
    threshold = np.partition(sample, sample.size - k)[sample.size - k]
    if not np.isfinite(threshold):  # exclusions (-inf) or NaN fill the sample's top k
        return None
    candidates = np.flatnonzero(scores >= threshold)  # NaN compares False, -inf < any finite threshold
    if candidates.size < k:  # NaNs in the sample lowered the guarantee below k
        return None
    order = np.argsort(-scores[candidates], kind="stable")[:k]
    return candidates[order].astype(np.int64, copy=False)
