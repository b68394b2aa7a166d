"""The rating head shared by the Keras models and the served scorers: raw score -> rating.

`head_logit_offset` is the one place the sigmoid's logit offset is computed: the Keras `RatingHead` layer and the
served `Head` both call it, so serving reproduces the trained model's predictions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]

# Keeps logits finite when fold-in ratings sit at the ends of the scale.
_FOLD_IN_CLAMP = 0.02


def head_logit_offset(min_rating: float, max_rating: float, offset: float) -> float:
    """Logit of the global mean's position inside the sigmoid's range (clamped away from 0 and 1).

    `min_rating`/`max_rating` are the ends of the sigmoid's range (the rating scale widened by the margin).
    """
    p = (offset - min_rating) / (max_rating - min_rating)
    p = min(max(p, 1e-3), 1 - 1e-3)
    return math.log(p / (1 - p))


@dataclass(frozen=True)
class Head:
    """The rating head: `offset + raw`, or `low + span * sigmoid(raw + logit_offset)`, clipped to the scale.

    The sigmoid spans [low, high] = [min - margin, max + margin] (see `movierec.models.RatingHead`).
    """

    min_rating: float
    max_rating: float
    offset: float
    squash: bool
    margin: float = 0.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Head:
        return cls(
            float(data["min_rating"]),
            float(data["max_rating"]),
            float(data["offset"]),
            bool(data["squash"]),
            float(data.get("margin", 0.0)),
        )

    @cached_property
    def low(self) -> float:
        return self.min_rating - self.margin

    @cached_property
    def span(self) -> float:
        """Width of the sigmoid's range."""
        return self.max_rating - self.min_rating + 2 * self.margin

    @cached_property
    def logit_offset(self) -> float:
        # The same call as the Keras RatingHead's, so both compute the identical float.
        return head_logit_offset(self.min_rating - self.margin, self.max_rating + self.margin, self.offset)

    def apply(self, raw: NDArray[Any]) -> F32:
        """Ratings from raw scores, always inside the rating scale."""
        raw = np.asarray(raw, dtype=np.float32)
        if self.squash:
            # Clipping the logit keeps np.exp finite; sigmoid(+-50) is already 0 or 1 in float32.
            logits = np.minimum(np.maximum(raw + self.logit_offset, -50.0), 50.0)
            out = self.low + self.span / (1.0 + np.exp(-logits))
        else:
            out = raw + self.offset
        # minimum/maximum rather than np.clip: the same result at a fraction of the per-call overhead.
        return np.minimum(np.maximum(out, self.min_rating), self.max_rating).astype(np.float32)

    def invert(self, ratings: NDArray[Any]) -> F32:
        """Raw scores that would produce `ratings` (clamped inside the open range when squashing)."""
        ratings = np.asarray(ratings, dtype=np.float64)
        if not self.squash:
            return (ratings - self.offset).astype(np.float32)
        p = np.clip((ratings - self.low) / self.span, _FOLD_IN_CLAMP, 1 - _FOLD_IN_CLAMP)
        return (np.log(p / (1 - p)) - self.logit_offset).astype(np.float32)
