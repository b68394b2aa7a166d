"""One training run: split, fit with early stopping on a validation slice, evaluate on held-out, refit, save."""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from movierec import __version__
from movierec.artifacts import (
    CATALOGUE_COLUMNS,
    CATALOGUE_FILE,
    MODEL_FILE,
    MOVIE_IDS_FILE,
    SCHEMA_VERSION,
    SCORING_FILE,
    USER_IDS_FILE,
    USER_RATINGS_FILE,
    Manifest,
    UserRatings,
    write_bundle,
)
from movierec.data import RatingsData, file_sha256
from movierec.ids import IdMap
from movierec.scoring import Head, Scorer
from movierec.split import split_mask
from training.config import TrainConfig
from training.metrics import damped_baselines, mae, rmse
from training.side_features import SideFeatures, build_side_features, fold_side_projections

log = logging.getLogger(__name__)

# Validation rows scored per batch during early stopping (one batch on ml-latest-small's ~8k rows).
MAX_VALIDATION_BATCH = 65_536


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

    def scorer(self) -> Scorer:
        return Scorer(
            self.model_kind,
            self.arrays,
            Head.from_dict(self.head),
            self.arrays["baseline_user_bias"],
            self.arrays["baseline_movie_bias"],
        )

    @property
    def model_kind(self) -> str:
        return str(self.model.name.removeprefix("movierec_"))


@dataclass
class TrainResult:
    """What a run produced: the artifact path and the report figures."""

    run_dir: Path
    manifest: Manifest
    selection_model: FittedModel  # fitted on train minus the validation slice, for early stopping
    eval_model: FittedModel  # fitted on the whole train split with the chosen schedule; scored on held-out
    final_model: FittedModel


class _LearningRateLog:
    """Collects the learning rate in effect at each epoch so a refit can replay the schedule."""

    def __init__(self) -> None:
        self.rates: list[float] = []


def _keras() -> Any:
    import keras

    return keras


