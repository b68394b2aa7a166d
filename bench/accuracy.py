"""Accuracy, ranking and training-speed benchmark: the project's models against classical baselines.

    python bench/accuracy.py --data ../shared/data/ml-latest-small [--splits random:42 random:7 temporal]
                             [--repeats 3] [--skip-notebook] [--systems ID ...] [--tf-threads N] [--quick]

On each split (default: random 80/20 at seed 42, the same at seed 7, and the temporal split that holds out each
user's latest 20 %; `movierec.split`), in one process and on the same train / held-out rows:

- the project's `dot`, `bias`, `nn`, `svdpp` and `bpmf` with their default settings, exactly as `python -m
  training train --model KIND --no-refit` fits them (early stopping on a validation slice carved from train, then
  the whole train split with that schedule; bpmf samples the whole train split once);
- ablations: `bias`, `nn` and `bpmf` without side features, with their own defaults (`--no-side-features`,
  `training.config.KIND_DEFAULTS_WITHOUT_SIDE_FEATURES`, chosen by `bench/tune.py`);
- Surprise's SVD (defaults and the tuned setting of issue 4), SVD++, KNNBaseline (item-based, pearson_baseline)
  and BaselineOnly, fitted on the same train rows;
- a popularity baseline for ranking (every user gets the movies with the most train ratings);
- EASE^R (Steck 2019), the closed-form item-item reference for top-N lists: binary X of the train ratings,
  P = (XᵀX + λI)⁻¹, B = -P / diag(P) with a zero diagonal, scores X B; exact, through the eigendecomposition of
  XᵀX that X's few rows give (`Ease`). λ from the trainer's grid (`RankerConfig.l2_grid`) by NDCG@10 on the validation slice the
  project's kinds use (`training.pipeline.carve_validation`, relevant = rating >= 4), then fitted on the whole
  train split;
- the default artifact's served lists (issue 13): `python -m training train --no-refit` with its defaults
  (bpmf and the top-N ranker) run through `training.pipeline.train_run` on the same split into a temporary
  directory, loaded with `load_bundle` + `Recommender`, and ranked by the service's own
  `Recommender.recommend(user_id, 10)`; with its held-out RMSE (the manifest's), the ranker's array sizes and
  the RSS a fresh process gains loading it;
- on the first split only (slow: ~6 min), the lesson-4 notebook's original configuration of `dot`, `bias` and
  `nn` (batch 64, Adam 0.001, weight L2 1e-4, no output squashing, fixed epochs), as reference rows.

Reported per system and split: held-out RMSE and MAE (the project's models through the service's numpy scorer);
top-10 ranking (relevant = held-out rating >= 4; candidates = every movie seen in train that the user did not rate
in train): NDCG@10, recall@10, precision@10, catalogue coverage (distinct movies in all top-10 lists), the share
of listed movies with fewer than 20 train ratings, and the share of users whose list holds the most-listed movie.

Timing: each system's fit is timed `--repeats` times (3) on the first split and once on the others; reported as
median with min-max, in wall seconds (`time.perf_counter`) and CPU seconds of the whole process
(`time.process_time`, which adds up every thread: TensorFlow's and BLAS's thread pools count, Surprise is
single-threaded). Speed claims compare CPU seconds. Only the fit call is timed; interpreter start-up, imports,
data loading and evaluation are excluded for every system alike. A project model's fit is both of its fits
(selection on the validation slice, then the whole train split), each with its side features, build, compile and
array export. Nothing reads held-out rows before a model is fitted: every hyper-parameter was chosen on
validation slices of train (`bench/tune.py`, `bench/results/tuning.md`).

Targets of issue 13, per split: the served lists' NDCG@10 and recall@10 >= EASE^R's (goal 1.1 x), < 5 % of listed
movies with fewer than 20 train ratings, no movie in more than 35 % of the lists, and the artifact's held-out RMSE
within 0.005 of the best rating model's.

Writes `bench/results/accuracy.md` and `accuracy.json` (or `--output-dir`), after every row. Surprise comes from
the `bench` extra (`pip install -e .[bench]`); it is never a dependency of the service.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from movierec.data import RatingsData, load_ratings
from movierec.scoring import top_k_indices
from movierec.split import split_mask
from training.config import RankerConfig
from training.metrics import mae, rmse

log = logging.getLogger("bench.accuracy")

RELEVANT_RATING = 4.0
TOP_K = 10
LONG_TAIL = 20  # "rarely rated": fewer train ratings than this
REFERENCE = "svd-tuned"  # the Surprise system the speed targets compare with
DEFAULT_SPLITS = ("random:42", "random:7", "temporal")
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)

# The notebook's models: Adam 0.001 throughout (its later lr assignments never reached the Keras 1 optimizer),
# batch 64, L2 1e-4 on the whole embedding matrices, raw (unsquashed) outputs; epochs as run in the notebook.
NOTEBOOK_EPOCHS = {"dot": 10, "bias": 38, "nn": 8}
PROJECT_KINDS = ("dot", "bias", "nn", "svdpp", "bpmf")
SIDE_FEATURE_KINDS = ("bias", "nn", "bpmf")
SERVED_KIND = "bpmf"  # `python -m training train`'s default --model


# ---- systems -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class System:
    """One benchmarked system: `id` selects it on the command line (`--systems`)."""

    id: str
    name: str
    group: str  # project | ablation | surprise | popularity | ease | notebook | served
    kind: str = ""
    side_features: bool | None = None
    solver: str | None = None  # `--solver` (training/config.py), None for the kind's default


def systems() -> list[System]:
    out = [
        System("svd-tuned", "Surprise SVD (tuned)", "surprise"),
        System("svd", "Surprise SVD (defaults)", "surprise"),
        System("svdpp-surprise", "Surprise SVD++ (defaults)", "surprise"),
        System("knn-baseline", "Surprise KNNBaseline (item, pearson_baseline)", "surprise"),
        System("baseline-only", "Surprise BaselineOnly", "surprise"),
        System("popularity", "popularity (train rating count)", "popularity"),
        System("ease", "EASE^R (dense closed form, λ on validation)", "ease"),
    ]
    for kind in PROJECT_KINDS:
        side = True if kind in SIDE_FEATURE_KINDS else None
        out.append(System(kind, f"movierec {kind} (default)", "project", kind, side))
    out.append(System("bias-als", "movierec bias --solver als", "project", "bias", True, solver="als"))
    for kind in SIDE_FEATURE_KINDS:
        out.append(System(f"{kind}-noside", f"movierec {kind} (no side features)", "ablation", kind, False))
    for kind in NOTEBOOK_EPOCHS:
        out.append(System(f"notebook-{kind}", f"notebook {kind} (batch 64, fixed epochs)", "notebook", kind))
    out.append(
        System(
            "served",
            f"movierec default artifact ({SERVED_KIND} + ranker), served lists",
            "served",
            SERVED_KIND,
        )
    )
    return out


@dataclass
class Row:
    """One system's result on one split."""

    system: str
    name: str
    group: str
    split: str
    rmse: float | None
    mae: float | None
    wall_seconds: list[float]
    cpu_seconds: list[float]
    n_fallback: int = 0
    epochs: int | None = None
    validation_rmse: float | None = None
    ranking: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    reproduce: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # system-specific figures (EASE^R's λ, served memory)

    @property
    def wall(self) -> float:
        return float(np.median(self.wall_seconds))

    @property
    def cpu(self) -> float:
        return float(np.median(self.cpu_seconds))


