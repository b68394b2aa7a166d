"""One training run, top to bottom: split, select and fit, evaluate on held-out, refit, ranker, manifest, save.

Which model is fitted, and how, is the kind's business (training/kinds/); this module never asks which kind it
runs. The top-N ranker (training/ranker.py) is fitted next to every kind's rating model, on the same ratings.
The artifact's files are `movierec.artifacts.save_bundle`'s business.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movierec.artifacts import CATALOGUE_COLUMNS, SCHEMA_VERSION, Manifest, UserRatings, save_bundle
from movierec.data import RatingsData, rating_step_of
from movierec.hashing import sha256_file
from movierec.split import split_mask
from training.config import TrainConfig
from training.distributed import active_worker
from training.environment import library_versions
from training.fitted import FittedModel, Indexed, Validation
from training.kinds.registry import kind_for
from training.metrics import mae, rmse
from training.ranker import RankerRun, fit_run_ranker

__all__ = [
    "FittedModel",
    "Indexed",
    "TrainResult",
    "carve_validation",
    "catalogue_frame",
    "evaluate",
    "fit",
    "library_versions",
    "new_run_id",
    "select_and_fit",
    "train_run",
]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a run produced: the artifact path and the report figures."""

    run_dir: Path
    manifest: Manifest
    selection_model: FittedModel  # fitted on train minus the validation slice, for early stopping
    eval_model: FittedModel  # fitted on the whole train split with the chosen schedule; scored on held-out
    final_model: FittedModel
    ranker: RankerRun | None = None  # None when the run's config disables the ranker


def train_run(
    data: RatingsData,
    config: TrainConfig,
    output_dir: Path,
    *,
    verbose: int = 1,
    update_latest: bool = True,
) -> TrainResult:
    """Run the whole pipeline and write the artifact. Nothing under `output_dir` changes unless it all succeeds.

    In a data-parallel job (training/distributed.py) every process fits alike; only process 0 fits the ranker
    and writes: the others return once trained, with `run_dir` the output root and nothing written.
    """
    worker = active_worker()
    writes = worker is None or worker.writes
    ratings = data.ratings
    train_mask = split_mask(ratings, config.split, config.seed, config.train_fraction)
    train_rows, heldout = ratings[train_mask], ratings[~train_mask]
    train_all = Indexed.from_frame(train_rows)
    selection, eval_model = select_and_fit(
        config, train_all, data.rating_scale, movies=data.movies, verbose=verbose
    )
    log.info("evaluating on the test split (%d held-out ratings)", len(heldout))
    metrics = _report(config, selection, eval_model, evaluate(eval_model, heldout))
    final = eval_model
    if config.refit:
        log.info(
            "%s: refitting on all %d ratings for %d %s (the served model)",
            _phase(config, "refit"),
            len(ratings),
            selection.epochs,
            kind_for(config).step_unit,
        )
        final = fit(
            config,
            Indexed.from_frame(ratings),
            data.rating_scale,
            validation=None,
            schedule=selection.learning_rates,
            movies=data.movies,
            verbose=verbose,
        )
    if worker is not None:  # the last fit all processes take together is done
        worker.leave()
    served = final.indexed  # whose counts and rated lists the service uses
    ranker = None
    arrays = final.arrays
    if config.ranker.enabled and writes:
        # On the served model's ratings; L2 chosen on the rating model's validation slice, held-out rows unseen.
        fit_part, validation = carve_validation(train_all, config)
        ranker = fit_run_ranker(
            config.ranker, fit_part, validation, train_all, served, heldout, eval_model.scorer()
        )
        log.info("ranker: L2 %g chosen on validation, %.1f s", ranker.info["l2"], ranker.seconds)
        metrics = {**metrics, **ranker.metrics}
        arrays = {**final.arrays, **ranker.arrays}
    fingerprint = data.fingerprint or sha256_file(data.ratings_path)
    run_id = new_run_id(config.model.kind, fingerprint, output_dir)
    manifest = _manifest(run_id, data, config, fingerprint, metrics, selection, eval_model, final)
    if ranker is not None:
        manifest = manifest.model_copy(update={"ranker": ranker.info})
    if worker is not None:
        entry = worker.manifest_entry(config.batch_size, final.graph)
        manifest = manifest.model_copy(update={"distributed": entry})
        if not writes:
            return TrainResult(output_dir, manifest, selection, eval_model, final, ranker)
    run_dir = save_bundle(
        output_dir,
        run_id,
        manifest,
        keras_model=final.model,
        arrays=arrays,
        user_ids=served.users,
        movie_ids=served.movies,
        catalogue=catalogue_frame(served, data.movies),
        user_ratings=UserRatings.from_pairs(
            served.user_idx, served.movie_idx, served.ratings, len(served.users)
        ),
        update_latest=update_latest,
    )
    return TrainResult(run_dir, manifest, selection, eval_model, final, ranker)


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
    split, while everything about it was chosen without the held-out rows. A kind that chooses no epochs on
    validation (bpmf) is fitted once on the whole train split, which is then both.
    """
    kind, unit = config.model.kind, kind_for(config).step_unit
    if not kind_for(config).chooses_epochs_on_validation:
        log.info(
            "%s: fitting %s on the train split (%d ratings), to be evaluated",
            _phase(config, "evaluated"),
            kind,
            len(train_all.ratings),
        )
        model = fit(config, train_all, rating_scale, validation=None, movies=movies, verbose=verbose)
        return model, model
    fit_part, validation = carve_validation(train_all, config)
    log.info(
        "%s: fitting %s on the validation carve (%d ratings) to choose %s on %d validation ratings",
        _phase(config, "selection"),
        kind,
        len(fit_part.ratings),
        unit,
        len(validation[2]),
    )
    selection = fit(config, fit_part, rating_scale, validation=validation, movies=movies, verbose=verbose)
    log.info(
        "%s: fitting %s on the whole train split (%d ratings) for the chosen %d %s, to be evaluated",
        _phase(config, "evaluated"),
        kind,
        len(train_all.ratings),
        selection.epochs,
        unit,
    )
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


def _phase(config: TrainConfig, name: str) -> str:
    """`phase i/n` of a run's fits: choosing epochs (kinds that do), the evaluated fit, the refit (when on)."""
    phases = ["selection"] if kind_for(config).chooses_epochs_on_validation else []
    phases.append("evaluated")
    if config.refit:
        phases.append("refit")
    return f"phase {phases.index(name) + 1}/{len(phases)}"


