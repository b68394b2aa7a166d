"""Keras 3 model builders: the lesson-4 notebook's dot, bias and nn models, with its bugs fixed.

Fixed relative to the notebook:
- the movie embedding reads the *movie* input (the notebook fed it the user input);
- bias and embedding layers are named and reachable, so analysis reads weights directly from the
  trained model instead of building a disconnected sub-graph ("Graph disconnected");
- the seed is *set* (`keras.utils.set_random_seed`) by the trainer, not assigned to a variable.

Only built-in layers and `RatingHead`, registered as serializable, are used, and no TensorFlow-only ops,
so `keras.saving.load_model` needs no extra arguments and the models also run on the JAX backend.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import layers, ops
from numpy.typing import NDArray

from movierec.model_config import BIAS_KINDS, MODEL_KINDS, ModelConfig, ModelKind
from movierec.scoring.head import head_logit_offset

__all__ = [
    "MODEL_KINDS",
    "ModelConfig",
    "ModelKind",
    "RatingHead",
    "RowL2",
    "build_model",
    "head_logit_offset",
]

# Layer names are part of the artifact contract: `movierec.export` reads weights by these names.
USER_EMBEDDING = "user_embedding"
MOVIE_EMBEDDING = "movie_embedding"
USER_BIAS = "user_bias"
MOVIE_BIAS = "movie_bias"
HIDDEN = "hidden"
OUTPUT_DENSE = "output_dense"
HEAD = "rating_head"


@keras.saving.register_keras_serializable(package="movierec")
class RatingHead(layers.Layer):
    """Maps a raw score to a rating: `offset + x`, or a sigmoid squashed into the rating range.

    With squashing, a raw score of 0 maps to `offset` (the global mean), so biases and dot products start
    from a sensible prediction. The sigmoid spans [min - margin, max + margin]: a sigmoid never reaches its
    ends, so without a margin the common top rating could only be approached with ever larger raw scores
    (fastai's y_range trick); serving clips to the scale.
    """

    def __init__(
        self,
        min_rating: float,
        max_rating: float,
        offset: float,
        squash: bool,
        margin: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.min_rating = float(min_rating)
        self.max_rating = float(max_rating)
        self.offset = float(offset)
        self.squash = bool(squash)
        self.margin = float(margin)

    @property
    def logit_offset(self) -> float:
        """Pre-sigmoid shift that makes a raw score of 0 predict `offset`."""
        return head_logit_offset(self.min_rating - self.margin, self.max_rating + self.margin, self.offset)

    def call(self, x: Any) -> Any:
        # (batch, 1) -> (batch,): one rating per (user, movie) pair, like the targets.
        x = ops.squeeze(x, axis=-1)
        if self.squash:
            span = self.max_rating - self.min_rating + 2 * self.margin
            return self.min_rating - self.margin + span * ops.sigmoid(x + self.logit_offset)
        return x + self.offset

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            min_rating=self.min_rating,
            max_rating=self.max_rating,
            offset=self.offset,
            squash=self.squash,
            margin=self.margin,
        )
        return config


@keras.saving.register_keras_serializable(package="movierec")
class RowL2(keras.regularizers.Regularizer):
    """L2 penalty on looked-up embedding rows, averaged over the batch.

    Used as an activity regulariser it reproduces the per-rating penalty `l2 * (|p_u|^2 + |q_i|^2)` of
    SGD matrix factorisation, independent of batch size: it returns the batch *sum* because Keras divides
    activity-regularisation losses by the batch size itself.
    """

    def __init__(self, l2: float) -> None:
        self.l2 = float(l2)

    def __call__(self, x: Any) -> Any:
        return self.l2 * ops.sum(ops.square(x))

    def get_config(self) -> dict[str, Any]:
        return {"l2": self.l2}


def _embedding(
    n: int, dim: int, l2: float, per_example: bool, name: str, init_scale: float = 0.05
) -> layers.Embedding:
    regularizer: dict[str, Any] = {}
    if l2 > 0:
        key = "activity_regularizer" if per_example else "embeddings_regularizer"
        regularizer[key] = RowL2(l2) if per_example else keras.regularizers.L2(l2)
    return layers.Embedding(
        n,
        dim,
        embeddings_initializer=keras.initializers.RandomNormal(stddev=init_scale),
        name=name,
        **regularizer,
    )


def build_model(
    config: ModelConfig,
    n_users: int,
    n_movies: int,
    rating_scale: tuple[float, float],
    global_mean: float,
    side_tables: tuple[NDArray[Any], NDArray[Any]] | None = None,
) -> keras.Model:
    """Build an uncompiled model of `config.kind` taking `{"user": idx, "movie": idx}` int inputs.

    Args:
        config: architecture hyper-parameters.
        n_users: rows of the user embedding (size of the user id map).
        n_movies: rows of the movie embedding (size of the movie id map).
        rating_scale: (min, max) ratings, the range the head squashes into.
        global_mean: mean training rating, the prediction for a raw score of 0.
        side_tables: fixed (user, movie) feature tables (training/side_features.py). With them, every
            embedding and bias row is its own free row plus a learned projection of the row's features: the
            *training* graph. `fold_side_projections` turns it into the plain graph that is exported.
    """
    if config.kind == "svdpp":
        raise ValueError("svdpp models are built by movierec.svdpp.build_svdpp_model")
    user_in = keras.Input(shape=(), dtype="int32", name="user")
    movie_in = keras.Input(shape=(), dtype="int32", name="movie")
    per_example = config.regularization == "per_example"
    k, scale = config.n_factors, config.init_scale
    with_bias = config.kind in BIAS_KINDS  # bpmf: the bias graph, weights set from Gibbs samples
    user_vec = _embedding(n_users, k, config.l2_factors, per_example, USER_EMBEDDING, scale)(user_in)
    movie_vec = _embedding(n_movies, k, config.l2_factors, per_example, MOVIE_EMBEDDING, scale)(movie_in)
    user_b = movie_b = None
    if with_bias:
        user_b = _embedding(n_users, 1, config.l2_bias, per_example, USER_BIAS, init_scale=0.0)(user_in)
        movie_b = _embedding(n_movies, 1, config.l2_bias, per_example, MOVIE_BIAS, init_scale=0.0)(movie_in)
    if side_tables is not None:
        user_vec, user_b = _with_side_projection(side_tables[0], user_in, user_vec, user_b, config, "user")
        movie_vec, movie_b = _with_side_projection(
            side_tables[1], movie_in, movie_vec, movie_b, config, "movie"
        )

    if config.kind == "nn":
        x = layers.Concatenate(name="concat")([user_vec, movie_vec])
        x = layers.Dropout(config.dropout_input, name="dropout_input")(x)
        x = layers.Dense(config.hidden_units, activation="relu", name=HIDDEN)(x)
        x = layers.Dropout(config.dropout_hidden, name="dropout_hidden")(x)
        raw = layers.Dense(1, name=OUTPUT_DENSE)(x)
    else:
        raw = layers.Dot(axes=1, name="dot")([user_vec, movie_vec])
        if user_b is not None and movie_b is not None:
            raw = layers.Add(name="add_biases")([raw, user_b, movie_b])
    rating = RatingHead(
        rating_scale[0], rating_scale[1], global_mean, config.squash_output, config.squash_margin, name=HEAD
    )(raw)
    return keras.Model(
        inputs={"user": user_in, "movie": movie_in}, outputs=rating, name=f"movierec_{config.kind}"
    )


def side_layer_names(side: str) -> tuple[str, str, str]:
    """Names of one side's ("user" or "movie") fixed feature table and learned factor and bias projections."""
    return f"{side}_side_features", f"{side}_side_projection", f"{side}_side_bias_projection"


def _with_side_projection(
    table: NDArray[Any], index: Any, vec: Any, bias: Any, config: ModelConfig, side: str
) -> tuple[Any, Any]:
    """`vec + F W` and `bias + F w` for the looked-up rows of the fixed feature table F (W, w learned)."""
    features_name, projection_name, bias_projection_name = side_layer_names(side)
    lookup = layers.Embedding(table.shape[0], table.shape[1], trainable=False, name=features_name)
    features = lookup(index)
    lookup.set_weights([np.asarray(table, dtype="float32")])
    regularizer = keras.regularizers.L2(config.side_l2) if config.side_l2 > 0 else None

    def projection(width: int, name: str) -> Any:
        # Zero start: training begins at the plain model, a projection only grows where it lowers the loss.
        # `use_bias=False` because the tables end in a constant column. Two projections, not one sliced in
        # two: slicing made a bias epoch about twice as slow on TensorFlow CPU.
        dense = layers.Dense(
            width, use_bias=False, kernel_initializer="zeros", kernel_regularizer=regularizer, name=name
        )
        return dense(features)

    vec = layers.Add(name=f"{side}_embedding_with_side")([vec, projection(config.n_factors, projection_name)])
    if bias is not None:
        bias = layers.Add(name=f"{side}_bias_with_side")([bias, projection(1, bias_projection_name)])
    return vec, bias