@dataclass
class Split:
    """Train / held-out rows in file order."""

    label: str  # random:42 | random:7 | temporal
    kind: str
    seed: int
    data: RatingsData
    train: pd.DataFrame
    heldout: pd.DataFrame
    train_fraction: float = 0.8


def parse_split(spec: str) -> tuple[str, int]:
    """ "random:SEED" or "temporal" (seed 42 for the training run's own randomness) -> (kind, seed)."""
    kind, _, seed = spec.partition(":")
    if kind not in ("random", "temporal"):
        raise argparse.ArgumentTypeError(f"split must be random:SEED or temporal, not {spec!r}")
    return kind, int(seed) if seed else 42


def make_split(data: RatingsData, spec: str, train_fraction: float) -> Split:
    kind, seed = parse_split(spec)
    mask = split_mask(data.ratings, kind, seed, train_fraction)  # type: ignore[arg-type]
    return Split(
        spec,
        kind,
        seed,
        data,
        data.ratings[mask].reset_index(drop=True),
        data.ratings[~mask].reset_index(drop=True),
        train_fraction,
    )


def timed(
    fit: Callable[[], Any], repeats: int, before: Callable[[], None] | None = None
) -> tuple[Any, list[float], list[float]]:
    """Run `fit` `repeats` times; (first result, wall seconds, CPU seconds of the whole process) per run."""
    walls, cpus, first = [], [], None
    for i in range(repeats):
        if before is not None:
            before()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        result = fit()
        walls.append(time.perf_counter() - wall0)
        cpus.append(time.process_time() - cpu0)
        if i == 0:
            first = result
        del result
    return first, walls, cpus


# ---- ranking -------------------------------------------------------------------------------------------


def ranking_metrics(
    score_user: Callable[[int], NDArray[Any]],
    user_ids: NDArray[Any],
    movie_ids: NDArray[Any],
    train: pd.DataFrame,
    heldout: pd.DataFrame,
    k: int = TOP_K,
    long_tail: int = LONG_TAIL,
) -> dict[str, Any]:
    """Top-k quality and concentration over held-out users, scoring the whole train catalogue.

    Args:
        score_user: position of a user in `user_ids` -> scores of every movie in `movie_ids` order.
        user_ids, movie_ids: raw ids in the scorer's index order (every user and movie seen in train).
        train, heldout: the split's rows; a user's train-rated movies are not candidates.

    Users: held-out users with at least one relevant (held-out rating >= 4), candidate movie. Returns
    precision@k, recall@k, NDCG@k (means over those users), `coverage` (distinct movies in all their lists),
    `long_tail_share` (share of listed movies with fewer than `long_tail` train ratings), `top_movie` (the
    movie in most lists) and `top_movie_share` (share of users whose list holds it), and `n_users`.
    """

    def top_of(u: int, user_rated: NDArray[np.int64]) -> NDArray[np.int64]:
        scores = np.asarray(score_user(u), dtype=np.float64).copy()
        scores[user_rated] = -np.inf
        top = top_k_indices(scores, k)  # the service's own top-k: best first, rated movies left out
        return top[np.isfinite(scores[top])]

    return _list_metrics(top_of, user_ids, movie_ids, train, heldout, k, long_tail)


def list_ranking_metrics(
    list_user: Callable[[int], NDArray[Any]],
    user_ids: NDArray[Any],
    movie_ids: NDArray[Any],
    train: pd.DataFrame,
    heldout: pd.DataFrame,
    k: int = TOP_K,
    long_tail: int = LONG_TAIL,
) -> dict[str, Any]:
    """`ranking_metrics` of ready-made lists: `list_user(position in user_ids)` -> movie positions (in
    `movie_ids` order), best first, as a service returns them. Only the first `k` count; a listed movie the
    user rated in train is counted as listed and as a miss (the lists are taken as served)."""
    return _list_metrics(
        lambda u, _rated: np.asarray(list_user(u), dtype=np.int64)[:k],
        user_ids,
        movie_ids,
        train,
        heldout,
        k,
        long_tail,
    )


def _list_metrics(
    top_of: Callable[[int, NDArray[np.int64]], NDArray[np.int64]],
    user_ids: NDArray[Any],
    movie_ids: NDArray[Any],
    train: pd.DataFrame,
    heldout: pd.DataFrame,
    k: int,
    long_tail: int,
) -> dict[str, Any]:
    """The metrics of `ranking_metrics` for `top_of(user position, its train-rated movie positions)` -> the
    user's top-k movie positions, best first."""
    user_pos = pd.Series(np.arange(len(user_ids)), index=user_ids)
    movie_pos = pd.Series(np.arange(len(movie_ids)), index=movie_ids)
    rated = train.groupby(train["user_id"].map(user_pos))["movie_id"].agg(
        lambda ids: movie_pos.reindex(ids.to_numpy()).dropna().astype(np.int64).to_numpy()
    )
    n_train_ratings = train["movie_id"].value_counts().reindex(movie_ids, fill_value=0).to_numpy(np.int64)
    held = heldout[heldout["rating"] >= RELEVANT_RATING]
    held = held[held["user_id"].isin(user_pos.index) & held["movie_id"].isin(movie_pos.index)]
    relevant = held.groupby(held["user_id"].map(user_pos))["movie_id"].agg(
        lambda ids: set(movie_pos.reindex(ids.to_numpy()).astype(np.int64).tolist())
    )
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    precision, recall, ndcg, lists = [], [], [], []
    for u, relevant_movies in relevant.items():
        user_rated = rated.get(u, np.empty(0, np.int64))
        # A movie rated in train is no candidate, relevant or not.
        rel = relevant_movies - set(user_rated.tolist())
        if not rel:
            continue
        top = top_of(int(u), user_rated)
        hits = np.fromiter((int(i) in rel for i in top), dtype=bool, count=len(top))
        precision.append(hits.sum() / k)
        recall.append(hits.sum() / len(rel))
        ndcg.append(float((hits * discounts[: len(top)]).sum() / discounts[: min(len(rel), k)].sum()))
        lists.append(top)
    listed = np.concatenate(lists) if lists else np.empty(0, np.int64)
    in_lists = np.bincount(listed, minlength=len(movie_ids))
    top_movie = int(np.argmax(in_lists)) if listed.size else -1
    return {
        f"precision@{k}": float(np.mean(precision)) if precision else 0.0,
        f"recall@{k}": float(np.mean(recall)) if recall else 0.0,
        f"ndcg@{k}": float(np.mean(ndcg)) if ndcg else 0.0,
        "n_users": len(lists),
        "coverage": int((in_lists > 0).sum()),
        "long_tail_share": float((n_train_ratings[listed] < long_tail).mean()) if listed.size else 0.0,
        "top_movie": None if top_movie < 0 else movie_ids[top_movie].item(),
        "top_movie_share": float(in_lists[top_movie] / len(lists)) if lists else 0.0,
    }


