"""Train / held-out splits that other tools can reproduce exactly."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from movierec.errors import DataError

SplitKind = Literal["random", "temporal"]


def random_split_mask(n_rows: int, seed: int = 42, train_fraction: float = 0.8) -> NDArray[np.bool_]:
    """Train mask of the comparable default split.

    Rows stay in file order and `default_rng(seed).random(n) < train_fraction` marks train, so any tool that reads
    the same file can reproduce the exact split.
    """
    return np.random.default_rng(seed).random(n_rows) < train_fraction


def temporal_split_mask(ratings: pd.DataFrame, train_fraction: float = 0.8) -> NDArray[np.bool_]:
    """Train mask that holds out each user's latest ratings by timestamp.

    Each user keeps their earliest `floor(train_fraction * n_u)` ratings (at least one) in train; ties in
    timestamp are broken by file order so the split is deterministic.
    """
    order = np.lexsort(
        (np.arange(len(ratings)), ratings["timestamp"].to_numpy(), ratings["user_id"].to_numpy())
    )
    users_sorted = ratings["user_id"].to_numpy()[order]
    starts = np.r_[0, np.flatnonzero(users_sorted[1:] != users_sorted[:-1]) + 1]
    counts = np.diff(np.r_[starts, users_sorted.size])
    rank_in_user = np.arange(users_sorted.size) - np.repeat(starts, counts)
    n_train = np.maximum(1, np.floor(train_fraction * counts)).astype(np.int64)
    mask_sorted = rank_in_user < np.repeat(n_train, counts)
    mask = np.empty(len(ratings), dtype=bool)
    mask[order] = mask_sorted
    return mask


def split_mask(
    ratings: pd.DataFrame, kind: SplitKind, seed: int, train_fraction: float = 0.8
) -> NDArray[np.bool_]:
    """Train mask for the named split."""
    if kind == "random":
        return random_split_mask(len(ratings), seed, train_fraction)
    if len(ratings) and (ratings["timestamp"].to_numpy() < 0).all():
        raise DataError(
            "a temporal split needs timestamps, and these ratings have none; use the random split"
        )
    return temporal_split_mask(ratings, train_fraction)
