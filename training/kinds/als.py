"""`bias` fitted by alternating least squares (training/als.py): `--solver als`, for ml-25m-size data."""

from __future__ import annotations

import time

import pandas as pd

from training.config import TrainConfig
from training.fitted import FittedModel, Indexed, Validation
from training.kinds.base import ModelKind
from training.kinds.bias_form import bias_form_fitted
from training.side_features import side_features_for


class AlsKind(ModelKind):
    """The `bias` model's form with closed-form sweeps; early stopping chooses the sweep count on validation."""

    scorer_family = "factor"
    step_unit = "sweeps"

    def __init__(self, name: str) -> None:
        self.name = name

    def fit(
        self,
        config: TrainConfig,
        train: Indexed,
        rating_scale: tuple[float, float],
        *,
        validation: Validation | None,
        schedule: list[float] | None,
        movies: pd.DataFrame | None,
        restart: FittedModel | None,
        verbose: int,
    ) -> FittedModel:
        from training.als import alternating_least_squares

        started = time.perf_counter()
        if validation is None and schedule is None:
            raise ValueError("fit needs either a validation slice or a sweep count to replay")
        side = side_features_for(config.model, train, movies, config.seed)
        m = config.model
        solved = alternating_least_squares(
            train.user_idx,
            train.movie_idx,
            train.ratings,
            len(train.users),
            len(train.movies),
            n_factors=m.n_factors,
            max_sweeps=config.epochs if schedule is None else len(schedule),
            prior_precision=m.prior_precision,
            bias_prior_precision=m.bias_prior_precision,
            seed=config.seed,
            side_tables=None if side is None else (side.users, side.movies),
            side_prior_precision=m.side_l2,
            validation=validation if schedule is None else None,
            patience=config.patience,
            rating_scale=rating_scale,
            verbose=verbose,
        )
        return bias_form_fitted(
            m,
            train,
            rating_scale,
            (solved.user_factors, solved.movie_factors),
            (solved.user_bias, solved.movie_bias),
            solved.global_mean,
            steps=solved.sweeps,
            seconds=time.perf_counter() - started,
            history={"val_rmse": solved.validation_rmse} if solved.validation_rmse else {},
        )
