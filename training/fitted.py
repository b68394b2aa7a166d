"""What every model kind fits on and hands back: indexed ratings in, a fitted model with its scoring arrays out.

A module of its own so that the kinds (training/kinds/) and the run (training/pipeline.py) share these types
without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from movierec.ids import IdMap
from movierec.scoring import Head, Scorer, build_scorer

# (user_idx, movie_idx, ratings) of the validation slice that early stopping watches.
Validation = tuple[NDArray[Any], NDArray[Any], NDArray[Any]]


@dataclass
class Indexed:
    """Ratings mapped to contiguous indices under one pair of id maps."""

    users: IdMap
    movies: IdMap
    user_idx: NDArray[np.int32]
    movie_idx: NDArray[np.int32]
    ratings: NDArray[np.float32]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Indexed:
        users = IdMap.from_values(frame["user_id"].to_numpy())
        movies = IdMap.from_values(frame["movie_id"].to_numpy())
        return cls(
            users,
            movies,
            users.index_of(frame["user_id"].to_numpy()).astype(np.int32),
            movies.index_of(frame["movie_id"].to_numpy()).astype(np.int32),
            frame["rating"].to_numpy(np.float32),
        )


@dataclass
class FittedModel:
    """A trained Keras model with the arrays the service scores with."""

    model: Any
    indexed: Indexed
    arrays: dict[str, NDArray[Any]]
    head: dict[str, Any]
    epochs: int
    learning_rates: list[float]
    seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)
    # The compiled training graph and its weights before training, for `fit(..., restart=...)`.
    graph: Any = None
    initial_weights: list[NDArray[Any]] | None = None
    # Which scorer family serves the arrays ("factor" or "mlp"), as the kind that fitted them declares.
    scorer_family: str = field(kw_only=True)

    def scorer(self) -> Scorer:
        """The service's scorer over these arrays, so evaluation scores exactly as serving will."""
        return build_scorer(
            self.scorer_family,
            self.arrays,
            Head.from_dict(self.head),
            self.arrays["baseline_user_bias"],
            self.arrays["baseline_movie_bias"],
        )

    @property
    def model_kind(self) -> str:
        return str(self.model.name.removeprefix("movierec_"))
