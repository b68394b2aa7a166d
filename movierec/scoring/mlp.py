"""The `mlp` family on the CPU: a ReLU layer over concatenated user and movie factors, then one output (nn)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from movierec.scoring.base import F32, I64, Scorer

_LAYER_ARRAYS = ("hidden_kernel", "hidden_bias", "output_kernel", "output_bias")


class MlpScorer(Scorer):
    """Numpy scoring of `relu([p_u, q_i] W + b) w_out + b_out`; the fold-in is gradient descent (Adam)."""

    name = "mlp"
    fold_in_is_iterative = True

    def _prepare(self, arrays: dict[str, NDArray[Any]]) -> None:
        kernel = np.asarray(arrays["hidden_kernel"], dtype=np.float32)
        k = self.user_factors.shape[1]
        self.hidden_user_kernel = np.ascontiguousarray(kernel[:k])
        # The movie half of the hidden layer does not depend on the user: precompute it once.
        self.movie_hidden = np.ascontiguousarray(
            self.movie_factors @ kernel[k:] + np.asarray(arrays["hidden_bias"], dtype=np.float32)
        )
        self.output_kernel = np.asarray(arrays["output_kernel"], dtype=np.float32)
        self.output_bias = float(np.asarray(arrays["output_bias"]).reshape(-1)[0])

    @classmethod
    def array_problems(cls, arrays: dict[str, NDArray[Any]], n_users: int, n_movies: int) -> list[str]:
        """The shared checks, then the layer's: a hidden kernel over the concatenated factors, one output."""
        problems = super().array_problems(arrays, n_users, n_movies)
        missing = [name for name in ("user_factors", *_LAYER_ARRAYS) if name not in arrays]
        if missing:
            return [*problems, f"an {cls.name!r} scorer needs {', '.join(missing)}, which scoring.npz lacks"]
        k = arrays["user_factors"].shape[1] if arrays["user_factors"].ndim == 2 else -1
        hidden = arrays["hidden_kernel"]
        if hidden.ndim != 2 or hidden.shape[0] != 2 * k:
            return [*problems, f"hidden_kernel has shape {hidden.shape}, expected ({2 * k}, units)"]
        units = hidden.shape[1]
        if arrays["hidden_bias"].shape != (units,) or arrays["output_kernel"].shape != (units,):
            problems.append(f"hidden_bias/output_kernel do not match the {units} hidden units")
        return problems

    def raw_pairs_from_vectors(self, user_vecs: F32, user_bias: F32, movie_idx: I64) -> F32:
        """Raw scores of user vectors against movies; `user_bias` is unused (the layer learns no biases)."""
        hidden = np.maximum(user_vecs @ self.hidden_user_kernel + self.movie_hidden[movie_idx], 0.0)
        return (hidden @ self.output_kernel + self.output_bias).astype(np.float32)

    def raw_catalogue(self, user_vec: F32, user_bias: float = 0.0) -> F32:
        hidden = np.maximum(self.movie_hidden + user_vec @ self.hidden_user_kernel, 0.0)
        scores: F32 = hidden @ self.output_kernel + self.output_bias
        return scores

    def fold_in(self, movie_idx: I64, ratings: F32, l2: float, steps: int = 200) -> tuple[F32, float]:
        """`steps` of Adam on a fresh user vector started at the mean user vector, with `l2` pulling it back
        to that start; the bias is 0 (the layer has none). The loss is in rating space through the head, as
        in training, because the network is not linear in the user vector.
        """
        movie_idx = np.asarray(movie_idx, dtype=np.int64)
        target = np.asarray(ratings, dtype=np.float64)
        movie_hidden = self.movie_hidden[movie_idx].astype(np.float64)
        w_user = self.hidden_user_kernel.astype(np.float64)
        w_out = self.output_kernel.astype(np.float64)
        p = self.user_factors.mean(axis=0).astype(np.float64)
        p0 = p.copy()
        lr, beta1, beta2, eps = 0.05, 0.9, 0.999, 1e-8
        m1, m2 = np.zeros_like(p), np.zeros_like(p)
        n = len(target)
        for t in range(1, steps + 1):  # a loop over optimisation steps, not over movies
            pre = p @ w_user + movie_hidden
            active = pre > 0
            raw = np.maximum(pre, 0) @ w_out + self.output_bias
            if self.head.squash:
                sig = 1.0 / (1.0 + np.exp(-(raw + self.head.logit_offset)))
                pred = self.head.low + self.head.span * sig
                dpred = self.head.span * sig * (1 - sig)
            else:
                pred, dpred = raw + self.head.offset, np.ones_like(raw)
            g = (2.0 / n) * (pred - target) * dpred
            grad = ((g[:, None] * active) * w_out) @ w_user.T
            grad = grad.sum(axis=0) + 2 * l2 / n * (p - p0)
            m1 = beta1 * m1 + (1 - beta1) * grad
            m2 = beta2 * m2 + (1 - beta2) * grad**2
            p -= lr * (m1 / (1 - beta1**t)) / (np.sqrt(m2 / (1 - beta2**t)) + eps)
        return p.astype(np.float32), 0.0
