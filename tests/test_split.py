"""Train / held-out splits: reproducible by other tools, temporal split holds out each user's latest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import make_ratings

from movierec.split import random_split_mask, split_mask, temporal_split_mask


def test_random_split_is_the_documented_formula():
    # Any other tool reproduces the split with exactly this line; it must not drift.
    n = 10_000
    np.testing.assert_array_equal(random_split_mask(n), np.random.default_rng(42).random(n) < 0.8)
    np.testing.assert_array_equal(
        random_split_mask(n, seed=7, train_fraction=0.5), np.random.default_rng(7).random(n) < 0.5
    )


def test_random_split_is_deterministic_per_seed():
    assert np.array_equal(random_split_mask(5000, seed=1), random_split_mask(5000, seed=1))
    assert not np.array_equal(random_split_mask(5000, seed=1), random_split_mask(5000, seed=2))
    assert random_split_mask(100_000).mean() == pytest.approx(0.8, abs=0.01)


def test_split_mask_dispatches_on_kind():
    ratings = make_ratings(20, 30, 300, seed=4).ratings
    np.testing.assert_array_equal(split_mask(ratings, "random", 42), random_split_mask(len(ratings), 42))
    np.testing.assert_array_equal(split_mask(ratings, "temporal", 42), temporal_split_mask(ratings))


def test_temporal_split_holds_out_each_users_latest_ratings():
    ratings = make_ratings(40, 50, 1200, seed=5).ratings
    mask = temporal_split_mask(ratings, train_fraction=0.8)
    assert mask.shape == (len(ratings),)
    for _, group in ratings.assign(train=mask).groupby("user_id"):
        train, held = group[group["train"]], group[~group["train"]]
        n = len(group)
        assert len(train) == max(1, int(np.floor(0.8 * n)))
        if len(held):
            assert train["timestamp"].max() <= held["timestamp"].min()


def test_temporal_split_keeps_at_least_one_rating_and_breaks_ties_by_file_order():
    ratings = pd.DataFrame(
        {
            "user_id": [1, 2, 2, 2, 1, 3],
            "movie_id": [10, 10, 11, 12, 11, 10],
            "rating": np.float32(3.0),
            # user 2's three ratings share a timestamp: file order decides, the last row is held out.
            "timestamp": [200, 50, 50, 50, 100, 5],
        }
    )
    mask = temporal_split_mask(ratings, train_fraction=0.6)
    # user 1: floor(0.6 * 2) = 1 -> keeps the earlier (row 4, t=100), holds out row 0 (t=200)
    # user 2: floor(0.6 * 3) = 1 -> keeps row 1, the first in file order
    # user 3: one rating -> kept in train
    np.testing.assert_array_equal(mask, [False, True, False, False, True, True])
