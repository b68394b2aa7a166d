"""Export a trained Keras model's weights as the plain arrays the service scores with.

The service never runs Keras per request: it scores from these arrays with numpy (or on a GPU). This module
is the single place that knows which layer holds which weight; `tests/test_export.py` checks that scoring from
the arrays reproduces `model.predict` for every model kind.

Its branches on the config's kind stay here rather than in the trainer's kinds (training/kinds/): what they
read is the layer layout that movierec/models.py and movierec/svdpp.py build, which the core owns, and the
export of a graph is the same whichever trainer filled it (bpmf fills a `bias`-form graph from samples).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from movierec.model_config import BIAS_KINDS
from movierec.models import (
    HEAD,
    HIDDEN,
    MOVIE_BIAS,
    MOVIE_EMBEDDING,
    OUTPUT_DENSE,
    USER_BIAS,
    USER_EMBEDDING,
    ModelConfig,
)

Arrays = dict[str, NDArray[np.float32]]


def _weights(model: Any, name: str) -> list[NDArray[np.float32]]:
    return [np.asarray(w, dtype=np.float32) for w in model.get_layer(name).get_weights()]


def export_arrays(model: Any, config: ModelConfig) -> tuple[Arrays, dict[str, Any]]:
    """Return the scoring arrays and the head parameters of a trained model.

    Arrays (float32): `user_factors` (n_users, k), `movie_factors` (n_movies, k); for bias models
    `user_bias` (n_users,), `movie_bias` (n_movies,); for nn `hidden_kernel` (2k, h), `hidden_bias` (h,),
    `output_kernel` (h,), `output_bias` (1,); for svdpp also `implicit_factors` (n_movies, k) (the user
    factors exported are then the precomputed p_u + |N(u)|^-1/2 * sum y_j).
    """
    arrays: Arrays = {
        "user_factors": _weights(model, USER_EMBEDDING)[0],
        "movie_factors": _weights(model, MOVIE_EMBEDDING)[0],
    }
    if config.kind in BIAS_KINDS:
        arrays["user_bias"] = _weights(model, USER_BIAS)[0][:, 0]
        arrays["movie_bias"] = _weights(model, MOVIE_BIAS)[0][:, 0]
    if config.kind == "svdpp":
        from movierec.svdpp import IMPLICIT, implicit_user_factors

        implicit, pair_users, pair_movies, _ = _weights(model, IMPLICIT)
        # Fold the implicit term into the user factors once, so the service scores svdpp like a bias model.
        arrays["user_factors"] = arrays["user_factors"] + implicit_user_factors(
            implicit, pair_users, pair_movies, arrays["user_factors"].shape[0]
        )
        arrays["implicit_factors"] = implicit
    if config.kind == "nn":
        kernel, bias = _weights(model, HIDDEN)
        out_kernel, out_bias = _weights(model, OUTPUT_DENSE)
        arrays.update(
            hidden_kernel=kernel, hidden_bias=bias, output_kernel=out_kernel[:, 0], output_bias=out_bias
        )
    head_layer = model.get_layer(HEAD)
    head = {
        "min_rating": head_layer.min_rating,
        "max_rating": head_layer.max_rating,
        "offset": head_layer.offset,
        "squash": head_layer.squash,
        "margin": head_layer.margin,
    }
    return arrays, head
