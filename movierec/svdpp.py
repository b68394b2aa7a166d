"""SVD++ (Koren 2008) as a Keras model: biased matrix factorisation plus implicit feedback.

The user vector is `p_u + |N(u)|^-1/2 * sum_{j in N(u)} y_j`, where N(u) is the set of movies the user rated in
the training data: *which* movies a user chose to rate says something about their taste, whatever the rating.

N(u) is fixed at build time and stored inside the model (non-trainable int/float weights of `ImplicitFeedback`), so
the model keeps the `{"user": idx, "movie": idx}` inputs of the other kinds and saves as one `model.keras` that
`keras.saving.load_model` reads with no extra arguments. Only `keras.ops` are used (gather and segment sum), so it
runs on the JAX backend too.

For serving, `movierec.export` folds the implicit term into the exported user factors once; the service then scores
an svdpp model exactly like a bias model (dot product plus biases through the rating head).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import layers, ops
from numpy.typing import NDArray

from movierec.models import (
    HEAD,
    MOVIE_BIAS,
    MOVIE_EMBEDDING,
    USER_BIAS,
    USER_EMBEDDING,
    ModelConfig,
    RatingHead,
    _embedding,
)

IMPLICIT = "implicit_feedback"


@keras.saving.register_keras_serializable(package="movierec")
class ImplicitFeedback(layers.Layer):
    """Maps user indices to `|N(u)|^-1/2 * sum_{j in N(u)} y_j`, with N(u) stored as (user, movie) pairs.

    Every call computes the implicit vector of *all* users with one gather and one segment sum over the stored
    pairs (cheap: one pass over the training ratings), then gathers the batch's users. Gradients flow to `y_j`
    of every movie rated by any user, as in SVD++'s per-user update.

    Args:
        n_users: number of users (segments).
        n_movies: rows of the implicit factor matrix `y`.
        n_pairs: number of stored (user, movie) pairs.
        n_factors: width of `y`, equal to the explicit factors'.
        l2: L2 penalty on the whole `y` matrix (a Keras weight regulariser).
        init_scale: standard deviation of `y`'s normal initialiser.
    """

    def __init__(
        self,
        n_users: int,
        n_movies: int,
        n_pairs: int,
        n_factors: int,
        l2: float = 0.0,
        init_scale: float = 0.01,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.n_users = int(n_users)
        self.n_movies = int(n_movies)
        self.n_pairs = int(n_pairs)
        self.n_factors = int(n_factors)
        self.l2 = float(l2)
        self.init_scale = float(init_scale)

    def build(self, input_shape: Any) -> None:
        self.implicit_factors = self.add_weight(
            shape=(self.n_movies, self.n_factors),
            initializer=keras.initializers.RandomNormal(stddev=self.init_scale),
            regularizer=keras.regularizers.L2(self.l2) if self.l2 > 0 else None,
            name="implicit_factors",
        )
        self.pair_users = self.add_weight(
            shape=(self.n_pairs,), initializer="zeros", dtype="int32", trainable=False, name="pair_users"
        )
        self.pair_movies = self.add_weight(
            shape=(self.n_pairs,), initializer="zeros", dtype="int32", trainable=False, name="pair_movies"
        )
        self.pair_weights = self.add_weight(
            shape=(self.n_pairs,), initializer="zeros", trainable=False, name="pair_weights"
        )
        super().build(input_shape)

    def set_pairs(self, user_idx: NDArray[Any], movie_idx: NDArray[Any]) -> None:
        """Store N(u) from the (user, movie) index pairs of the training ratings."""
        user_idx = np.asarray(user_idx, dtype=np.int32)
        movie_idx = np.asarray(movie_idx, dtype=np.int32)
        if user_idx.shape != (self.n_pairs,) or movie_idx.shape != (self.n_pairs,):
            raise ValueError(f"expected {self.n_pairs} (user, movie) pairs, got {user_idx.shape[0]}")
        weights = implicit_weights(user_idx, self.n_users)
        self.pair_users.assign(user_idx)
        self.pair_movies.assign(movie_idx)
        self.pair_weights.assign(weights)

    def all_users(self) -> Any:
        """The implicit vector of every user, (n_users, n_factors)."""
        rows = ops.take(self.implicit_factors, self.pair_movies, axis=0)
        rows = rows * ops.expand_dims(self.pair_weights, -1)
        return ops.segment_sum(rows, self.pair_users, num_segments=self.n_users)

    def call(self, user_idx: Any) -> Any:
        return ops.take(self.all_users(), ops.cast(user_idx, "int32"), axis=0)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return (*tuple(input_shape), self.n_factors)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            n_users=self.n_users,
            n_movies=self.n_movies,
            n_pairs=self.n_pairs,
            n_factors=self.n_factors,
            l2=self.l2,
            init_scale=self.init_scale,
        )
        return config


def implicit_weights(user_idx: NDArray[Any], n_users: int) -> NDArray[np.float32]:
    """`|N(u)|^-1/2` of each pair's user."""
    counts = np.bincount(user_idx, minlength=n_users).astype(np.float64)
    return (1.0 / np.sqrt(np.maximum(counts, 1.0)))[user_idx].astype(np.float32)


