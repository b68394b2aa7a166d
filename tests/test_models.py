"""Model builders: every kind trains, the head keeps ratings in range, saved models load anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from pydantic import ValidationError

from movierec.models import (
    HEAD,
    MOVIE_EMBEDDING,
    USER_EMBEDDING,
    ModelConfig,
    RatingHead,
    RowL2,
    build_model,
    head_logit_offset,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
KINDS = ("dot", "bias", "nn")


def _predict(model, pairs: dict[str, np.ndarray]) -> np.ndarray:
    # A direct call rather than `model.predict`: the same graph without tracing a predict function per call.
    return keras.ops.convert_to_numpy(model(pairs, training=False))


def _sample_pairs(fitted, n: int = 200, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_users, n_movies = len(fitted.indexed.users), len(fitted.indexed.movies)
    return {
        "user": rng.integers(0, n_users, n).astype(np.int32),
        "movie": rng.integers(0, n_movies, n).astype(np.int32),
    }


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_builds_and_trains(fitted_models, kind):
    fitted = fitted_models[kind]
    loss = fitted.history["loss"]
    assert fitted.model.name == f"movierec_{kind}"
    assert len(loss) == 3 and np.all(np.isfinite(loss))
    assert loss[-1] < loss[0], f"{kind}: training loss did not go down: {loss}"
    pairs = _sample_pairs(fitted)
    predictions = _predict(fitted.model, pairs)
    assert predictions.shape == (len(pairs["user"]),)
    assert np.all((predictions >= 0.5) & (predictions <= 5.0))


@pytest.mark.parametrize("kind", KINDS)
def test_movie_embedding_reads_the_movie_input(fitted_models, kind):
    # The notebook fed the user input to the movie embedding; then a user's predictions would not depend on
    # the movie at all.
    model = fitted_models[kind].model
    n_movies = model.get_layer(MOVIE_EMBEDDING).input_dim
    n_users = model.get_layer(USER_EMBEDDING).input_dim
    assert (n_users, n_movies) == (
        len(fitted_models[kind].indexed.users),
        len(fitted_models[kind].indexed.movies),
    )
    one_user = {"user": np.zeros(n_movies, dtype=np.int32), "movie": np.arange(n_movies, dtype=np.int32)}
    assert np.ptp(_predict(model, one_user)) > 1e-3


def test_rating_head_keeps_squashed_outputs_in_range():
    head = RatingHead(0.5, 5.0, offset=3.5, squash=True)
    raw = np.array([[-1e4], [-50.0], [-1.0], [0.0], [1.0], [50.0], [1e4]], dtype=np.float32)
    out = keras.ops.convert_to_numpy(head(raw))
    assert out.shape == (7,)
    assert np.all((out >= 0.5) & (out <= 5.0))
    assert np.all(np.diff(out) >= 0), "the head must be monotonic: rankings are computed on raw scores"
    # A raw score of 0 predicts the global mean.
    assert out[3] == pytest.approx(3.5, abs=1e-5)


def test_rating_head_without_squashing_adds_the_offset():
    head = RatingHead(0.5, 5.0, offset=3.5, squash=False)
    out = keras.ops.convert_to_numpy(head(np.array([[-1.0], [0.0], [2.5]], dtype=np.float32)))
    np.testing.assert_allclose(out, [2.5, 3.5, 6.0])


@pytest.mark.parametrize("offset", [0.5, 5.0, 3.0])
def test_head_logit_offset_stays_finite_at_the_ends_of_the_scale(offset):
    logit = head_logit_offset(0.5, 5.0, offset)
    assert np.isfinite(logit)
    p = 1 / (1 + np.exp(-logit))
    assert 0.5 + 4.5 * p == pytest.approx(offset, abs=0.01)


def test_per_example_regularisation_is_the_mean_row_penalty_whatever_the_batch_size():
    # RowL2 returns the batch sum and Keras divides activity penalties by the batch size, so the penalty of
    # a batch repeating one pair is l2 * (|p_u|^2 + |q_i|^2) however often the pair is repeated.
    config = ModelConfig(kind="dot", n_factors=4, l2_factors=0.1, regularization="per_example")
    model = build_model(config, n_users=3, n_movies=5, rating_scale=(0.5, 5.0), global_mean=3.5)
    p = model.get_layer(USER_EMBEDDING).get_weights()[0][1]
    q = model.get_layer(MOVIE_EMBEDDING).get_weights()[0][2]
    expected = 0.1 * (np.sum(p**2) + np.sum(q**2))
    for batch in (1, 8):
        model({"user": np.full(batch, 1, dtype=np.int32), "movie": np.full(batch, 2, dtype=np.int32)})
        penalty = sum(float(keras.ops.convert_to_numpy(loss)) for loss in model.losses)
        assert penalty == pytest.approx(expected, rel=1e-4)


def test_model_config_rejects_unknown_fields():
    with pytest.raises(ValidationError):
        ModelConfig(kind="bias", n_factor=10)


@pytest.mark.parametrize("kind", KINDS)
def test_saved_model_loads_without_custom_objects_and_predicts_identically(fitted_models, kind, tmp_path):
    model = fitted_models[kind].model
    path = tmp_path / f"{kind}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    pairs = _sample_pairs(fitted_models[kind])
    np.testing.assert_array_equal(_predict(loaded, pairs), _predict(model, pairs))
    head = loaded.get_layer(HEAD)
    assert isinstance(head, RatingHead)
    assert head.get_config() == model.get_layer(HEAD).get_config()
    assert keras.saving.get_registered_name(RatingHead) == "movierec>RatingHead"
    assert keras.saving.get_registered_name(RowL2) == "movierec>RowL2"


def test_saved_models_load_in_a_fresh_process(fitted_models, tmp_path):
    # What the service or another tool does: a new interpreter that only imports movierec.models (which
    # registers the custom layer and regulariser) and calls load_model without custom_objects.
    pairs = _sample_pairs(fitted_models["nn"], n=50, seed=1)
    paths, expected = [], {}
    for kind in KINDS:
        path = tmp_path / f"{kind}.keras"
        fitted_models[kind].model.save(path)
        paths.append(str(path))
        expected[str(path)] = _predict(fitted_models[kind].model, pairs)
    script = (
        "import json, sys\n"
        "import keras, numpy as np\n"
        "import movierec.models\n"
        "pairs = {k: np.array(v, dtype='int32') for k, v in json.loads(sys.argv[1]).items()}\n"
        "out = {p: np.asarray(keras.saving.load_model(p)(pairs, training=False)).tolist() for p in sys.argv[2:]}\n"
        "print(json.dumps(out))\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    proc = subprocess.run(
        [sys.executable, "-c", script, json.dumps({k: v.tolist() for k, v in pairs.items()}), *paths],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    for path in paths:
        np.testing.assert_allclose(np.array(got[path], dtype=np.float32), expected[path], rtol=0, atol=1e-6)
