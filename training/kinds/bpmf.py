"""BPMF: Gibbs sampling (training/bpmf.py), its posterior mean delivered as a Keras `bias`-form model."""

from __future__ import annotations

import time

import pandas as pd

from training.config import TrainConfig
from training.fitted import FittedModel, Indexed, Validation
from training.kinds.base import ModelKind
from training.kinds.bias_form import bias_form_fitted
from training.side_features import side_features_for


class BpmfKind(ModelKind):
    """Bayesian biased MF; `schedule` (or `config.epochs`) only sets the number of sweeps."""

    name = "bpmf"
    scorer_family = "factor"
    step_unit = "sweeps"
    # A sampler has no epochs to choose (its settings were compared on validation slices once, see
    # training/config.py): one run on the whole train split is both selection and evaluated model.
    chooses_epochs_on_validation = False

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
        from training.bpmf import gibbs_posterior_mean

        started = time.perf_counter()
        side = side_features_for(config.model, train, movies, config.seed)
        sweeps = len(schedule) if schedule is not None else config.epochs
        m = config.model
        posterior = gibbs_posterior_mean(
            train.user_idx,
            train.movie_idx,
            train.ratings,
            len(train.users),
            len(train.movies),
            n_factors=m.n_factors,
            sweeps=sweeps,
            burn_in=min(m.burn_in, sweeps - 1),
            prior_precision=m.prior_precision,
            bias_prior_precision=m.bias_prior_precision,
            noise_precision=m.noise_precision,
            side_tables=None if side is None else (side.users, side.movies),
            side_prior_precision=m.side_l2,
            rank=m.export_rank,
            seed=config.seed,
            validation=validation,
            rating_scale=rating_scale,
            verbose=verbose,
        )
        # The served width is export_rank, or fewer when few samples were kept.
        return bias_form_fitted(
            m,
            train,
            rating_scale,
            (posterior.user_factors, posterior.movie_factors),
            (posterior.user_bias, posterior.movie_bias),
            posterior.global_mean,
            steps=sweeps,
            seconds=time.perf_counter() - started,
            history={"val_rmse": posterior.validation_rmse} if posterior.validation_rmse else {},
        )