def implicit_user_factors(
    implicit_factors: NDArray[Any], pair_users: NDArray[Any], pair_movies: NDArray[Any], n_users: int
) -> NDArray[np.float32]:
    """Numpy twin of `ImplicitFeedback.all_users`: `|N(u)|^-1/2 * sum_{j in N(u)} y_j` for every user."""
    pair_users = np.asarray(pair_users, dtype=np.int64)
    weights = implicit_weights(pair_users, n_users).astype(np.float64)
    rows = np.asarray(implicit_factors, dtype=np.float64)[np.asarray(pair_movies, dtype=np.int64)]
    out = np.zeros((n_users, rows.shape[1]), dtype=np.float64)
    np.add.at(out, pair_users, rows * weights[:, None])
    return out.astype(np.float32)


def build_svdpp_model(
    config: ModelConfig,
    n_users: int,
    n_movies: int,
    rating_scale: tuple[float, float],
    global_mean: float,
    rated_user_idx: NDArray[Any],
    rated_movie_idx: NDArray[Any],
) -> keras.Model:
    """Build an uncompiled SVD++ model taking `{"user": idx, "movie": idx}` int inputs.

    Args:
        config: architecture hyper-parameters (`l2_implicit` regularises the implicit factors).
        n_users: rows of the user embedding.
        n_movies: rows of the movie embeddings.
        rating_scale: (min, max) ratings, the range the head squashes into.
        global_mean: mean training rating, the prediction for a raw score of 0.
        rated_user_idx, rated_movie_idx: the training ratings' index pairs; they define N(u).
    """
    user_in = keras.Input(shape=(), dtype="int32", name="user")
    movie_in = keras.Input(shape=(), dtype="int32", name="movie")
    per_example = config.regularization == "per_example"
    k = config.n_factors
    user_vec = _embedding(n_users, k, config.l2_factors, per_example, USER_EMBEDDING, config.init_scale)(
        user_in
    )
    movie_vec = _embedding(n_movies, k, config.l2_factors, per_example, MOVIE_EMBEDDING, config.init_scale)(
        movie_in
    )
    implicit = ImplicitFeedback(
        n_users, n_movies, len(rated_user_idx), k, config.l2_implicit, config.init_scale, name=IMPLICIT
    )
    user_total = layers.Add(name="user_total")([user_vec, implicit(user_in)])
    raw = layers.Dot(axes=1, name="dot")([user_total, movie_vec])
    user_b = _embedding(n_users, 1, config.l2_bias, per_example, USER_BIAS, init_scale=0.0)(user_in)
    movie_b = _embedding(n_movies, 1, config.l2_bias, per_example, MOVIE_BIAS, init_scale=0.0)(movie_in)
    raw = layers.Add(name="add_biases")([raw, user_b, movie_b])
    rating = RatingHead(
        rating_scale[0], rating_scale[1], global_mean, config.squash_output, config.squash_margin, name=HEAD
    )(raw)
    model = keras.Model(inputs={"user": user_in, "movie": movie_in}, outputs=rating, name="movierec_svdpp")
    implicit.set_pairs(rated_user_idx, rated_movie_idx)
    return model
