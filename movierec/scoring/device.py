"""Device scorers: whole-catalogue scoring and batch top-k through Keras 3 ops, the arrays resident on the device.

Chosen by `build_scorer(..., device="gpu")` when `MOVIEREC_DEVICE` resolves to `gpu`. Works on any Keras backend
(JAX, TensorFlow, PyTorch); on a CPU-only backend it runs too, which is how the tests check it against the
numpy scorers. Keras is imported inside the constructors (and this module only by `build_scorer` on request),
so a CPU deployment never loads a framework. Pair scoring, fallbacks and fold-in stay on the numpy path they
inherit: they touch a few rows, not the catalogue.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np
from numpy.typing import NDArray

from movierec.scoring.base import F32, I64
from movierec.scoring.factor import FactorScorer
from movierec.scoring.mlp import MlpScorer


class _OnDevice:
    """Shared by the device scorers: device copies of the user side, catalogue scoring and batch top-k."""

    user_factors: F32
    user_bias: F32

    def _to_device(self) -> Any:
        """Import keras.ops, copy the user side to the device; returns ops for the family's own arrays."""
        from keras import ops

        self._ops = ops
        self._user_factors_dev = ops.convert_to_tensor(self.user_factors)
        self._user_bias_dev = ops.convert_to_tensor(self.user_bias)
        return ops

    @abstractmethod
    def raw_scores(self, user_vecs: Any, user_bias: Any) -> Any:
        """Raw scores of a batch of user vectors (b, k) against the catalogue: (b, n_movies), on the device."""

    def raw_catalogue(self, user_vec: F32, user_bias: float = 0.0) -> F32:
        ops = self._ops
        vec = ops.convert_to_tensor(np.asarray(user_vec, dtype=np.float32)[None, :])
        bias = ops.convert_to_tensor(np.array([user_bias], dtype=np.float32))
        # convert_to_numpy copies, so the caller may write to the result like the numpy path's.
        return np.asarray(ops.convert_to_numpy(self.raw_scores(vec, bias)[0]), dtype=np.float32)

    def raw_catalogue_block(self, user_vecs: F32, user_bias: F32) -> F32:
        ops = self._ops
        vecs = ops.convert_to_tensor(np.asarray(user_vecs, dtype=np.float32))
        bias = ops.convert_to_tensor(np.asarray(user_bias, dtype=np.float32))
        return np.asarray(ops.convert_to_numpy(self.raw_scores(vecs, bias)), dtype=np.float32)

    def top_k_users(self, user_idx: I64, k: int) -> tuple[F32, I64]:
        """Top-k raw scores and movie indices for a batch of known users, computed entirely on the device."""
        ops = self._ops
        idx = ops.convert_to_tensor(np.asarray(user_idx, dtype=np.int32))
        scores = self.raw_scores(
            ops.take(self._user_factors_dev, idx, axis=0), ops.take(self._user_bias_dev, idx, axis=0)
        )
        values, indices = ops.top_k(scores, k=k)
        return np.asarray(ops.convert_to_numpy(values)), np.asarray(
            ops.convert_to_numpy(indices), dtype=np.int64
        )


class DeviceFactorScorer(_OnDevice, FactorScorer):
    """The `factor` family with catalogue scoring on the device."""

    def _prepare(self, arrays: dict[str, NDArray[Any]]) -> None:
        super()._prepare(arrays)
        ops = self._to_device()
        self._movie_factors_dev = ops.convert_to_tensor(self.movie_factors)
        self._movie_bias_dev = ops.convert_to_tensor(self.movie_bias)

    def raw_scores(self, user_vecs: Any, user_bias: Any) -> Any:
        ops = self._ops
        return (
            ops.matmul(user_vecs, ops.transpose(self._movie_factors_dev))
            + self._movie_bias_dev[None, :]
            + user_bias[:, None]
        )


class DeviceMlpScorer(_OnDevice, MlpScorer):
    """The `mlp` family with catalogue scoring on the device."""

    def _prepare(self, arrays: dict[str, NDArray[Any]]) -> None:
        super()._prepare(arrays)
        ops = self._to_device()
        self._movie_hidden_dev = ops.convert_to_tensor(self.movie_hidden)
        self._hidden_user_kernel_dev = ops.convert_to_tensor(self.hidden_user_kernel)
        self._output_kernel_dev = ops.convert_to_tensor(self.output_kernel)

    def raw_scores(self, user_vecs: Any, user_bias: Any) -> Any:
        ops = self._ops
        pre = (
            self._movie_hidden_dev[None, :, :]
            + ops.matmul(user_vecs, self._hidden_user_kernel_dev)[:, None, :]
        )
        return ops.matmul(ops.relu(pre), self._output_kernel_dev) + self.output_bias
