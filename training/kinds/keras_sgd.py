"""Kinds fitted by Keras SGD (dot, bias, nn): early stopping on validation, or a replayed schedule, then export.

The fit builds (or borrows) a training graph, with side-feature projections when the config asks for them,
trains it on whole batches, folds the projections away and exports the arrays the service scores with.
Subclasses change only how the graph is built (training/kinds/svdpp.py).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from training.config import TrainConfig
from training.distributed import active_worker
from training.fitted import FittedModel, Indexed, Validation
from training.kinds.base import ModelKind, ScorerFamily
from training.metrics import damped_baselines
from training.progress import epoch_lines
from training.side_features import SideFeatures, fold_side_projections, side_features_for

# Validation rows scored per batch during early stopping (one batch on ml-latest-small's ~8k rows).
MAX_VALIDATION_BATCH = 65_536
# The ratings the penalties of `regularization="weights"` were tuned at (ml-latest-small, training/config.py).
PENALTY_REFERENCE_RATINGS = 100_000


def size_scaled_penalties(config: TrainConfig, n_ratings: int) -> TrainConfig:
    """`config` with its whole-matrix L2 penalties scaled by `min(1, PENALTY_REFERENCE_RATINGS / n_ratings)`.

    Keras adds such a penalty once per step to a loss that is a mean over the batch, so the objective is
    `mean squared error + l2 * |W|^2` whatever the data size: a user with 100 of 25M ratings then weighs 250x less
    against the same prior than at ml-latest-small size, and the embeddings shrink to nothing (validation RMSE
    1.06 after 2 epochs of nn at ml-25m size, no better than the biases). Scaling by 1/n keeps the sum-form
    objective (`sum of squared errors + l2' * |W|^2`) the penalties were tuned for; up to the reference size
    nothing changes, so the tuned defaults hold exactly where they were chosen.
    """
    m = config.model
    scale = min(1.0, PENALTY_REFERENCE_RATINGS / max(n_ratings, 1))
    if m.regularization != "weights" or scale == 1.0:
        return config
    scaled = {name: getattr(m, name) * scale for name in ("l2_factors", "l2_bias", "side_l2", "l2_implicit")}
    return config.model_copy(update={"model": m.model_copy(update=scaled)})


class KerasSgdKind(ModelKind):
    """A Keras model of `movierec.models.build_model`, fitted by minibatch SGD (Adam by default)."""

    # Whether a later fit may borrow this kind's compiled side-feature graph (see `_restarted_graph`).
    lends_graph: ClassVar[bool] = True
    data_parallel: ClassVar[bool] = True

    def __init__(self, name: str, scorer_family: ScorerFamily) -> None:
        self.name = name
        self.scorer_family = scorer_family

    def build_graph(
        self,
        config: TrainConfig,
        train: Indexed,
        rating_scale: tuple[float, float],
        global_mean: float,
        side: SideFeatures | None,
    ) -> Any:
        """The uncompiled training graph for `train`'s id maps."""
        from movierec.models import build_model

        tables = None if side is None else (side.users, side.movies)
        return build_model(
            config.model, len(train.users), len(train.movies), rating_scale, global_mean, tables
        )

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
        started = time.perf_counter()
        config = size_scaled_penalties(config, len(train.ratings))
        side = side_features_for(config.model, train, movies, config.seed)
        keras = _keras()
        from movierec.export import export_arrays
        from movierec.models import HEAD

        keras.utils.set_random_seed(config.seed)
        mu, base_u, base_i = damped_baselines(
            train.user_idx, train.movie_idx, train.ratings, len(train.users), len(train.movies)
        )
        tables = None if side is None else (side.users, side.movies)
        model = _restarted_graph(restart, tables, config.learning_rate)
        initial_weights = None
        if model is not None:
            mu = model.get_layer(HEAD).offset  # the graph's: its head was built with the earlier fit's mean
        else:
            model = self.build_graph(config, train, rating_scale, mu, side)
            _compile(keras, model, config)
            if self.lends_graph and tables is not None:
                initial_weights = model.get_weights()
        lr_log: list[float] = []  # the learning rate in effect at each epoch, so a refit can replay it
        # Read at the epoch's end, before any later callback (ReduceLROnPlateau) changes it: at the epoch's
        # start a replay's LearningRateScheduler, which runs after this callback, has not set it yet.
        callbacks: list[Any] = [
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: lr_log.append(
                    float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
                )
            )
        ]
        fit_kwargs: dict[str, Any] = {}
        worker = active_worker()  # None unless this process is one of a data-parallel job
        if validation is not None:
            v_u, v_m, v_r = validation
            fit_kwargs["validation_data"] = ({"user": v_u, "movie": v_m}, v_r)
            if worker is not None:  # its share; the evaluation step sums the metrics over all shares
                v_u, v_m, v_r, v_w = worker.shard_validation(validation, config.seed)
                fit_kwargs["validation_data"] = ({"user": v_u, "movie": v_m}, v_r, v_w)
            # One batch where it fits: a second, smaller batch shape would trace the evaluation step again.
            fit_kwargs["validation_batch_size"] = min(len(v_r), MAX_VALIDATION_BATCH)
            callbacks.extend(_early_stopping(keras, config))
            epochs = config.epochs
        else:
            if schedule is None:
                raise ValueError("fit needs either a validation slice or a learning-rate schedule")
            epochs = len(schedule)
            callbacks.append(keras.callbacks.LearningRateScheduler(lambda epoch, lr: schedule[epoch]))
        batch_size = config.batch_size
        if worker is None:
            user_idx, movie_idx, ratings, weights = _whole_batches(train, batch_size, config.seed)
        else:  # its share of each global batch: whole global batches, then its rows of them
            batch_size = worker.per_process_batch(config.batch_size)
            padded = _whole_batches(train, batch_size * worker.num_processes, config.seed)
            user_idx, movie_idx, ratings, weights = worker.shard(padded, config.seed)
        if verbose == 2:  # a log file: lines within long epochs too (training/progress.py)
            callbacks.append(epoch_lines())
        history = model.fit(
            _inputs(user_idx, movie_idx),
            ratings,
            sample_weight=weights,
            batch_size=batch_size,
            epochs=epochs,
            shuffle=True,
            verbose=verbose,
            callbacks=callbacks,
            **fit_kwargs,
        )
        seconds = time.perf_counter() - started
        hist = {k: [float(x) for x in v] for k, v in history.history.items()}
        best_epoch = int(np.argmin(hist["val_rmse"])) + 1 if validation is not None else epochs
        exported = (
            model if side is None else fold_side_projections(model, config.model, side, rating_scale, mu)
        )
        arrays, head = export_arrays(exported, config.model)
        arrays = {**arrays, "baseline_user_bias": base_u, "baseline_movie_bias": base_i}
        return FittedModel(
            exported,
            train,
            arrays,
            head,
            best_epoch,
            lr_log[:best_epoch],
            seconds,
            hist,
            graph=model,
            initial_weights=initial_weights if restart is None else restart.initial_weights,
            scorer_family=self.scorer_family,
        )