def popularity_scores(train: pd.DataFrame, movie_ids: NDArray[Any]) -> NDArray[Any]:
    """Every movie's train rating count, in `movie_ids` order: the popularity baseline's score."""
    return train["movie_id"].value_counts().reindex(movie_ids, fill_value=0).to_numpy(np.float64)


# ---- EASE^R ----------------------------------------------------------------------------------------------

# The trainer's own grid: EASE^R is tuned exactly as the served ranker is.
EASE_L2_GRID = RankerConfig().l2_grid


@dataclass(frozen=True)
class Ease:
    """EASE^R (Steck 2019) in closed form, held as the eigendecomposition of the Gram matrix G = XᵀX.

    X (users x movies, binary) has rank r <= its number of users, so G = V diag(s²) Vᵀ with V the r right singular
    vectors of X (`ease_gram`), and exactly P = (G + λI)⁻¹ = V diag(1 / (s² + λ)) Vᵀ + (I - V Vᵀ) / λ: the dense inverse, never
    formed. B = I - P / diag(P) (column j divided by P_jj) is -P / diag(P) with a zero diagonal.
    """

    v: NDArray[np.float64]  # movies x r
    s2: NDArray[np.float64]  # r squared singular values of X
    l2: float
    diag_p: NDArray[np.float64]  # diag(P), one per movie

    @classmethod
    def fit(cls, x: NDArray[Any], l2: float, gram: tuple[NDArray[Any], NDArray[Any]] | None = None) -> Ease:
        """Fit on binary `x`; `gram` = `ease_gram(x)`, to share one decomposition across λ."""
        v, s2 = gram if gram is not None else ease_gram(x)
        leverage = np.einsum("jk,jk->j", v, v)
        diag_p = (v * v) @ (1.0 / (s2 + l2)) + (1.0 - leverage) / l2
        return cls(v, s2, float(l2), diag_p)

    def times_p(self, xq: NDArray[Any]) -> NDArray[np.float64]:
        """xq @ P."""
        xq = np.asarray(xq, dtype=np.float64)
        proj = xq @ self.v
        return (proj / (self.s2 + self.l2)) @ self.v.T + (xq - proj @ self.v.T) / self.l2

    def scores(self, xq: NDArray[Any]) -> NDArray[np.float64]:
        """xq @ B for rows `xq` (users x movies, binary): every movie's score per user."""
        xq = np.asarray(xq, dtype=np.float64)
        return xq - self.times_p(xq) / self.diag_p

    def weights(self) -> NDArray[np.float64]:
        """The dense item-item matrix B (movies x movies): for checks on small catalogues."""
        return self.scores(np.eye(len(self.diag_p)))


def ease_gram(x: NDArray[Any]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(V, s²) with G = XᵀX = V diag(s²) Vᵀ, V orthonormal columns spanning X's row space.

    With fewer users than movies (MovieLens), from the small Gram matrix XXᵀ = U diag(s²) Uᵀ: V = XᵀU / s, keeping
    the directions with s² above round-off (the rest are G's null space, which P's (I - V Vᵀ) / λ term covers).
    Otherwise from G itself. Matrix products and a users x users eigendecomposition: no large LAPACK call.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] >= x.shape[1]:
        s2, v = np.linalg.eigh(x.T @ x)
        return v, np.clip(s2, 0.0, None)
    s2, u = np.linalg.eigh(x @ x.T)
    keep = s2 > max(float(s2.max(initial=0.0)), 1.0) * x.shape[1] * np.finfo(np.float64).eps * 1e3
    s2, u = s2[keep], u[:, keep]
    return (x.T @ u) / np.sqrt(s2), s2


def binary_matrix(indexed: Any) -> NDArray[np.float64]:
    """Users x movies, 1 where the user rated the movie (an `Indexed`'s rows, whatever the rating)."""
    x = np.zeros((len(indexed.users), len(indexed.movies)))
    x[indexed.user_idx, indexed.movie_idx] = 1.0
    return x


def indexed_frame(indexed: Any, rows: NDArray[Any] | None = None) -> pd.DataFrame:
    """An `Indexed`'s rows (or the given index triple) back as a user_id / movie_id / rating frame."""
    u, m, r = rows if rows is not None else (indexed.user_idx, indexed.movie_idx, indexed.ratings)
    return pd.DataFrame(
        {
            "user_id": indexed.users.ids[u],
            "movie_id": indexed.movies.ids[m],
            "rating": np.asarray(r, np.float64),
        }
    )


def run_ease(system: System, split: Split, repeats: int) -> Row:
    """EASE^R with λ chosen by NDCG@10 on the validation slice the project's kinds use (relevant = rating >= 4),
    then fitted on the whole train split with that λ and scored on held-out."""
    from training.config import TrainConfig
    from training.pipeline import Indexed, carve_validation

    train_all = Indexed.from_frame(split.train)
    config = TrainConfig(seed=split.seed, split=split.kind)
    fit_part, validation = carve_validation(train_all, config)
    fit_frame, val_frame = indexed_frame(fit_part), indexed_frame(train_all, validation)
    users, movies = train_all.users.ids, train_all.movies.ids
    nd = f"ndcg@{TOP_K}"

    def fit() -> tuple[Ease, dict[str, float]]:
        x_fit = binary_matrix(fit_part)
        gram = ease_gram(x_fit)  # one decomposition for the whole grid
        chosen: dict[str, float] = {}
        for l2 in EASE_L2_GRID:
            scores = Ease.fit(x_fit, l2, gram).scores(x_fit)
            m = ranking_metrics(lambda u: scores[u], users, movies, fit_frame, val_frame)  # noqa: B023
            chosen[f"{l2:g}"] = m[nd]
        best = max(EASE_L2_GRID, key=lambda l2: chosen[f"{l2:g}"])
        return Ease.fit(binary_matrix(train_all), best), chosen

    (model, validation_ndcg), walls, cpus = timed(fit, repeats)
    scores = model.scores(binary_matrix(train_all))
    ranking = ranking_metrics(lambda u: scores[u], users, movies, split.train, split.heldout)
    return Row(
        system=system.id,
        name=f"{system.name}, λ {model.l2:g}",
        group=system.group,
        split=split.label,
        rmse=None,
        mae=None,
        wall_seconds=walls,
        cpu_seconds=cpus,
        ranking=ranking,
        config={
            "x": "binary train ratings (any value)",
            "l2_grid": list(EASE_L2_GRID),
            "validation": "training.pipeline.carve_validation, TrainConfig(seed=split seed)",
        },
        extra={
            "l2": model.l2,
            f"validation_{nd}": validation_ndcg,
            "n_validation": len(val_frame),
            "rank_of_x": int(model.s2.size),
        },
    )


# ---- the project's models ------------------------------------------------------------------------------


def project_config(system: System, split: Split, quick: bool) -> Any:
    from training.config import TrainConfig

    overrides: dict[str, Any] = {"seed": split.seed, "split": split.kind, "refit": False}
    if system.side_features is False:
        overrides["model_fields"] = {"side_features": False}
    if system.solver is not None:
        overrides["solver"] = system.solver
    if quick:
        overrides["epochs"] = 4 if system.kind == "bpmf" else 1
    return TrainConfig.for_kind(system.kind, **overrides)  # type: ignore[arg-type]