def carve_validation(train_all: Indexed, config: TrainConfig) -> tuple[Indexed, Validation]:
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


def fit(
    config: TrainConfig,
    train: Indexed,
    rating_scale: tuple[float, float],
    *,
    validation: Validation | None,
    schedule: list[float] | None = None,
    movies: pd.DataFrame | None = None,
    restart: FittedModel | None = None,
    verbose: int = 1,
) -> FittedModel:
    """Fit a model of `config.model.kind` on `train` (the kind's `fit`, see training/kinds/base.py).

    With `validation` (user_idx, movie_idx, ratings) the number of epochs and the learning-rate drops are chosen
    by early stopping on it; with `schedule` the given per-epoch learning rates are replayed (the refit).
    `movies` (the catalogue) feeds the genre and year side features of kinds with `side_features`.
    `restart`, an earlier fit under the same id maps, lends its compiled graph (reset to its initial weights).
    """
    return kind_for(config).fit(
        config,
        train,
        rating_scale,
        validation=validation,
        schedule=schedule,
        movies=movies,
        restart=restart,
        verbose=verbose,
    )


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


def _report(
    config: TrainConfig, selection: FittedModel, eval_model: FittedModel, heldout_metrics: dict[str, Any]
) -> dict[str, Any]:
    """The manifest's `metrics`: the evaluated model's held-out figures plus how it was selected and how long."""
    selection_seconds = 0.0 if selection is eval_model else selection.seconds
    return {
        **heldout_metrics,
        "split": config.split,
        "seed": config.seed,
        "epochs": selection.epochs,
        "selection_seconds": round(selection_seconds, 3),
        "train_seconds": round(selection_seconds + eval_model.seconds, 3),
        "validation_rmse": float(min(selection.history.get("val_rmse", [float("nan")]))),
    }


def new_run_id(kind: str, fingerprint: str, output_dir: Path) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{kind}-{fingerprint[:8]}"
    run_id, n = base, 1
    while (output_dir / run_id).exists():
        n += 1
        run_id = f"{base}-{n}"
    return run_id


def _manifest(
    run_id: str,
    data: RatingsData,
    config: TrainConfig,
    fingerprint: str,
    metrics: dict[str, Any],
    selection: FittedModel,
    eval_model: FittedModel,
    final: FittedModel,
) -> Manifest:
    """How the run was made, what its metrics describe (the evaluated model) and what it serves (`final`)."""
    ratings = data.ratings
    refitted = final is not eval_model
    refit_info = (
        {
            "n_ratings": len(final.indexed.ratings),
            "epochs": final.epochs,
            "learning_rates": final.learning_rates,
            "seconds": round(final.seconds, 3),
        }
        if refitted
        else None
    )
    return Manifest(
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
            # What stored ratings are held to (app/routers/ratings.py): computed once here, never per request.
            "rating_step": rating_step_of(ratings["rating"].to_numpy()),
            "dropped_rows": data.dropped_rows,
            **data.source,
        },
        metrics=metrics,
        head=final.head,
        n_users=len(final.indexed.users),
        n_movies=len(final.indexed.movies),
        scorer=final.scorer_family,
        evaluated_model={
            "fitted_on": "train split",
            "n_ratings": len(eval_model.indexed.ratings),
            "epochs": eval_model.epochs,
            "scored_on": "held-out split",
            "n_heldout": metrics["n_heldout"],
        },
        served_model={
            "fitted_on": "all ratings (refit)" if refitted else "train split (no refit)",
            "n_ratings": len(final.indexed.ratings),
            "epochs": final.epochs,
            "is_evaluated_model": not refitted,
        },
        refit=refit_info,
        history=selection.history,
    )


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
