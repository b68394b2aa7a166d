"""`python -m training retrain --database URL`: retrain from the database, promote only a model that is no worse.

1. The ratings the serving model (`<output-dir>/latest`) never saw: those written after the data cutoff in its
   manifest (a model trained from the database records one), or, for a model trained from files, the pairs not
   among its training ratings. The newest of them are held out: all of them, or, when there are more, the
   newest `holdout_fraction` of all ratings (but at least `min_ratings`), so the candidate learns from the
   older new ones. Neither model trains on the held-out ratings.
2. Fewer than `min_ratings` held-out ratings or `min_users` users with one: too few to decide, `latest` stays.
3. A candidate is trained on everything else with the serving model's kind and settings (its manifest's
   `config`), as a whole run (selection, refit), into a scratch directory.
4. Both models are scored on the held-out ratings as the service would serve them: each user's vector is the
   trained one when the model trained on exactly the user's other ratings, otherwise a fold-in of those ratings
   (what the service does for someone who rated through the API), or none (the cold-start list, fallback
   ratings). RMSE of the predicted ratings, NDCG@10 of the served top-10 lists (rated movies excluded, the
   ranker blended in) against the held-out ratings >= 4 of each user who has one.
5. The candidate is promoted only when its RMSE is no higher and its NDCG@10 no lower (tolerances default 0):
   a model is trained on all ratings with the same settings and saved through the atomic artifact path, which
   moves `latest` once the run directory is complete. Otherwise `latest` stays.

Every decision is printed and written as JSON (`<output-dir>/retrain-reports/<time>.json` by default). Keep and
promote both exit 0; only errors are non-zero.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from movierec.artifacts import LATEST, load_bundle, point_latest
from movierec.errors import MovieRecError
from movierec.recommender import ListQuery, Ranked, Recommender
from movierec.store.training_data import (
    DatabaseRatings,
    cutoff_text,
    parse_cutoff,
    read_training_data,
    redact,
    to_micros,
)
from training.config import TrainConfig
from training.pipeline import train_run
from training.progress import reading_progress
from training.ranker import RELEVANT_RATING, TOP_K

log = logging.getLogger(__name__)

MIN_HELDOUT_RATINGS = 200
MIN_HELDOUT_USERS = 20
HOLDOUT_FRACTION = 0.1
_LIST_BATCH = 256

Decision = Literal["promote", "keep"]


class NoServingModelError(MovieRecError):
    """There is no model to compare a candidate with."""

    code = "no_serving_model"


@dataclass(frozen=True)
class GateSettings:
    """How much new data a decision needs and how a candidate must compare."""

    min_ratings: int = MIN_HELDOUT_RATINGS
    min_users: int = MIN_HELDOUT_USERS
    holdout_fraction: float = HOLDOUT_FRACTION
    rmse_tolerance: float = 0.0  # the candidate may be this much worse on RMSE and still count as no worse
    ndcg_tolerance: float = 0.0
    k: int = TOP_K


@dataclass(frozen=True)
class ServedScores:
    """One model scored on the held-out ratings the way the service serves it."""

    rmse: float
    ndcg: float
    n_ratings: int
    n_ranked_users: int
    users_trained: int  # users served their trained vector
    users_fold_in: int  # users whose vector was folded in from their other ratings
    users_cold: int  # users the model knows nothing of: cold-start list, fallback ratings
    n_fallback: int  # held-out pairs with an unknown user or movie


@dataclass
class RetrainReport:
    decision: Decision
    reason: str
    database: str
    serving_run: str
    serving_cutoff: str | None
    n_ratings: int
    n_new: int
    n_heldout: int
    n_heldout_users: int
    heldout_since: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    serving: dict[str, Any] | None = None
    candidate: dict[str, Any] | None = None
    promoted_run: str | None = None
    seconds: float = 0.0
    finished_at: str = ""

    def summary(self) -> str:
        lines = [
            f"retrain: {self.decision.upper()}: {self.reason}",
            f"  database {self.database}: {self.n_ratings:,} ratings, {self.n_new:,} new since serving run "
            f"{self.serving_run} (cutoff {self.serving_cutoff or 'unknown: compared by pairs'})",
            f"  held out {self.n_heldout:,} newest ratings of {self.n_heldout_users:,} users"
            + (f" (since {self.heldout_since})" if self.heldout_since else ""),
        ]
        for name, scores in (("serving  ", self.serving), ("candidate", self.candidate)):
            if scores is not None:
                lines.append(
                    f"  {name} RMSE {scores['rmse']:.4f}  NDCG@{self.settings.get('k', TOP_K)} "
                    f"{scores['ndcg']:.4f}  ({scores['n_ranked_users']} ranked users, "
                    f"{scores['users_fold_in']} folded in, {scores['users_cold']} cold)"
                )
        if self.promoted_run:
            lines.append(f"  latest -> {self.promoted_run}")
        lines.append(f"  {self.seconds:.1f} s")
        return "\n".join(lines)


def retrain(
    database: str,
    output_dir: Path,
    *,
    gate: GateSettings | None = None,
    candidate_config: TrainConfig | None = None,
    report_path: Path | None = None,
    verbose: int = 0,
) -> RetrainReport:
    """Hold out the newest unseen ratings, train and score a candidate, promote it only if no worse.

    Args:
        database: SQLAlchemy URL of the ratings database.
        output_dir: the model root; `latest` there is the serving model.
        gate: thresholds (module defaults when None).
        candidate_config: settings of the candidate and of a promoted model; default the serving model's.
        report_path: where the JSON report goes; default `output_dir/retrain-reports/<UTC time>.json`.
        verbose: Keras verbosity of the fits.

    Raises:
        NoServingModelError: `output_dir/latest` holds no model.
        DataError, StoreUnavailableError: the database cannot be read.
    """
    started = time.perf_counter()
    gate = gate or GateSettings()
    with _exclusive(output_dir):
        report = _decide(database, output_dir, gate, candidate_config, verbose)
    report.seconds = round(time.perf_counter() - started, 3)
    report.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    path = report_path or output_dir / "retrain-reports" / f"{datetime.now(UTC):%Y%m%d-%H%M%S-%f}.json"
    _write_json(path, dataclasses.asdict(report))
    log.info("retrain report written to %s", path)
    return report


def _decide(
    database: str,
    output_dir: Path,
    gate: GateSettings,
    candidate_config: TrainConfig | None,
    verbose: int,
) -> RetrainReport:
    latest = output_dir / LATEST
    if not (latest / "manifest.json").is_file():
        raise NoServingModelError(
            f"{latest} holds no model to compare with; train one first "
            f"(python -m training train --database URL --output-dir {output_dir})"
        )
    serving_bundle = load_bundle(latest.resolve())
    manifest = serving_bundle.manifest
    config = candidate_config or TrainConfig.model_validate(manifest.config)
    scale = manifest.data.get("rating_scale")
    read = read_training_data(
        database,
        rating_scale=(float(scale[0]), float(scale[1])) if scale else None,
        progress=reading_progress(),
    )
    ratings = read.data.ratings
    cutoff = manifest.data.get("cutoff")
    new = _new_mask(read, serving_bundle, cutoff)
    held = _heldout_mask(read, new, gate)
    n_users = int(ratings.loc[held, "user_id"].nunique())
    report = RetrainReport(
        decision="keep",
        reason="",
        database=redact(database),
        serving_run=manifest.run_id,
        serving_cutoff=cutoff,
        n_ratings=len(ratings),
        n_new=int(new.sum()),
        n_heldout=int(held.sum()),
        n_heldout_users=n_users,
        heldout_since=cutoff_text(_micros_to_datetime(int(read.updated_at_us[held].min())))
        if held.any()
        else None,
        settings={**dataclasses.asdict(gate), "model_kind": config.model.kind, "seed": config.seed},
    )
    if report.n_heldout < gate.min_ratings or n_users < gate.min_users:
        report.reason = (
            f"too few new ratings to decide: {report.n_heldout} held-out ratings of {n_users} users, at least "
            f"{gate.min_ratings} ratings of {gate.min_users} users are needed; latest stays"
        )
        return report
    context = ratings.loc[~held].reset_index(drop=True)
    heldout = ratings.loc[held].reset_index(drop=True)
    with tempfile.TemporaryDirectory(prefix="movierec-retrain-") as scratch:
        log.info(
            "training a candidate %s on %d ratings (%d held out)",
            config.model.kind,
            len(context),
            len(heldout),
        )
        candidate_data = read.subset(~held).data
        candidate_run = train_run(candidate_data, config, Path(scratch), verbose=verbose, update_latest=False)
        candidate_bundle = load_bundle(candidate_run.run_dir)
        serving_scores = score_as_served(
            Recommender(serving_bundle, fold_in_l2=config.fold_in_l2), context, heldout, gate.k
        )
        candidate_scores = score_as_served(
            Recommender(candidate_bundle, fold_in_l2=config.fold_in_l2), context, heldout, gate.k
        )
    report.serving = dataclasses.asdict(serving_scores)
    report.candidate = dataclasses.asdict(candidate_scores)
    if serving_scores.n_ranked_users == 0:
        report.reason = f"no held-out user has a rating >= {RELEVANT_RATING:g} to rank; latest stays"
        return report
    worse = []
    if candidate_scores.rmse > serving_scores.rmse + gate.rmse_tolerance:
        worse.append(f"RMSE {candidate_scores.rmse:.4f} > {serving_scores.rmse:.4f}")
    if candidate_scores.ndcg < serving_scores.ndcg - gate.ndcg_tolerance:
        worse.append(f"NDCG@{gate.k} {candidate_scores.ndcg:.4f} < {serving_scores.ndcg:.4f}")
    if worse:
        report.reason = f"the candidate is worse ({'; '.join(worse)}); latest stays"
        return report
    log.info("candidate no worse: refitting on all %d ratings and promoting", len(ratings))
    # Saved complete first (the atomic artifact path), then `latest` moves, unless someone moved it meanwhile
    # (a manual `train`): their choice stands and this run stays beside it, unserved.
    promoted = train_run(read.data, config, output_dir, verbose=verbose, update_latest=False)
    current = latest.resolve().name
    if current != manifest.run_id:
        report.reason = (
            f"the candidate is no worse, but latest moved to {current} during the retrain; it stays there "
            f"(the refitted model is saved as {promoted.run_dir.name}, unserved)"
        )
        return report
    point_latest(output_dir, promoted.run_dir.name)
    report.decision = "promote"
    report.promoted_run = promoted.run_dir.name
    report.reason = (
        f"the candidate is no worse (RMSE {candidate_scores.rmse:.4f} vs {serving_scores.rmse:.4f}, "
        f"NDCG@{gate.k} {candidate_scores.ndcg:.4f} vs {serving_scores.ndcg:.4f}); refitted on all ratings "
        f"and promoted"
    )
    return report


def _new_mask(read: DatabaseRatings, bundle: Any, cutoff: str | None) -> NDArray[np.bool_]:
    """Rows the serving model never saw: after its cutoff, or (no cutoff) pairs it did not train on as rated."""
    if cutoff is not None:
        return np.asarray(read.updated_at_us > to_micros(parse_cutoff(cutoff)))
    served = bundle.user_ratings
    counts = np.diff(served.indptr)
    trained = pd.DataFrame(
        {
            "user_id": np.repeat(bundle.user_ids.ids, counts),
            "movie_id": bundle.movie_ids.ids[served.indices],
            "trained_rating": served.ratings,
        }
    )
    merged = read.data.ratings[["user_id", "movie_id", "rating"]].merge(
        trained, on=["user_id", "movie_id"], how="left"
    )
    return np.asarray(~(merged["trained_rating"].to_numpy() == merged["rating"].to_numpy()))


def _heldout_mask(read: DatabaseRatings, new: NDArray[np.bool_], gate: GateSettings) -> NDArray[np.bool_]:
    """All new rows, or the newest `holdout_fraction` of all rows (at least `min_ratings`) when there are more."""
    n_new = int(new.sum())
    budget = max(gate.min_ratings, math.ceil(gate.holdout_fraction * len(new)))
    if n_new <= budget:
        return new
    new_rows = np.flatnonzero(new)
    newest = new_rows[np.argsort(-read.updated_at_us[new_rows], kind="stable")[:budget]]
    held = np.zeros(len(new), dtype=bool)
    held[newest] = True
    return held


def score_as_served(
    rec: Recommender, context: pd.DataFrame, heldout: pd.DataFrame, k: int = TOP_K
) -> ServedScores:
    """RMSE and NDCG@k of `rec` on `heldout`, each user served from their `context` ratings (module docstring)."""
    context_of = {int(u): g for u, g in context.groupby("user_id", sort=False)}  # type: ignore[arg-type]
    predicted: list[NDArray[np.float32]] = []
    actual: list[NDArray[np.float32]] = []
    queries: list[tuple[ListQuery, set[int]]] = []
    ndcgs: list[float] = []
    trained = folded = cold = fallback = 0
    for user_key, rows in heldout.groupby("user_id", sort=True):
        user = int(user_key)  # type: ignore[arg-type]
        movies = rows["movie_id"].to_numpy(np.int64)
        vector, bias, rated, how = _user_vector(rec, user, context_of.get(user))
        trained += how == "trained"
        folded += how == "fold_in"
        cold += how == "cold"
        prediction = rec.predict_with_vector(vector, bias, movies)
        fallback += int(prediction.fallback.sum())
        predicted.append(prediction.ratings)
        actual.append(rows["rating"].to_numpy(np.float32))
        relevant = set(movies[rows["rating"].to_numpy() >= RELEVANT_RATING].tolist())
        if not relevant:
            continue
        query = rec.vector_query(vector, bias, rated, k)
        if isinstance(query, Ranked):
            ndcgs.append(_ndcg(rec, query, relevant, k))
        else:
            queries.append((query, relevant))
    for start in range(0, len(queries), _LIST_BATCH):
        chunk = queries[start : start + _LIST_BATCH]
        for ranked, (_, relevant) in zip(rec.rank_lists([q for q, _ in chunk]), chunk, strict=True):
            ndcgs.append(_ndcg(rec, ranked, relevant, k))
    diff = np.concatenate(predicted).astype(np.float64) - np.concatenate(actual).astype(np.float64)
    return ServedScores(
        rmse=float(np.sqrt(np.mean(diff**2))),
        ndcg=float(np.mean(ndcgs)) if ndcgs else 0.0,
        n_ratings=len(heldout),
        n_ranked_users=len(ndcgs),
        users_trained=trained,
        users_fold_in=folded,
        users_cold=cold,
        n_fallback=fallback,
    )


def _user_vector(
    rec: Recommender, user: int, context: pd.DataFrame | None
) -> tuple[NDArray[np.float32] | None, float, NDArray[np.int64], str]:
    """(vector, bias, rated movie rows, how): trained when the model trained on exactly `context`, else folded in."""
    empty = np.empty(0, dtype=np.int64)
    movies = empty if context is None else context["movie_id"].to_numpy(np.int64)
    ratings = np.empty(0, np.float32) if context is None else context["rating"].to_numpy(np.float32)
    index = rec.user_index(user)
    if index is not None:
        trained_movies = rec.bundle.movie_ids.ids[rec.bundle.user_ratings.movies_of(index)]
        trained_ratings = rec.bundle.user_ratings.ratings_of(index)
        if _same_ratings(movies, ratings, trained_movies, trained_ratings):
            rated = rec.bundle.user_ratings.movies_of(index).astype(np.int64)
            return rec.scorer.user_factors[index], float(rec.scorer.user_bias[index]), rated, "trained"
    if len(movies):
        m_idx, known, _ = rec.known_ratings(movies, ratings)
        if len(m_idx):
            vector, bias = rec.scorer.fold_in(m_idx, known, rec.fold_in_l2)
            return vector, float(bias), m_idx, "fold_in"
    return None, 0.0, empty, "cold"


def _same_ratings(
    movies: NDArray[np.int64], ratings: NDArray[np.float32], other_movies: NDArray[Any], other: NDArray[Any]
) -> bool:
    if len(movies) != len(other_movies):
        return False
    a, b = np.argsort(movies), np.argsort(other_movies)
    return bool(
        np.array_equal(movies[a], np.asarray(other_movies)[b])
        and np.allclose(ratings[a], np.asarray(other, dtype=np.float32)[b])
    )


def _ndcg(rec: Recommender, ranked: Ranked, relevant: set[int], k: int) -> float:
    top = rec.bundle.movie_ids.ids[ranked.movie_index[:k]].tolist()
    dcg = sum(1.0 / math.log2(position + 2) for position, movie in enumerate(top) if movie in relevant)
    ideal = sum(1.0 / math.log2(position + 2) for position in range(min(len(relevant), k)))
    return dcg / ideal


def _micros_to_datetime(micros: int) -> datetime:
    return datetime.fromtimestamp(micros // 1_000_000, UTC).replace(microsecond=micros % 1_000_000)


@contextmanager
def _exclusive(output_dir: Path) -> Iterator[None]:
    """One retrain per model root at a time (a scheduled one and a manual one must not race on `latest`)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(output_dir / ".retrain.lock", "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MovieRecError(f"another retrain is running on {output_dir}") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write the report atomically (a reader never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


__all__ = [
    "GateSettings",
    "NoServingModelError",
    "RetrainReport",
    "ServedScores",
    "retrain",
    "score_as_served",
]