def train_command(system: System, split: Split, data_path: str, quick: bool) -> str:
    args = [
        "python -m training train",
        f"--data {shlex.quote(data_path)}",
        f"--model {system.kind}",
        f"--seed {split.seed}",
        f"--split {split.kind}",
        "--no-refit",
    ]
    if system.side_features is False:
        args.append("--no-side-features")
    if system.solver is not None:
        args.append(f"--solver {system.solver}")
    if quick:
        args.append(f"--epochs {4 if system.kind == 'bpmf' else 1}")
    return " ".join(args)


def run_project(system: System, split: Split, repeats: int, quick: bool) -> Row:
    """Fit a default model exactly as `python -m training train --model KIND --no-refit` does and evaluate it."""
    import keras

    from training.pipeline import Indexed, evaluate, select_and_fit

    config = project_config(system, split, quick)
    train_all = Indexed.from_frame(split.train)
    # As train_run: epochs chosen on a validation slice of train, then the whole train split; both fits count.
    (selection, fitted), walls, cpus = timed(
        lambda: select_and_fit(
            config, train_all, split.data.rating_scale, movies=split.data.movies, verbose=0
        ),
        repeats,
        before=keras.backend.clear_session,
    )
    metrics = evaluate(fitted, split.heldout)  # through the service's scorer, as `python -m training train`
    scorer = fitted.scorer()

    def score_user(u: int) -> NDArray[Any]:  # raw (pre-head) scores: the head is monotonic
        return scorer.raw_catalogue(scorer.user_factors[u], float(scorer.user_bias[u]))

    ranking = ranking_metrics(
        score_user, train_all.users.ids, train_all.movies.ids, split.train, split.heldout
    )
    return Row(
        system=system.id,
        name=system.name,
        group=system.group,
        split=split.label,
        rmse=metrics["rmse"],
        mae=metrics["mae"],
        wall_seconds=walls,
        cpu_seconds=cpus,
        n_fallback=metrics["n_fallback"],
        epochs=selection.epochs,
        # bpmf has no early stopping, hence no validation slice in its run.
        validation_rmse=float(min(selection.history["val_rmse"]))
        if "val_rmse" in selection.history
        else None,
        ranking=ranking,
        config=config.model_dump(mode="json"),
    )


def run_notebook(system: System, split: Split, quick: bool) -> Row:
    """The notebook's original configuration: fixed epochs at Adam 0.001, batch 64, no early stopping."""
    import keras

    from movierec.models import ModelConfig
    from training.config import TrainConfig
    from training.pipeline import Indexed, evaluate, fit

    kind = system.kind
    epochs = 1 if quick else NOTEBOOK_EPOCHS[kind]
    model = ModelConfig(
        kind=kind,
        n_factors=50,
        l2_factors=1e-4,
        l2_bias=0.0,
        regularization="weights",
        squash_output=False,
        dropout_input=0.3,
        hidden_units=70,
        dropout_hidden=0.75,
    )
    config = TrainConfig(
        model=model,
        seed=split.seed,
        split=split.kind,
        batch_size=64,
        learning_rate=0.001,
        lr_schedule="constant",
        epochs=epochs,
        refit=False,
    )
    train_all = Indexed.from_frame(split.train)
    fitted, walls, cpus = timed(
        lambda: fit(
            config, train_all, split.data.rating_scale, validation=None, schedule=[0.001] * epochs, verbose=0
        ),
        1,
        before=keras.backend.clear_session,
    )
    metrics = evaluate(fitted, split.heldout)
    return Row(
        system=system.id,
        name=f"notebook {kind} (batch 64, {epochs} epochs)",
        group=system.group,
        split=split.label,
        rmse=metrics["rmse"],
        mae=metrics["mae"],
        wall_seconds=walls,
        cpu_seconds=cpus,
        n_fallback=metrics["n_fallback"],
        epochs=epochs,
        config=config.model_dump(mode="json"),
    )


def run_popularity(system: System, split: Split, repeats: int) -> Row:
    """Rank every user's candidates by train rating count (no rating predictions)."""
    movie_ids = np.unique(split.train["movie_id"].to_numpy())
    user_ids = np.unique(split.train["user_id"].to_numpy())
    scores, walls, cpus = timed(lambda: popularity_scores(split.train, movie_ids), repeats)
    ranking = ranking_metrics(lambda u: scores, user_ids, movie_ids, split.train, split.heldout)
    return Row(
        system=system.id,
        name=system.name,
        group=system.group,
        split=split.label,
        rmse=None,
        mae=None,
        wall_seconds=walls,
        cpu_seconds=cpus,
        ranking=ranking,
        config={"score": "number of train ratings of the movie"},
    )


_MEMORY_PROBE = """
import json, sys
from pathlib import Path


def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


sys.path.insert(0, sys.argv[2])
from movierec.artifacts import load_bundle
from movierec.recommender import Recommender

before = rss()
recommender = Recommender(load_bundle(sys.argv[1]))
recommender.recommend(int(recommender.bundle.user_ids.ids[0]), 10)
print(json.dumps({"rss_before_load_bytes": before, "rss_after_recommender_bytes": rss()}))
"""


def served_memory(run_dir: Path) -> dict[str, int]:
    """VmRSS of a fresh process (movierec imported) before and after loading the artifact into a `Recommender`
    and asking for one list: the service's own footprint, free of the bench's freed-and-reused training memory.
    """
    import subprocess

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(run_dir), str(root)],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
    )
    out: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    out["rss_delta_bytes"] = out["rss_after_recommender_bytes"] - out["rss_before_load_bytes"]
    return out


def served_config(split: Split, quick: bool) -> Any:
    """The default `python -m training train --no-refit` configuration (with its ranker) on the split."""
    from training.config import TrainConfig

    overrides: dict[str, Any] = {
        "seed": split.seed,
        "split": split.kind,
        "train_fraction": split.train_fraction,
        "refit": False,
    }
    if quick:
        overrides["epochs"] = 4
    return TrainConfig.for_kind(SERVED_KIND, **overrides)  # type: ignore[arg-type]


def served_command(split: Split, data_path: str, quick: bool) -> str:
    return (
        f"python -m training train --data {shlex.quote(data_path)} --seed {split.seed} --split {split.kind} "
        "--no-refit" + (" --epochs 4" if quick else "")
    )


