"""BPMF: Gibbs sampling (training/bpmf.py), its posterior mean delivered as a Keras `bias`-form model."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from training.config import TrainConfig
from training.fitted import FittedModel, Indexed, Validation
from training.kinds.base import ModelKind
from training.metrics import damped_baselines
from training.side_features import side_features_for


class BpmfKind(ModelKind):
    """Bayesian biased MF; `schedule` (or `config.epochs`) only sets the number of sweeps."""

    name = "bpmf"
    scorer_family = "factor"
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
        from movierec.export import export_arrays
        from movierec.models import MOVIE_BIAS, MOVIE_EMBEDDING, USER_BIAS, USER_EMBEDDING, build_model
        from training.bpmf import gibbs_posterior_mean

        started = time.perf_counter()
        side = side_features_for(config.model, train, movies, config.seed)
        sweeps = len(schedule) if schedule is not None else config.epochs
        m = config.model
        _, base_u, base_i = damped_baselines(
            train.user_idx, train.movie_idx, train.ratings, len(train.users), len(train.movies)
        )
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
        width = posterior.user_factors.shape[1]  # export_rank, or fewer when few samples were kept
        model = build_model(
            m.model_copy(update={"n_factors": width}),
            len(train.users),
            len(train.movies),
            rating_scale,
            posterior.global_mean,
        )
        weights = {
            USER_EMBEDDING: posterior.user_factors,
            MOVIE_EMBEDDING: posterior.movie_factors,
            USER_BIAS: posterior.user_bias[:, None],
            MOVIE_BIAS: posterior.movie_bias[:, None],
        }
        for name, value in weights.items():
            model.get_layer(name).set_weights([value.astype(np.float32)])
        arrays, head = export_arrays(model, m)
        arrays = {**arrays, "baseline_user_bias": base_u, "baseline_movie_bias": base_i}
        history = {"val_rmse": posterior.validation_rmse} if posterior.validation_rmse else {}
        # No learning rate: one entry per sweep, so a refit replays the same number of sweeps.
        return FittedModel(
            model,
            train,
            arrays,
            head,
            sweeps,
            [0.0] * sweeps,
            time.perf_counter() - started,
            history,
            scorer_family=self.scorer_family,
        )
