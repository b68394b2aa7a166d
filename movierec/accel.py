"""GPU scoring through Keras 3 ops: the catalogue arrays live on the device, top-k runs there too.

Used by the service when `MOVIEREC_DEVICE` resolves to `gpu`. Works on any Keras backend (JAX, TensorFlow,
PyTorch); on a CPU-only backend it runs too, which is how the tests check it against the numpy path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from movierec.recommender import Recommender
from movierec.scoring import Scorer


class DeviceCatalogue:
    """Device-resident copies of the arrays that whole-catalogue scoring reads."""

    def __init__(self, scorer: Scorer) -> None:
        from keras import ops

        self.ops = ops
        self.kind = scorer.kind
        self.movie_factors = ops.convert_to_tensor(scorer.movie_factors)
        self.movie_bias = ops.convert_to_tensor(scorer.movie_bias)
        self.user_factors = ops.convert_to_tensor(scorer.user_factors)
        self.user_bias = ops.convert_to_tensor(scorer.user_bias)
        if scorer.kind == "nn":
            self.movie_hidden = ops.convert_to_tensor(scorer.movie_hidden)
            self.hidden_user_kernel = ops.convert_to_tensor(scorer.hidden_user_kernel)
            self.output_kernel = ops.convert_to_tensor(scorer.output_kernel)
            self.output_bias = scorer.output_bias

    def raw_scores(self, user_vecs: Any, user_bias: Any) -> Any:
        """Raw scores of a batch of user vectors (b, k) against the catalogue: (b, n_movies), on the device."""
        ops = self.ops
        if self.kind == "nn":
            pre = self.movie_hidden[None, :, :] + ops.matmul(user_vecs, self.hidden_user_kernel)[:, None, :]
            return ops.matmul(ops.relu(pre), self.output_kernel) + self.output_bias
        return (
            ops.matmul(user_vecs, ops.transpose(self.movie_factors))
            + self.movie_bias[None, :]
            + user_bias[:, None]
        )

    def raw_catalogue(self, user_vec: NDArray[np.float32], user_bias: float = 0.0) -> NDArray[np.float32]:
        ops = self.ops
        vec = ops.convert_to_tensor(np.asarray(user_vec, dtype=np.float32)[None, :])
        bias = ops.convert_to_tensor(np.array([user_bias], dtype=np.float32))
        return np.asarray(ops.convert_to_numpy(self.raw_scores(vec, bias)[0]), dtype=np.float32)

    def top_k_users(
        self, user_idx: NDArray[np.int64], k: int
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """Top-k raw scores and movie indices for a batch of known users, computed entirely on the device."""
        ops = self.ops
        idx = ops.convert_to_tensor(np.asarray(user_idx, dtype=np.int32))
        scores = self.raw_scores(
            ops.take(self.user_factors, idx, axis=0), ops.take(self.user_bias, idx, axis=0)
        )
        values, indices = ops.top_k(scores, k=k)
        return np.asarray(ops.convert_to_numpy(values)), np.asarray(
            ops.convert_to_numpy(indices), dtype=np.int64
        )


def use_device_scoring(recommender: Recommender) -> DeviceCatalogue:
    """Route the recommender's whole-catalogue scoring through the device; returns the device arrays."""
    device = DeviceCatalogue(recommender.scorer)
    recommender.scorer.raw_catalogue = device.raw_catalogue  # type: ignore[method-assign]
    return device
