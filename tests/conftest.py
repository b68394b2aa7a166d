"""Session fixtures: a tiny synthetic data set and a tiny bundle trained from it once per test session.

Session-scoped artifacts are shared by every test module: never modify them in place; copy the run directory
(`shutil.copytree`) into `tmp_path` first.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Before anything imports Keras: the default backend, and no TF start-up chatter in the test output.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from helpers import make_ratings

from movierec.data import RatingsData

# The ratings database of every app a test builds without its own: a throwaway SQLite file, never data/movierec.db.
_DB_DIR = tempfile.mkdtemp(prefix="movierec-test-db-")
atexit.register(shutil.rmtree, _DB_DIR, ignore_errors=True)
os.environ["MOVIEREC_DATABASE_URL"] = f"sqlite:///{_DB_DIR}/movierec.db"

TINY_USERS, TINY_MOVIES, TINY_RATINGS = 60, 80, 2500


def tiny_train_config():  # -> training.config.TrainConfig (imported lazily: it pulls in Keras)
    """The tiny bundle's config: `bias` with 8 factors, 3 quick epochs and no side features.

    The higher learning rate lets 3 epochs of 7 batches learn the planted biases (held-out RMSE about 0.64
    against 0.76 at the default 0.01), which the fold-in and ranking tests rely on. Without side features the
    learned user vectors are what a fold-in of the user's ratings estimates, which the fold-in property tests
    compare against (a side-feature user vector also carries a prior from who-rated-what; 0.65-0.75 Spearman
    with the fold-in instead of 0.85+). tests/test_side_features.py trains the side-feature defaults.
    """
    from training.config import TrainConfig

    return TrainConfig.for_kind(
        "bias",
        epochs=3,
        batch_size=256,
        learning_rate=0.05,
        model_fields={"n_factors": 8, "side_features": False},
    )


@pytest.fixture(scope="session")
def tiny_ratings(tmp_path_factory: pytest.TempPathFactory) -> RatingsData:
    """60 users x 80 movies, 2,500 half-star ratings with planted structure, written as a csv layout."""
    return make_ratings(
        TINY_USERS, TINY_MOVIES, TINY_RATINGS, seed=0, directory=tmp_path_factory.mktemp("tiny-data")
    )


@pytest.fixture(scope="session")
def tiny_train_result(tiny_ratings: RatingsData, tmp_path_factory: pytest.TempPathFactory):
    """`training.pipeline.train_run` on the tiny data (with refit) into a fresh model root."""
    from training.pipeline import train_run

    root = tmp_path_factory.mktemp("tiny-models")
    return train_run(tiny_ratings, tiny_train_config(), root, verbose=0)


@pytest.fixture(scope="session")
def tiny_model_root(tiny_train_result) -> Path:
    """Model root holding exactly one run (the tiny `bias` bundle) and `latest` pointing at it."""
    return tiny_train_result.run_dir.parent


@pytest.fixture(scope="session")
def tiny_bundle_dir(tiny_train_result) -> Path:
    """Run directory of the tiny `bias` bundle; `tiny_model_root / "latest"` points at it."""
    return tiny_train_result.run_dir


@pytest.fixture(scope="session")
def fitted_models(tiny_ratings: RatingsData) -> dict:
    """One briefly trained model per kind (dot, bias, nn), fitted by the trainer's `fit` on all tiny ratings.

    8 factors, the default per-example regularisation (so the registered `RowL2` is in the saved graph) and a
    replayed 3-epoch schedule: enough for non-trivial weights, the point of the export and save/load tests.
    """
    from movierec.models import ModelConfig
    from training.config import TrainConfig
    from training.pipeline import Indexed, fit

    indexed = Indexed.from_frame(tiny_ratings.ratings)
    fitted = {}
    for kind in ("dot", "bias", "nn"):
        config = TrainConfig(model=ModelConfig(kind=kind, n_factors=8), batch_size=256)
        fitted[kind] = fit(
            config, indexed, tiny_ratings.rating_scale, validation=None, schedule=[0.01] * 3, verbose=0
        )
    return fitted