def fit(
    config: TrainConfig,
    train: Indexed,
    rating_scale: tuple[float, float],
    *,
    validation: tuple[NDArray[Any], NDArray[Any], NDArray[Any]] | None,
    schedule: list[float] | None = None,
    movies: pd.DataFrame | None = None,
    restart: FittedModel | None = None,
    verbose: int = 1,
) -> FittedModel:
    """Fit a model of `config.model.kind` on `train`.

    With `validation` (user_idx, movie_idx, ratings) the number of epochs and the learning-rate drops are chosen
    by early stopping on it; with `schedule` the given per-epoch learning rates are replayed (the refit).
    `movies` (the catalogue) feeds the genre and year side features of kinds with `side_features`.
    `restart`, an earlier fit under the same id maps, lends its compiled graph (reset to its initial weights).
    """
    started = time.perf_counter()
    side = _side_features(config, train, movies)
    if config.model.kind == "bpmf":
        sweeps = len(schedule) if schedule is not None else config.epochs
        return _fit_bpmf(config, train, rating_scale, validation, sweeps, side, started)
    keras = _keras()
    from movierec.export import export_arrays
    from movierec.models import HEAD, build_model

    keras.utils.set_random_seed(config.seed)
    mu, base_u, base_i = damped_baselines(
        train.user_idx, train.movie_idx, train.ratings, len(train.users), len(train.movies)
    )
    tables = None if side is None else (side.users, side.movies)
    model = _restarted_graph(restart, tables, config.learning_rate)
    initial_weights = None
    if model is not None:
        mu = model.get_layer(HEAD).offset  # the graph's: its head was built with the earlier fit's mean
    elif config.model.kind == "svdpp":
        from movierec.svdpp import build_svdpp_model

        # N(u) is the fit data's rated movies: validation and held-out ratings stay unseen, implicitly too.
        model = build_svdpp_model(
            config.model,
            len(train.users),
            len(train.movies),
            rating_scale,
            mu,
            train.user_idx,
            train.movie_idx,
        )
        _compile(keras, model, config)
    else:
        model = build_model(config.model, len(train.users), len(train.movies), rating_scale, mu, tables)
        _compile(keras, model, config)
        if tables is not None:
            initial_weights = model.get_weights()
    lr_log = _LearningRateLog()
    callbacks: list[Any] = [
        keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda epoch, logs: lr_log.rates.append(
                float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
            )
        )
    ]
    fit_kwargs: dict[str, Any] = {}
    if validation is not None:
        v_u, v_m, v_r = validation
        fit_kwargs["validation_data"] = ({"user": v_u, "movie": v_m}, v_r)
        # One batch where it fits: a second, smaller batch shape would trace the evaluation step again.
        fit_kwargs["validation_batch_size"] = min(len(v_r), MAX_VALIDATION_BATCH)
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_rmse", patience=config.patience, restore_best_weights=True, mode="min"
            )
        )
        if config.lr_schedule == "plateau":
            callbacks.append(
                keras.callbacks.ReduceLROnPlateau(
                    monitor="val_rmse", factor=config.lr_decay, patience=1, mode="min", min_lr=1e-5
                )
            )
        epochs = config.epochs
    else:
        if schedule is None:
            raise ValueError("fit needs either a validation slice or a learning-rate schedule")
        epochs = len(schedule)
        callbacks.append(keras.callbacks.LearningRateScheduler(lambda epoch, lr: schedule[epoch]))
    user_idx, movie_idx, ratings, weights = _whole_batches(train, config.batch_size, config.seed)
    history = model.fit(
        _inputs(user_idx, movie_idx),
        ratings,
        sample_weight=weights,
        batch_size=config.batch_size,
        epochs=epochs,
        shuffle=True,
        verbose=verbose,
        callbacks=callbacks,
        **fit_kwargs,
    )
    seconds = time.perf_counter() - started
    hist = {k: [float(x) for x in v] for k, v in history.history.items()}
    if validation is not None:
        best_epoch = int(np.argmin(hist["val_rmse"])) + 1
    else:
        best_epoch = epochs
    exported = model if side is None else fold_side_projections(model, config.model, side, rating_scale, mu)
    arrays, head = export_arrays(exported, config.model)
    arrays = {**arrays, "baseline_user_bias": base_u, "baseline_movie_bias": base_i}
    return FittedModel(
        exported,
        train,
        arrays,
        head,
        best_epoch,
        lr_log.rates[:best_epoch],
        seconds,
        hist,
        graph=model,
        initial_weights=initial_weights if restart is None else restart.initial_weights,
    )


def _fit_bpmf(
    config: TrainConfig,
    train: Indexed,
    rating_scale: tuple[float, float],
    validation: tuple[NDArray[Any], NDArray[Any], NDArray[Any]] | None,
    sweeps: int,
    side: SideFeatures | None,
    started: float,
) -> FittedModel:
    """Gibbs-sample a Bayesian biased MF (training/bpmf.py) and put its posterior mean into a Keras bias model."""
    from movierec.export import export_arrays
    from movierec.models import MOVIE_BIAS, MOVIE_EMBEDDING, USER_BIAS, USER_EMBEDDING, build_model
    from training.bpmf import gibbs_posterior_mean

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
        model, train, arrays, head, sweeps, [0.0] * sweeps, time.perf_counter() - started, history
    )


def _side_features(config: TrainConfig, train: Indexed, movies: pd.DataFrame | None) -> SideFeatures | None:
    """The side-feature tables of `train`'s id maps, from `train`'s own ratings (None without side features)."""
    if not config.model.side_features:
        return None
    return build_side_features(
        train.user_idx,
        train.movie_idx,
        len(train.users),
        train.movies.ids,
        movies,
        implicit_dim=config.model.implicit_dim,
        seed=config.seed,
    )


def _compile(keras: Any, model: Any, config: TrainConfig) -> None:
    model.compile(
        optimizer=_optimizer(keras, config),
        loss="mse",
        metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
    )