def run_served(system: System, split: Split, quick: bool) -> Row:
    """The default artifact as `python -m training train --no-refit` writes it, loaded as the service loads it,
    and ranked by the service's own `Recommender.recommend(user_id, 10)` for every held-out user."""
    import shutil
    import tempfile

    import keras

    from movierec.artifacts import load_bundle
    from movierec.recommender import Recommender
    from training.pipeline import train_run

    config = served_config(split, quick)
    # train_run splits the data itself: it must be the bench's split, row for row.
    mask = split_mask(split.data.ratings, config.split, config.seed, config.train_fraction)
    if not split.data.ratings[mask].reset_index(drop=True).equals(split.train):
        raise RuntimeError(f"train_run's {config.split} split (seed {config.seed}) differs from the bench's")
    out = Path(tempfile.mkdtemp(prefix="accuracy-served-"))
    try:
        result, walls, cpus = timed(
            lambda: train_run(split.data, config, out, verbose=0, update_latest=False),
            1,
            before=keras.backend.clear_session,
        )
        bundle = load_bundle(result.run_dir)
        recommender = Recommender(bundle)
        users, movies = bundle.user_ids.ids, bundle.movie_ids.ids
        rankings: set[str] = set()

        def list_user(u: int) -> NDArray[Any]:
            ranked = recommender.recommend(int(users[u]), TOP_K)
            rankings.add(str(getattr(ranked, "ranking", None) or "predicted rating"))
            return ranked.movie_index

        ranking = list_ranking_metrics(list_user, users, movies, split.train, split.heldout)
        metrics = bundle.manifest.metrics
        factors = bundle.arrays.get("ranker_factors")
        manifest_ranker = getattr(bundle.manifest, "ranker", None)
        extra = {
            "ranking": sorted(rankings),
            "ranker": manifest_ranker.model_dump(mode="json")
            if hasattr(manifest_ranker, "model_dump")
            else manifest_ranker,
            "ranker_factors_bytes": None if factors is None else int(factors.nbytes),
            "ranker_arrays_bytes": int(
                sum(a.nbytes for name, a in bundle.arrays.items() if name.startswith("ranker_"))
            ),
            "arrays_bytes": int(sum(a.nbytes for a in bundle.arrays.values())),
            **served_memory(result.run_dir),
            "artifact_bytes": int(sum(f.stat().st_size for f in result.run_dir.rglob("*") if f.is_file())),
        }
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return Row(
        system=system.id,
        name=system.name,
        group=system.group,
        split=split.label,
        rmse=float(metrics["rmse"]),
        mae=float(metrics["mae"]) if "mae" in metrics else None,
        wall_seconds=walls,
        cpu_seconds=cpus,
        n_fallback=int(metrics.get("n_fallback", 0)),
        ranking=ranking,
        config=config.model_dump(mode="json"),
        extra=extra,
    )


# ---- Surprise ------------------------------------------------------------------------------------------


def surprise_algorithm(system_id: str, seed: int, quick: bool) -> tuple[Callable[[], Any], dict[str, Any]]:
    import surprise

    tuned = {"n_factors": 400, "n_epochs": 2 if quick else 180, "lr_all": 0.004, "reg_all": 0.1}
    knn = {"k": 40, "sim_options": {"name": "pearson_baseline", "user_based": False}}
    svdpp = {"n_epochs": 2} if quick else {}
    factories: dict[str, tuple[Callable[[], Any], dict[str, Any]]] = {
        "svd-tuned": (lambda: surprise.SVD(**tuned, random_state=seed), tuned),
        "svd": (lambda: surprise.SVD(random_state=seed), {}),
        "svdpp-surprise": (lambda: surprise.SVDpp(**svdpp, random_state=seed, cache_ratings=True), svdpp),
        "knn-baseline": (lambda: surprise.KNNBaseline(**knn, verbose=False), knn),
        "baseline-only": (lambda: surprise.BaselineOnly(verbose=False), {}),
    }
    return factories[system_id]


def surprise_item_scores(algo: Any, trainset: Any) -> Callable[[int], NDArray[Any]] | None:
    """A user's raw scores of every inner item (rank-equivalent to Surprise's estimate), or None (KNN)."""
    import surprise

    if isinstance(algo, surprise.SVDpp):
        implicit = np.zeros_like(algo.pu)
        for u in range(trainset.n_users):
            items = [j for j, _ in trainset.ur[u]]
            implicit[u] = algo.yj[items].sum(axis=0) / np.sqrt(len(items))
        part = algo.bi[None, :] + (algo.pu + implicit) @ algo.qi.T
        return lambda u: part[u]
    if isinstance(algo, surprise.SVD):
        part = algo.bi[None, :] + algo.pu @ algo.qi.T
        return lambda u: part[u]
    if isinstance(algo, surprise.BaselineOnly):
        return lambda u: algo.bi
    return None  # KNNBaseline: one prediction per (user, movie) pair, too slow for whole catalogues


def run_surprise(system: System, split: Split, repeats: int, quick: bool) -> Row:
    import surprise

    factory, params = surprise_algorithm(system.id, split.seed, quick)
    reader = surprise.Reader(rating_scale=split.data.rating_scale)
    trainset = surprise.Dataset.load_from_df(
        split.train[["user_id", "movie_id", "rating"]], reader
    ).build_full_trainset()

    def fit() -> Any:
        algo = factory()
        algo.fit(trainset)
        return algo

    algo, walls, cpus = timed(fit, repeats)
    held = split.heldout
    predictions = np.fromiter(
        (
            algo.predict(u, m).est
            for u, m in zip(held["user_id"].to_numpy(), held["movie_id"].to_numpy(), strict=True)
        ),
        dtype=np.float64,
        count=len(held),
    )
    actual = held["rating"].to_numpy(np.float64)
    ranking = None
    score_user = surprise_item_scores(algo, trainset)
    if score_user is not None:
        user_ids = np.array([trainset.to_raw_uid(i) for i in range(trainset.n_users)])
        movie_ids = np.array([trainset.to_raw_iid(i) for i in range(trainset.n_items)])
        ranking = ranking_metrics(score_user, user_ids, movie_ids, split.train, split.heldout)
    return Row(
        system=system.id,
        name=system.name,
        group=system.group,
        split=split.label,
        rmse=rmse(predictions, actual),
        mae=mae(predictions, actual),
        wall_seconds=walls,
        cpu_seconds=cpus,
        ranking=ranking,
        config=params,
    )


# ---- environment ---------------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    """Library versions (as training manifests record them), CPUs and every thread setting behind the timings."""
    import keras

    from training.environment import library_versions

    env: dict[str, Any] = {
        **library_versions(optional=["surprise"]),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }
    threads: dict[str, Any] = {"cpu_count": os.cpu_count()}
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        # 0 means TensorFlow's default: a pool sized by the number of cores.
        threads["tf_intra_op"] = tf.config.threading.get_intra_op_parallelism_threads()
        threads["tf_inter_op"] = tf.config.threading.get_inter_op_parallelism_threads()
    threads["surprise"] = 1  # pure single-threaded Cython loops
    threads["env"] = {name: os.environ.get(name) for name in THREAD_ENV}
    try:
        from threadpoolctl import threadpool_info

        threads["blas"] = [
            {k: pool.get(k) for k in ("internal_api", "num_threads", "version")} for pool in threadpool_info()
        ]
    except ImportError:
        threads["blas"] = "threadpoolctl not installed"
    env["threads"] = threads
    return env


# ---- report --------------------------------------------------------------------------------------------