def _keras() -> Any:
    import keras

    return keras


def _early_stopping(keras: Any, config: TrainConfig) -> list[Any]:
    """Stop when validation RMSE stalls (keeping the best weights), halving the rate on plateaus first."""
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="val_rmse", patience=config.patience, restore_best_weights=True, mode="min"
        )
    ]
    if config.lr_schedule == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_rmse", factor=config.lr_decay, patience=1, mode="min", min_lr=1e-5
            )
        )
    return callbacks


def _compile(keras: Any, model: Any, config: TrainConfig) -> None:
    model.compile(
        optimizer=_optimizer(keras, config),
        loss="mse",
        metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
    )


def _optimizer(keras: Any, config: TrainConfig) -> Any:
    """The configured optimizer: Adam (AdamW with `weight_decay`), SGD with Nesterov momentum, or Adagrad."""
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(
            learning_rate=config.learning_rate, momentum=config.adam_beta_1, nesterov=True
        )
    if config.optimizer == "adagrad":
        return keras.optimizers.Adagrad(learning_rate=config.learning_rate)
    if config.weight_decay:
        return keras.optimizers.AdamW(
            learning_rate=config.learning_rate, beta_1=config.adam_beta_1, weight_decay=config.weight_decay
        )
    return keras.optimizers.Adam(learning_rate=config.learning_rate, beta_1=config.adam_beta_1)


def _restarted_graph(
    restart: FittedModel | None, tables: tuple[NDArray[Any], NDArray[Any]] | None, learning_rate: float
) -> Any:
    """The compiled training graph of `restart`, back at its initial weights with a fresh optimizer, or None.

    Reusing it skips building and tracing a second graph (~2 s of a 13 s `bias` run). Only for side-feature
    graphs, whose exported model is a separate folded copy that the reset leaves alone, and only while the side
    tables keep their shapes (a kind that does not lend its graph, like svdpp's holding N(u), records no
    initial weights).
    """
    if restart is None or restart.initial_weights is None or tables is None:
        return None
    from movierec.models import side_layer_names

    model = restart.graph
    layers = {layer.name: layer for layer in model.layers}
    pending = []
    for side, table in zip(("user", "movie"), tables, strict=True):
        lookup = layers.get(side_layer_names(side)[0])
        if lookup is None or tuple(lookup.get_weights()[0].shape) != table.shape:
            return None
        pending.append((lookup, table))
    model.set_weights(restart.initial_weights)
    for lookup, table in pending:
        lookup.set_weights([table])
    for variable in model.optimizer.variables:  # moments, step count and learning rate
        variable.assign(np.zeros(variable.shape, variable.dtype))
    model.optimizer.learning_rate.assign(learning_rate)
    return model


def _whole_batches(
    train: Indexed, batch_size: int, seed: int
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any], NDArray[np.float32]]:
    """The training rows padded with zero-weight copies of random rows to a multiple of `batch_size`.

    Every batch then has the same shape, so the train step is traced once per fit instead of twice (a trace
    costs ~1.5 s on two cores, a tenth of a whole `bias` fit); the padding rows carry no loss.
    """
    n = len(train.ratings)
    padding = np.random.default_rng(seed).integers(0, n, (-n) % batch_size) if n else np.zeros(0, np.int64)
    weights = np.ones(n + padding.size, dtype=np.float32)
    weights[n:] = 0.0
    rows = np.concatenate([np.arange(n), padding])
    return train.user_idx[rows], train.movie_idx[rows], train.ratings[rows], weights


def _inputs(user_idx: NDArray[Any], movie_idx: NDArray[Any]) -> dict[str, NDArray[Any]]:
    return {"user": np.asarray(user_idx, dtype=np.int32), "movie": np.asarray(movie_idx, dtype=np.int32)}