def _restarted_graph(
    restart: FittedModel | None, tables: tuple[NDArray[Any], NDArray[Any]] | None, learning_rate: float
) -> Any:
    """The compiled training graph of `restart`, back at its initial weights with a fresh optimizer, or None.

    Reusing it skips building and tracing a second graph (~2 s of a 13 s `bias` run). Only for side-feature
    graphs, whose exported model is a separate folded copy that the reset leaves alone, and only while the side
    tables keep their shapes (svdpp's graph, which holds N(u), is never lent).
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


def evaluate(fitted: FittedModel, heldout: pd.DataFrame) -> dict[str, Any]:
    """Held-out RMSE/MAE through the same scoring path the service uses; unseen ids get the fallback."""
    u_idx = fitted.indexed.users.index_of(heldout["user_id"].to_numpy())
    m_idx = fitted.indexed.movies.index_of(heldout["movie_id"].to_numpy())
    predicted, fallback = fitted.scorer().predict(u_idx, m_idx)
    actual = heldout["rating"].to_numpy(np.float32)
    return {
        "rmse": rmse(predicted, actual),
        "mae": mae(predicted, actual),
        "n_heldout": len(heldout),
        "n_fallback": int(fallback.sum()),
        "n_unseen_users": int((u_idx < 0).sum()),
        "n_unseen_movies": int((m_idx < 0).sum()),
    }


def catalogue_frame(indexed: Indexed, movies: pd.DataFrame) -> pd.DataFrame:
    """The service's catalogue in movie-index order: metadata plus rating count and mean from the fit data."""
    n = len(indexed.movies)
    counts = np.bincount(indexed.movie_idx, minlength=n)
    sums = np.bincount(indexed.movie_idx, indexed.ratings.astype(np.float64), minlength=n)
    frame = pd.DataFrame({"movie_id": indexed.movies.ids})
    meta = movies.drop_duplicates("movie_id").set_index("movie_id")
    frame["title"] = frame["movie_id"].map(meta["title"]).fillna("").astype(str)
    frame["genres"] = frame["movie_id"].map(meta["genres"]).fillna("(no genres listed)").astype(str)
    frame["n_ratings"] = counts.astype(np.int64)
    frame["mean_rating"] = np.round(sums / np.maximum(counts, 1), 4)
    return frame[CATALOGUE_COLUMNS]


def _write_files(fitted: FittedModel, served: Indexed, movies: pd.DataFrame) -> Callable[[Path], None]:
    """Writer of every artifact file; `served` are the ratings whose counts and rated lists the service uses."""

    def write(directory: Path) -> None:
        indexed = served
        fitted.model.save(directory / MODEL_FILE)
        np.savez(directory / SCORING_FILE, **fitted.arrays)  # type: ignore[arg-type]
        indexed.users.save(directory / USER_IDS_FILE)
        indexed.movies.save(directory / MOVIE_IDS_FILE)
        catalogue_frame(indexed, movies).to_csv(directory / CATALOGUE_FILE, index=False)
        ur = UserRatings.from_pairs(indexed.user_idx, indexed.movie_idx, indexed.ratings, len(indexed.users))
        np.savez(directory / USER_RATINGS_FILE, indptr=ur.indptr, indices=ur.indices, ratings=ur.ratings)

    return write


def library_versions() -> dict[str, str]:
    keras = _keras()
    versions = {
        "movierec": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
    }
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    return versions


def new_run_id(kind: str, fingerprint: str, output_dir: Path) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{kind}-{fingerprint[:8]}"
    run_id, n = base, 1
    while (output_dir / run_id).exists():
        n += 1
        run_id = f"{base}-{n}"
    return run_id


def carve_validation(
    train_all: Indexed, config: TrainConfig
) -> tuple[Indexed, tuple[NDArray[Any], NDArray[Any], NDArray[Any]]]:
    """Split train into the fit part and the validation slice that early stopping and the schedule use.

    Held-out rows never take part: they are read once, for the report.
    """
    is_val = (
        np.random.default_rng(config.seed + 1).random(len(train_all.ratings)) < config.validation_fraction
    )
    fit_part = Indexed(
        train_all.users,
        train_all.movies,
        train_all.user_idx[~is_val],
        train_all.movie_idx[~is_val],
        train_all.ratings[~is_val],
    )
    return fit_part, (train_all.user_idx[is_val], train_all.movie_idx[is_val], train_all.ratings[is_val])