def _fmt(x: float | None, digits: int = 4) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def _spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{np.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def render_markdown(report: dict[str, Any]) -> str:
    rows = [Row(**r) for r in report["rows"]]
    meta = report["meta"]
    env = meta["environment"]
    threads = env.get("threads", {})
    splits = meta["splits"]
    first = splits[0]
    by = {(r.system, r.split): r for r in rows}
    order = list(dict.fromkeys(r.system for r in rows))
    names = {r.system: r.name for r in rows}
    tf_threads = threads.get("tf_intra_op", "?")
    tf_note = f"TensorFlow intra-op threads {tf_threads}" + (
        " (= its default, one per core)" if tf_threads == 0 else ""
    )
    lines = [
        "# Accuracy, ranking and training speed",
        "",
        f"Generated by `{meta['command']}` on {meta['created_at']} in {meta['seconds'] / 60:.1f} min "
        f"({env['cpu_count']} CPUs, {env['platform']}; Keras {env['keras']} on {env['keras_backend']}"
        + (f", Surprise {env['surprise']}" if "surprise" in env else "")
        + ")"
        + (". **--quick: 1 epoch / few sweeps / 1 repeat, numbers meaningless**" if meta["quick"] else "")
        + ".",
        "",
        f"Data: `{meta['data']['path']}` ({meta['data']['layout']} layout, {meta['data']['n_ratings']:,} ratings). "
        "Splits: "
        + "; ".join(
            f"`{s['label']}` ({s['n_train']:,} train / {s['n_heldout']:,} held-out)"
            for s in meta["split_sizes"]
        )
        + ". `random:SEED`: each rating is train with probability "
        f"{meta['train_fraction']:.0%}; `temporal`: each user's latest {1 - meta['train_fraction']:.0%} held out "
        "(training seed 42). The notebook reference rows ran on "
        f"`{first}` only (slow), if at all.",
        "",
        "## Held-out accuracy per split",
        "",
        "Project models through the service's numpy scorer; every project row is `python -m training train "
        "--no-refit` with the defaults of training/config.py (commands below). Epochs and validation RMSE are "
        f"those of the `{first}` run (validation slice of train; early stopping).",
        "",
        "| system | " + " | ".join(f"RMSE {s} | MAE {s}" for s in splits) + " | epochs | validation RMSE |",
        "|---|" + "---:|---:|" * len(splits) + "---:|---:|",
    ]
    acc = [s for s in order if any(by.get((s, sp)) and by[(s, sp)].rmse is not None for sp in splits)]

    def first_rmse(s: str) -> float:
        r = next((by[(s, sp)] for sp in splits if (s, sp) in by and by[(s, sp)].rmse is not None), None)
        return r.rmse if r is not None and r.rmse is not None else float("inf")

    for s in sorted(acc, key=first_rmse):
        cells = []
        for sp in splits:
            r = by.get((s, sp))
            cells += [_fmt(r.rmse) if r else "", _fmt(r.mae) if r else ""]
        r0 = by.get((s, first))
        lines.append(
            f"| {names[s]} | "
            + " | ".join(cells)
            + f" | {'' if r0 is None or r0.epochs is None else r0.epochs} | {_fmt(r0.validation_rmse if r0 else None)} |"
        )
    # ---- timing
    ref = by.get((REFERENCE, first))
    lines += [
        "",
        f"## Fit time (`{first}`, {meta['repeats']} runs each: median (min-max))",
        "",
        "Wall: `time.perf_counter` around the fit call. CPU: `time.process_time` over the same call, which sums "
        "every thread of the process (TensorFlow's and BLAS's pools count). Surprise is single-threaded; "
        f"TensorFlow and numpy/BLAS are not ({tf_note}; {env['cpu_count']} CPUs). So wall seconds favour the "
        "multi-threaded systems; **speed comparisons here are made on CPU seconds**. "
        f"CPU ratio: CPU seconds / {names.get(REFERENCE, REFERENCE)}'s. Other splits: one run each.",
        "",
        "| system | wall s | CPU s | CPU/wall | CPU ratio | "
        + " | ".join(f"wall / CPU s {sp}" for sp in splits[1:])
        + (" |" if len(splits) > 1 else "|"),
        "|---|---:|---:|---:|---:|" + "---:|" * (len(splits) - 1),
    ]
    for s in order:
        r = by.get((s, first))
        if r is None:
            continue
        ratio = _fmt(r.cpu / ref.cpu, 2) if ref and ref.cpu > 0 else ""
        others = []
        for sp in splits[1:]:
            o = by.get((s, sp))
            others.append(f"{o.wall:.1f} / {o.cpu:.1f}" if o else "")
        lines.append(
            f"| {r.name} | {_spread(r.wall_seconds)} | {_spread(r.cpu_seconds)} | "
            f"{r.cpu / r.wall if r.wall > 0 else 0:.2f} | {ratio} | "
            + " | ".join(others)
            + (" |" if others else "")
        )
    # ---- ablation
    lines += [
        "",
        "## Side features: ablation",
        "",
        "Each kind with its default side features (genres, release decade, who-rated-what) and without, each "
        "with its own defaults (`KIND_DEFAULTS_WITHOUT_SIDE_FEATURES`, chosen by bench/tune.py). "
        "Δ = with - without (negative: side features help).",
        "",
        "| kind | split | RMSE with | RMSE without | Δ RMSE | NDCG@10 with | NDCG@10 without |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for kind in SIDE_FEATURE_KINDS:
        for sp in splits:
            w, wo = by.get((kind, sp)), by.get((f"{kind}-noside", sp))
            if w is None or wo is None or w.rmse is None or wo.rmse is None:
                continue
            nd = f"ndcg@{TOP_K}"
            lines.append(
                f"| {kind} | {sp} | {w.rmse:.4f} | {wo.rmse:.4f} | {w.rmse - wo.rmse:+.4f} | "
                f"{_fmt((w.ranking or {}).get(nd))} | {_fmt((wo.ranking or {}).get(nd))} |"
            )
    # ---- ranking
    k = TOP_K
    titles = meta.get("titles", {})
    for sp in splits:
        ranked = [by[(s, sp)] for s in order if (s, sp) in by and by[(s, sp)].ranking]
        if not ranked:
            continue
        n_users = ranked[0].ranking["n_users"]  # type: ignore[index]
        lines += [
            "",
            f"## Top-{k} ranking, `{sp}`",
            "",
            f"Relevant = held-out rating >= {RELEVANT_RATING:g}; candidates = every movie seen in train that the "
            f"user did not rate in train; {n_users} held-out users with a relevant candidate. Ranked by the "
            "model's raw score; the served row: the lists `Recommender.recommend(user_id, 10)` returns. "
            f"Coverage: distinct movies in all {n_users} lists; rare: share of listed movies "
            f"with < {LONG_TAIL} train ratings; top movie: share of users whose list holds the most-listed movie. "
            "Surprise KNNBaseline has no whole-catalogue scores (one prediction per pair), so no ranking.",
            "",
            f"| system | NDCG@{k} | recall@{k} | precision@{k} | coverage | rare | top movie |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for r in sorted(ranked, key=lambda r: -r.ranking[f"ndcg@{k}"]):  # type: ignore[index]
            m = r.ranking or {}
            top = m.get("top_movie")
            title = titles.get(str(top), "")
            lines.append(
                f"| {r.name} | {m[f'ndcg@{k}']:.4f} | {m[f'recall@{k}']:.4f} | {m[f'precision@{k}']:.4f} | "
                f"{m['coverage']} | {m['long_tail_share']:.3f} | {m['top_movie_share']:.2f} ({top} {title}) |"
            )
        lines += _ranking_notes(by, sp)
    lines += _ranking_side_by_side(by, order, splits)
    served_targets = report.get("served_targets")
    if served_targets:
        lines += [
            "",
            "## Targets (issue 13): the served top-10 lists, per split",
            "",
            f"The default artifact's lists as the service returns them (`Recommender.recommend(user_id, {k})`), "
            "against EASE^R fitted on the same train rows (λ chosen on a validation slice of train). "
            "Goal for NDCG@10 and recall@10: >= 1.1 x EASE^R.",
            "",
            "| split | target | measured | met |",
            "|---|---|---|:-:|",
        ]
        for t in served_targets:
            lines.append(
                f"| `{t['split']}` | {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |"
            )
    targets = report.get("targets")
    if targets:
        lines += [
            "",
            f"## Targets (issue 4), on `{first}`",
            "",
            "Speed compares CPU seconds (median): Surprise runs one thread, TensorFlow several "
            f"({tf_note}), so wall seconds would flatter TensorFlow.",
            "",
            "| target | measured | met |",
            "|---|---|:-:|",
        ]
        for t in targets:
            lines.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |")
    lines += [
        "",
        "## Environment",
        "",
        "| | |",
        "|---|---|",
    ]
    for key in (
        "movierec",
        "python",
        "numpy",
        "pandas",
        "keras",
        "keras_backend",
        "tensorflow",
        "surprise",
        "platform",
    ):
        if key in env:
            lines.append(f"| {key} | {env[key]} |")
    lines.append(f"| CPUs (`os.cpu_count()`) | {threads.get('cpu_count')} |")
    if "tf_intra_op" in threads:
        lines.append(
            f"| TensorFlow intra-op / inter-op threads | {threads['tf_intra_op']} / {threads['tf_inter_op']} "
            "(0 = TensorFlow's default, sized by the cores) |"
        )
    lines.append("| Surprise threads | 1 |")
    env_vars = ", ".join(f"{k}={v}" for k, v in threads.get("env", {}).items() if v is not None) or "none set"
    lines.append(f"| thread env vars | {env_vars} |")
    blas = threads.get("blas")
    if isinstance(blas, list):
        lines.append(
            "| native thread pools (threadpoolctl) | "
            + ", ".join(f"{p['internal_api']} {p['version']}: {p['num_threads']}" for p in blas)
            + " |"
        )
    elif blas:
        lines.append(f"| native thread pools | {blas} |")
    lines += ["", "## Reproduce a row", ""]
    lines.append("| system | command |")
    lines.append("|---|---|")
    for s in order:
        r = by.get((s, first))
        if r is not None:
            lines.append(f"| {r.name} | {'<br>'.join(f'`{c}`' for c in r.reproduce)} |")
    lines += [
        "",
        "Other splits: the same with `--seed` / `--split`, or `--splits` for the bench. Configurations of every "
        "row are in `accuracy.json`.",
        "",
    ]
    return "\n".join(lines)


def _mib(n: Any) -> str:
    return "" if n is None else f"{n / 2**20:.1f} MiB"


def _ranking_notes(by: dict[tuple[str, str], Row], split: str) -> list[str]:
    """EASE^R's λ choice and the served artifact's figures under a split's ranking table."""
    out = []
    nd = f"ndcg@{TOP_K}"
    ease = by.get(("ease", split))
    if ease is not None and ease.extra:
        val = ease.extra.get(f"validation_{nd}", {})
        out.append(
            f"EASE^R: λ {ease.extra.get('l2', 0):g} chosen by validation NDCG@{TOP_K} ("
            + ", ".join(f"λ {k}: {v:.4f}" for k, v in val.items())
            + f"; {ease.extra.get('n_validation', 0):,} validation ratings); fit "
            f"{_spread(ease.wall_seconds)} s wall, {_spread(ease.cpu_seconds)} s CPU (whole λ search included)."
        )
    served = by.get(("served", split))
    if served is not None and served.extra:
        x = served.extra
        out.append(
            f"Served lists: ranked by {', '.join(x.get('ranking') or ['?'])}; held-out RMSE "
            f"{_fmt(served.rmse)}; ranker_factors {_mib(x.get('ranker_factors_bytes'))} (all ranker arrays "
            f"{_mib(x.get('ranker_arrays_bytes'))}, all scoring arrays {_mib(x.get('arrays_bytes'))}, artifact "
            f"{_mib(x.get('artifact_bytes'))} on disk); a fresh process's RSS grows by "
            f"{_mib(x.get('rss_delta_bytes'))} for load_bundle + Recommender + one list "
            f"({_mib(x.get('rss_after_recommender_bytes'))} after); train_run "
            f"{_spread(served.wall_seconds)} s wall, {_spread(served.cpu_seconds)} s CPU."
        )
    return ["", *(f"{line}\n" for line in out)] if out else []


def _ranking_side_by_side(by: dict[tuple[str, str], Row], order: list[str], splits: list[str]) -> list[str]:
    k = TOP_K
    nd, rc = f"ndcg@{k}", f"recall@{k}"
    ranked = [s for s in order if any((s, sp) in by and by[(s, sp)].ranking for sp in splits)]
    if not ranked:
        return []

    def first_ndcg(s: str) -> float:
        r = next((by[(s, sp)] for sp in splits if (s, sp) in by and by[(s, sp)].ranking), None)
        return -(r.ranking or {}).get(nd, 0.0) if r is not None else 0.0

    ranked.sort(key=first_ndcg)
    lines = [
        "",
        "## Ranking, all splits side by side",
        "",
        f"NDCG@{k} / recall@{k} per split, and NDCG@{k} as a multiple of EASE^R's on the same split (× EASE^R); "
        f"best NDCG@{k} on `{splits[0]}` first.",
        "",
        "| system | "
        + " | ".join(f"NDCG@{k} {sp} | recall@{k} {sp} | × EASE^R {sp}" for sp in splits)
        + " |",
        "|---|" + "---:|---:|---:|" * len(splits),
    ]
    for s in ranked:
        cells, name = [], ""
        for sp in splits:
            r = by.get((s, sp))
            ease = by.get(("ease", sp))
            m = r.ranking if r is not None and r.ranking else None
            if r is not None:
                name = name or r.name
            base = ease.ranking[nd] if ease is not None and ease.ranking else None
            cells += [
                _fmt(m[nd]) if m else "",
                _fmt(m[rc]) if m else "",
                _fmt(m[nd] / base, 2) if m and base else "",
            ]
        if s == "ease":
            name = "EASE^R (λ per split, on validation)"
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def check_served_targets(rows: list[Row], splits: list[str]) -> list[dict[str, Any]]:
    """Issue 13, per split: the served lists against EASE^R, their concentration, and the artifact's RMSE."""
    k = TOP_K
    out: list[dict[str, Any]] = []
    for sp in splits:
        by = {r.system: r for r in rows if r.split == sp}
        served, ease = by.get("served"), by.get("ease")
        if served is None or not served.ranking:
            continue
        m = served.ranking
        for metric in (f"ndcg@{k}", f"recall@{k}"):
            if ease is None or not ease.ranking:
                continue
            base = ease.ranking[metric]
            ratio = m[metric] / base if base > 0 else float("inf")
            out.append(
                {
                    "split": sp,
                    "target": f"served {metric.replace('ndcg', 'NDCG')} >= EASE^R's (goal 1.1 x)",
                    "measured": f"{m[metric]:.4f} vs {base:.4f}: {ratio:.2f} x"
                    + ("" if ratio >= 1.1 else " (below the 1.1 x goal)"),
                    "met": bool(m[metric] >= base),
                    "ratio": ratio,
                }
            )
        out.append(
            {
                "split": sp,
                "target": f"share of listed movies with < {LONG_TAIL} train ratings <= 5%",
                "measured": f"{m['long_tail_share']:.1%}",
                "met": bool(m["long_tail_share"] <= 0.05),
            }
        )
        out.append(
            {
                "split": sp,
                "target": "share of users whose list holds the most-listed movie <= 35%",
                "measured": f"{m['top_movie_share']:.1%} (movie {m['top_movie']})",
                "met": bool(m["top_movie_share"] <= 0.35),
            }
        )
        rated = [r for r in by.values() if r.system != "served" and r.rmse is not None]
        if served.rmse is not None and rated:
            best = min(rated, key=lambda r: r.rmse or 0.0)
            gap = served.rmse - (best.rmse or 0.0)
            out.append(
                {
                    "split": sp,
                    "target": "artifact's held-out RMSE within 0.005 of the best rating model",
                    "measured": f"{served.rmse:.4f} vs {best.rmse:.4f} ({best.name}): {gap:+.4f}",
                    "met": bool(gap <= 0.005),
                }
            )
    return out


def check_targets(rows: list[Row], split: str) -> list[dict[str, Any]]:
    by = {r.system: r for r in rows if r.split == split}
    ref = by.get(REFERENCE)
    out = []
    for kind, bound in (("bias", 0.865), ("nn", 0.875), ("svdpp", 0.855), ("bpmf", 0.855)):
        r = by.get(kind)
        if r is None or r.rmse is None:
            continue
        text = f"{kind}: held-out RMSE <= {bound}"
        met = r.rmse <= bound
        measured = f"{r.rmse:.4f}"
        if ref is not None and kind in ("bias", "nn"):
            text += f" in less fit CPU time than {ref.name} (single-threaded; TensorFlow multi-threaded)"
            met = met and r.cpu < ref.cpu
            measured += f", CPU {r.cpu:.1f} s vs {ref.cpu:.1f} s (wall {r.wall:.1f} s vs {ref.wall:.1f} s)"
        else:  # the extra kinds: the bar is accuracy, beating every reference, with the fit time reported
            others = [
                x.rmse for x in by.values() if x.group in ("surprise", "notebook") and x.rmse is not None
            ]
            if others:
                text += " and below every reference"
                met = met and r.rmse < min(others)
                measured += f" (best reference {min(others):.4f}); fit CPU {r.cpu:.1f} s, wall {r.wall:.1f} s"
        out.append({"target": text, "measured": measured, "met": bool(met)})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="MovieLens directory (any layout)")
    parser.add_argument(
        "--splits",
        nargs="+",
        default=list(DEFAULT_SPLITS),
        help="random:SEED or temporal; the first is the one timed --repeats times (and the notebook's)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="fits timed per system on the first split")
    parser.add_argument("--train-fraction", type=float, default=0.8)
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--name", default="accuracy", help="report file stem")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 1 epoch / 4 sweeps / 1 repeat everywhere (numbers meaningless)",
    )
    parser.add_argument("--skip-notebook", action="store_true", help="leave out the slow notebook rows")
    all_systems = systems()
    parser.add_argument(
        "--systems", nargs="+", default=None, choices=[s.id for s in all_systems], help="only these systems"
    )
    parser.add_argument(
        "--tf-threads",
        type=int,
        default=None,
        help="TensorFlow intra- and inter-op threads (default: TensorFlow's own; 1 for single-thread wall times)",
    )
    args = parser.parse_args(argv)
    for spec in args.splits:
        parse_split(spec)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("training.pipeline").setLevel(logging.WARNING)
    if args.tf_threads is not None:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.tf_threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.tf_threads)
    repeats = 1 if args.quick else args.repeats
    chosen = [
        s
        for s in all_systems
        if (args.systems is None or s.id in args.systems)
        and not (args.skip_notebook and s.group == "notebook")
    ]

    started = time.perf_counter()
    data = load_ratings(args.data)
    splits = [make_split(data, spec, args.train_fraction) for spec in args.splits]
    command = "python bench/accuracy.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    titles = (
        data.movies.drop_duplicates("movie_id").set_index("movie_id")["title"] if len(data.movies) else None
    )
    rows: list[Row] = []
    meta: dict[str, Any] = {
        "command": command,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": 0.0,
        "environment": environment(),
        "data": {"path": str(args.data), "layout": data.layout, "n_ratings": len(data.ratings)},
        "splits": [s.label for s in splits],
        "split_sizes": [
            {"label": s.label, "n_train": len(s.train), "n_heldout": len(s.heldout)} for s in splits
        ],
        "train_fraction": args.train_fraction,
        "repeats": repeats,
        "quick": args.quick,
        "titles": {},
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.output_dir / f"{args.name}.json"
    md_path = args.output_dir / f"{args.name}.md"

    def write_report() -> None:
        meta["seconds"] = round(time.perf_counter() - started, 1)
        if titles is not None:
            tops = {r.ranking["top_movie"] for r in rows if r.ranking and r.ranking["top_movie"] is not None}
            meta["titles"] = {str(t): str(titles.get(t, "")) for t in sorted(tops)}
        report = {
            "meta": meta,
            "rows": [asdict(r) for r in rows],
            "targets": check_targets(rows, splits[0].label),
            "served_targets": check_served_targets(rows, [s.label for s in splits]),
        }
        json_path.write_text(json.dumps(report, indent=2, default=float) + "\n")
        md_path.write_text(render_markdown(report))

    def record(row: Row, system: System, split: Split) -> None:
        bench = (
            f"python bench/accuracy.py --data {shlex.quote(str(args.data))} --splits {split.label} "
            f"--systems {system.id} --repeats 1" + (" --quick" if args.quick else "")
        )
        row.reproduce = [bench]
        if system.group in ("project", "ablation"):
            row.reproduce.insert(0, train_command(system, split, str(args.data), args.quick))
        elif system.group == "served":
            row.reproduce.insert(0, served_command(split, str(args.data), args.quick))
        rows.append(row)
        log.info(
            "%-10s %-46s RMSE %s  wall %.1f s  CPU %.1f s",
            split.label,
            row.name,
            _fmt(row.rmse),
            row.wall,
            row.cpu,
        )
        write_report()  # after every row, so an interrupted run still leaves what it measured

    for i, split in enumerate(splits):
        n = repeats if i == 0 else 1
        log.info(
            "split %s: %d train / %d held-out ratings", split.label, len(split.train), len(split.heldout)
        )
        for system in chosen:
            if system.group == "surprise":
                record(run_surprise(system, split, n, args.quick), system, split)
            elif system.group == "popularity":
                record(run_popularity(system, split, n), system, split)
            elif system.group in ("project", "ablation"):
                record(run_project(system, split, n, args.quick), system, split)
            elif system.group == "ease":
                record(run_ease(system, split, n), system, split)
            elif system.group == "served":
                record(run_served(system, split, args.quick), system, split)
            elif i == 0:  # notebook: first split only
                record(run_notebook(system, split, args.quick), system, split)
    write_report()
    print(md_path.read_text())
    print(f"wrote {md_path} and {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
