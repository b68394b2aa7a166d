"""Held-out ratings cannot reach the evaluated model: change every one of them and it comes out the same.

What the run reports is the held-out error of the model fitted on the train split (training/pipeline.py).
If any held-out row leaked into that model (its fit, its epoch choice, its side features' who-rated-what
SVD, its baselines), changing the held-out ratings would change its weights.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import tiny_train_config

from movierec.data import RatingsData
from movierec.split import split_mask

SEED = 42


def _with_other_heldout_ratings(data: RatingsData, seed: int) -> RatingsData:
    """The same rows, every held-out rating mirrored on the half-star scale (5.5 - r never equals r)."""
    ratings = data.ratings.copy()
    heldout = ~split_mask(ratings, "random", seed)
    ratings.loc[heldout, "rating"] = (5.5 - ratings.loc[heldout, "rating"]).astype(np.float32)
    assert (ratings["rating"] != data.ratings["rating"]).to_numpy().sum() == heldout.sum() > 0
    return dataclasses.replace(data, ratings=ratings)


def _configs():  # -> dict[str, TrainConfig]; imported lazily like conftest (training pulls in Keras)
    from training.config import TrainConfig

    bias = tiny_train_config().model_copy(update={"epochs": 2, "refit": False})
    side_model = bias.model.model_copy(update={"side_features": True})
    return {
        "bias-side-features": bias.model_copy(update={"model": side_model}),
        "bpmf": TrainConfig.for_kind(
            "bpmf", epochs=4, refit=False, model_fields={"burn_in": 1, "export_rank": 8}
        ),
    }


@pytest.mark.parametrize("case", ["bias-side-features", "bpmf"])
def test_changing_heldout_ratings_leaves_the_evaluated_model_unchanged(case, tiny_ratings, tmp_path):
    from training.pipeline import train_run

    config = _configs()[case]
    assert config.seed == SEED and config.split == "random" and not config.refit
    assert config.model.side_features  # the who-rated-what SVD must see no held-out row either
    original = train_run(tiny_ratings, config, tmp_path / "a", verbose=0)
    changed = train_run(_with_other_heldout_ratings(tiny_ratings, SEED), config, tmp_path / "b", verbose=0)

    for name in ("selection_model", "eval_model"):
        before, after = getattr(original, name), getattr(changed, name)
        assert sorted(before.arrays) == sorted(after.arrays)
        for key in before.arrays:
            np.testing.assert_array_equal(before.arrays[key], after.arrays[key], err_msg=f"{name}.{key}")
        assert before.head == after.head and before.epochs == after.epochs
    # The same model, scored against different held-out ratings: only the report moves.
    assert original.manifest.metrics["n_heldout"] == changed.manifest.metrics["n_heldout"]
    assert original.manifest.metrics["rmse"] != pytest.approx(changed.manifest.metrics["rmse"], abs=1e-3)
    assert original.manifest.served_model["fitted_on"] == "train split (no refit)"
    assert original.manifest.served_model["is_evaluated_model"] is True
