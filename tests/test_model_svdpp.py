"""The svdpp kind: trains, exports to arrays the service's Scorer reproduces, and round-trips through model.keras."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from movierec.export import export_arrays
from movierec.models import ModelConfig
from movierec.scoring import Head, build_scorer
from movierec.svdpp import ImplicitFeedback, build_svdpp_model, implicit_user_factors
from training.config import TrainConfig
from training.pipeline import Indexed, fit


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 400
    return pd.DataFrame(
        {
            "user_id": rng.integers(1, 31, n),
            "movie_id": rng.integers(100, 160, n),
            "rating": rng.choice(np.arange(1, 11) / 2, n).astype(np.float32),
        }
    )


@pytest.fixture(scope="module")
def fitted(ratings: pd.DataFrame):
    config = TrainConfig.for_kind("svdpp", epochs=1, refit=False, batch_size=128)
    indexed = Indexed.from_frame(ratings)
    val = (indexed.user_idx[:40], indexed.movie_idx[:40], indexed.ratings[:40])
    return fit(config, indexed, (0.5, 5.0), validation=val, verbose=0), config


def test_implicit_term_matches_numpy(fitted) -> None:
    model = fitted[0].model
    layer = model.get_layer("implicit_feedback")
    y, users, movies, _ = (np.asarray(w) for w in layer.get_weights())
    expected = implicit_user_factors(y, users, movies, layer.n_users)
    got = keras.ops.convert_to_numpy(layer.all_users())
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # |N(u)|^-1/2 * sum over the user's rated movies, checked by hand for user 0.
    rated = movies[users == 0]
    np.testing.assert_allclose(expected[0], y[rated].sum(axis=0) / np.sqrt(len(rated)), atol=1e-5)


def test_scorer_from_exported_arrays_matches_predict(fitted, ratings: pd.DataFrame) -> None:
    result, config = fitted
    model, indexed = result.model, result.indexed
    arrays, head = export_arrays(model, config.model)
    n_users = len(indexed.users)
    scorer = build_scorer(
        "factor", arrays, Head.from_dict(head), np.zeros(n_users), np.zeros(len(indexed.movies))
    )
    assert scorer.has_bias
    users = np.repeat(np.arange(n_users), 3).astype(np.int64)
    movies = np.tile(np.array([0, 7, len(indexed.movies) - 1]), n_users).astype(np.int64)
    expected = model.predict({"user": users.astype(np.int32), "movie": movies.astype(np.int32)}, verbose=0)
    got, fallback = scorer.predict(users, movies)
    assert not fallback.any()
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # The implicit term is folded into the exported user factors: they differ from the explicit p_u.
    p_u = model.get_layer("user_embedding").get_weights()[0]
    assert not np.allclose(arrays["user_factors"], p_u)


def test_save_load_gives_identical_predictions(fitted, tmp_path: Path) -> None:
    model = fitted[0].model
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("implicit_feedback"), ImplicitFeedback)
    inputs = {"user": np.arange(10, dtype=np.int32), "movie": np.arange(10, dtype=np.int32)}
    np.testing.assert_array_equal(loaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0))


def test_build_rejects_wrong_pair_count() -> None:
    layer_model = build_svdpp_model(
        ModelConfig(kind="svdpp", n_factors=4),
        3,
        5,
        (0.5, 5.0),
        3.5,
        np.array([0, 1, 2]),
        np.array([0, 1, 4]),
    )
    with pytest.raises(ValueError, match="pairs"):
        layer_model.get_layer("implicit_feedback").set_pairs(np.array([0]), np.array([0]))
