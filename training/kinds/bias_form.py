"""Closed-form fits (bpmf's sampler, ALS) delivered as the Keras `bias`-form model the service loads."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from movierec.model_config import ModelConfig
from training.fitted import FittedModel, Indexed
from training.metrics import damped_baselines


def bias_form_fitted(
    model_config: ModelConfig,
    train: Indexed,
    rating_scale: tuple[float, float],
    factors: tuple[NDArray[Any], NDArray[Any]],
    biases: tuple[NDArray[Any], NDArray[Any]],
    global_mean: float,
    *,
    steps: int,
    seconds: float,
    history: dict[str, list[float]],
) -> FittedModel:
    """A fitted model whose graph carries the given user and movie factors and biases (linear head).

    `steps` (sweeps) gets one zero learning rate each, so that a refit replays the same count.
    """
    from movierec.export import export_arrays
    from movierec.models import MOVIE_BIAS, MOVIE_EMBEDDING, USER_BIAS, USER_EMBEDDING, build_model

    user_factors, movie_factors = factors
    m = model_config.model_copy(update={"n_factors": user_factors.shape[1]})
    model = build_model(m, len(train.users), len(train.movies), rating_scale, global_mean)
    weights = {
        USER_EMBEDDING: user_factors,
        MOVIE_EMBEDDING: movie_factors,
        USER_BIAS: biases[0][:, None],
        MOVIE_BIAS: biases[1][:, None],
    }
    for name, value in weights.items():
        model.get_layer(name).set_weights([np.asarray(value, dtype=np.float32)])
    _, base_u, base_i = damped_baselines(
        train.user_idx, train.movie_idx, train.ratings, len(train.users), len(train.movies)
    )
    arrays, head = export_arrays(model, m)
    arrays = {**arrays, "baseline_user_bias": base_u, "baseline_movie_bias": base_i}
    return FittedModel(
        model, train, arrays, head, steps, [0.0] * steps, seconds, history, scorer_family="factor"
    )