def select_and_fit(
    config: TrainConfig,
    train_all: Indexed,
    rating_scale: tuple[float, float],
    *,
    movies: pd.DataFrame | None = None,
    verbose: int = 1,
) -> tuple[FittedModel, FittedModel]:
    """(selection, model): epochs and learning-rate drops chosen by early stopping on a validation slice of
    `train_all`, then a model fitted on all of `train_all` with that schedule.

    The second is the one scored on held-out ratings: like the reference systems it learns from the whole train
    split, while everything about it was chosen without the held-out rows.
    """
    if config.model.kind == "bpmf":
        # A sampler has no epochs to choose (its settings were compared on validation slices once, see
        # training/config.py): one run on the whole train split is both.
        model = fit(config, train_all, rating_scale, validation=None, movies=movies, verbose=verbose)
        return model, model
    fit_part, validation = carve_validation(train_all, config)
    selection = fit(config, fit_part, rating_scale, validation=validation, movies=movies, verbose=verbose)
    model = fit(
        config,
        train_all,
        rating_scale,
        validation=None,
        schedule=selection.learning_rates,
        movies=movies,
        restart=selection,
        verbose=verbose,
    )
    return selection, model


def train_run(
    data: RatingsData,
    config: TrainConfig,
    output_dir: Path,
    *,
    verbose: int = 1,
    update_latest: bool = True,
) -> TrainResult:
    """Run the whole pipeline and write the artifact. Nothing under `output_dir` changes unless it all succeeds."""
    ratings = data.ratings
    train_mask = split_mask(ratings, config.split, config.seed, config.train_fraction)
    train_rows, heldout = ratings[train_mask], ratings[~train_mask]
    train_all = Indexed.from_frame(train_rows)
    log.info("fitting %s on %d train ratings", config.model.kind, len(train_all.ratings))
    selection, eval_model = select_and_fit(
        config, train_all, data.rating_scale, movies=data.movies, verbose=verbose
    )
    metrics = evaluate(eval_model, heldout)
    selection_seconds = 0.0 if selection is eval_model else selection.seconds
    metrics.update(
        split=config.split,
        seed=config.seed,
        epochs=selection.epochs,
        selection_seconds=round(selection_seconds, 3),
        train_seconds=round(selection_seconds + eval_model.seconds, 3),
        validation_rmse=float(min(selection.history.get("val_rmse", [float("nan")]))),
    )
    final = eval_model
    refit_info: dict[str, Any] | None = None
    if config.refit:
        log.info("refitting on all %d ratings for %d epochs", len(ratings), selection.epochs)
        final = fit(
            config,
            Indexed.from_frame(ratings),
            data.rating_scale,
            validation=None,
            schedule=selection.learning_rates,
            movies=data.movies,
            verbose=verbose,
        )
        refit_info = {
            "n_ratings": len(ratings),
            "epochs": final.epochs,
            "learning_rates": final.learning_rates,
            "seconds": round(final.seconds, 3),
        }
    fingerprint = file_sha256(data.ratings_path)
    run_id = new_run_id(config.model.kind, fingerprint, output_dir)
    manifest = Manifest(
        schema_version=SCHEMA_VERSION,
        run_id=run_id,
        model_kind=config.model.kind,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        libraries=library_versions(),
        config=config.model_dump(mode="json"),
        data={
            "ratings_file": data.ratings_path.name,
            "sha256": fingerprint,
            "layout": data.layout,
            "n_ratings": len(ratings),
            "n_users": int(ratings["user_id"].nunique()),
            "n_movies": int(ratings["movie_id"].nunique()),
            "rating_scale": list(data.rating_scale),
            "dropped_rows": data.dropped_rows,
        },
        metrics=metrics,
        head=final.head,
        n_users=len(final.indexed.users),
        n_movies=len(final.indexed.movies),
        refit=refit_info,
        history=selection.history,
    )
    writer = _write_files(final, final.indexed, data.movies)
    run_dir = write_bundle(output_dir, run_id, writer, manifest, update_latest=update_latest)
    return TrainResult(run_dir, manifest, selection, eval_model, final)
