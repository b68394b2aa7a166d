"""The device (keras.ops) scoring path gives the numpy path's answers; here it runs on the CPU backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from movierec.artifacts import load_bundle
from movierec.recommender import Recommender
from movierec.scoring import top_k_indices


def test_device_catalogue_matches_numpy_scores_and_top_k(tiny_bundle_dir: Path) -> None:
    pytest.importorskip("keras")
    from movierec.accel import DeviceCatalogue, use_device_scoring

    recommender = Recommender(load_bundle(tiny_bundle_dir))
    scorer = recommender.scorer
    users = np.arange(min(5, scorer.n_users), dtype=np.int64)
    expected = [scorer.raw_catalogue(scorer.user_factors[u], float(scorer.user_bias[u])) for u in users]
    device = DeviceCatalogue(scorer)
    _, indices = device.top_k_users(users, k=5)
    for row, u in enumerate(users):
        np.testing.assert_allclose(
            device.raw_catalogue(scorer.user_factors[u], float(scorer.user_bias[u])),
            expected[row],
            rtol=1e-5,
            atol=1e-5,
        )
        np.testing.assert_array_equal(indices[row], top_k_indices(expected[row], 5))
    before = recommender.recommend(int(recommender.bundle.user_ids.ids[0]), 5).movie_index
    use_device_scoring(recommender)
    after = recommender.recommend(int(recommender.bundle.user_ids.ids[0]), 5).movie_index
    np.testing.assert_array_equal(before, after)
