"""Hyper-parameter search that chose the training defaults, on validation slices of train only.

    python bench/tune.py --data ../shared/data/ml-latest-small [--searches bias bias-noside ...] [--quick]

For every search (a model kind, with or without side features) it scores today's defaults
(`training.config.KIND_DEFAULTS`; for the `-noside` searches those same defaults with `side_features=False`, i.e.
what `--no-side-features` gave before it had defaults of its own), then walks a coarse grid one axis at a time
(coordinate search, one pass) from a start point (today's defaults, or as commented in SEARCHES): every value of
the first axis with the others at the current best, keep the best, then the next axis. Each point is one fit,
scored by its RMSE on the validation slice:

- the split is `movierec.split` random 80 % train at `--seed` (42); held-out rows are dropped at once and never
  read;
- the validation slice is `training.pipeline.carve_validation` of that train split (10 %, the slice early
  stopping uses in `python -m training train`); the model is fitted on the rest of train, with early stopping on
  the slice for the gradient kinds (as the selection fit of a training run) and a fixed number of Gibbs sweeps
  for bpmf;
- the score is the RMSE of the exported model on the slice through the service's scorer (clipped to the rating
  scale), lower is better.

The chosen setting and today's defaults are then both scored again on the validation slice of a second seed's
split (`--confirm-seed`, 7), which no choice looked at. Every point is printed and logged to
`bench/results/tuning.json` and `tuning.md` (or `--output-dir`). The search measures accuracy, not time: it can
share the machine. About 15 minutes on two cores for all searches.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from movierec.data import RatingsData, load_ratings
from movierec.split import split_mask
from training.config import TrainConfig
from training.metrics import rmse

log = logging.getLogger("bench.tune")

Value = float | int | str | bool | tuple[int, int]


@dataclass(frozen=True)
class Search:
    """One kind's search: today's defaults plus `base` changes, then each axis in turn."""

    name: str
    kind: str
    axes: tuple[tuple[str, tuple[Value, ...]], ...]
    base: dict[str, Value] = field(default_factory=dict)


# Axis names are TrainConfig fields, "model.FIELD" for ModelConfig fields, and "sweeps/burn_in" for bpmf's
# (epochs, burn_in) pair. The first values of the axes are where the search starts: today's defaults, except
# where a comment says otherwise. Today's defaults are scored as well in any case (the "today" point).
SEARCHES: tuple[Search, ...] = (
    Search(
        "dot",
        "dot",
        (("model.l2_factors", (1e-4, 3e-5, 3e-4)), ("model.n_factors", (50, 32))),
    ),
    Search(
        "bias",
        "bias",
        (
            ("model.l2_factors", (4e-4, 2e-4, 8e-4)),
            ("model.side_l2", (4e-2, 1e-2, 1.6e-1)),
            ("learning_rate", (0.03, 0.01)),
            ("model.n_factors", (32, 64)),
        ),
    ),
    # Without side features the side-feature defaults overfit in 2-3 epochs (validation RMSE ~0.92): this search
    # starts from bias's defaults before side features existed (batch 1024, Adam 0.01, L2 1e-4, width 50).
    Search(
        "bias-noside",
        "bias",
        (
            ("batch_size", (1024,)),
            ("model.l2_factors", (1e-4, 3e-5, 3e-4)),
            ("model.l2_bias", (1e-4, 3e-5, 3e-4)),
            ("model.n_factors", (50, 32)),
            ("learning_rate", (0.01, 0.003, 0.03)),
        ),
        base={"model.side_features": False},
    ),
    Search(
        "nn",
        "nn",
        (
            ("model.l2_factors", (4e-4, 2e-4, 8e-4)),
            ("model.side_l2", (4e-2, 1e-2, 1.6e-1)),
            ("model.dropout_hidden", (0.5, 0.3, 0.7)),
        ),
    ),
    Search(
        "nn-noside",
        "nn",
        (
            ("model.l2_factors", (4e-4, 1e-4, 1e-3)),
            ("model.dropout_hidden", (0.5, 0.3, 0.7)),
            ("model.dropout_input", (0.2, 0.4)),
            ("model.n_factors", (16, 32)),
            ("learning_rate", (0.03, 0.01)),
        ),
        base={"model.side_features": False},
    ),
    Search(
        "svdpp",
        "svdpp",
        (("model.l2_implicit", (3e-4, 1e-4, 1e-3)), ("model.l2_factors", (2e-4, 4e-4))),
    ),
    Search(
        "bpmf",
        "bpmf",
        (
            ("model.n_factors", (10, 5, 15)),
            ("model.prior_precision", (4.0, 2.0, 8.0)),
            ("model.noise_precision", (1.6, 1.2, 2.0)),
            ("model.side_l2", (1.0, 0.25, 4.0)),
            ("sweeps/burn_in", ((100, 20), (60, 10), (150, 30))),
        ),
    ),
    Search(
        "bpmf-noside",
        "bpmf",
        (
            ("model.n_factors", (10, 5, 15)),
            ("model.prior_precision", (4.0, 2.0, 8.0)),
            ("model.bias_prior_precision", (5.0, 2.5, 10.0)),
            ("model.noise_precision", (1.6, 1.2, 2.0)),
            ("sweeps/burn_in", ((100, 20), (60, 10), (150, 30))),
        ),
        base={"model.side_features": False},
    ),
)


@dataclass
class Point:
    """One fit of the log."""

    search: str
    seed: int
    params: dict[str, Any]
    validation_rmse: float
    epochs: int
    seconds: float
    role: str = "grid"  # today | grid | confirm-today | confirm-chosen


def configure(search: Search, seed: int, params: dict[str, Value], quick: bool) -> TrainConfig:
    """Today's defaults of the search's kind (never the no-side-features overlay) with `params` on top."""
    config = TrainConfig.for_kind(search.kind, seed=seed, refit=False)  # type: ignore[arg-type]
    dumped = config.model_dump()
    for name, value in {**search.base, **params}.items():
        if name == "sweeps/burn_in":
            sweeps, burn_in = value  # type: ignore[misc,str-unpack]
            dumped["epochs"], dumped["model"]["burn_in"] = sweeps, burn_in
        elif name.startswith("model."):
            dumped["model"][name.removeprefix("model.")] = value
        else:
            dumped[name] = value
    if quick:  # smoke test of the script: numbers meaningless
        if search.kind == "bpmf":
            dumped["epochs"], dumped["model"]["burn_in"] = 4, 2
        else:
            dumped["epochs"] = 1
    return TrainConfig.model_validate(dumped)


@dataclass
class SplitData:
    """Train rows of one seed's split carved into fit part and validation slice; held-out rows are gone."""

    seed: int
    fit_part: Any
    validation: tuple[Any, Any, Any]
    rating_scale: tuple[float, float]
    movies: Any


def validation_split(data: RatingsData, seed: int) -> SplitData:
    from training.pipeline import Indexed, carve_validation

    mask = split_mask(data.ratings, "random", seed, 0.8)
    train_all = Indexed.from_frame(data.ratings[mask].reset_index(drop=True))
    fit_part, validation = carve_validation(train_all, TrainConfig(seed=seed))
    return SplitData(seed, fit_part, validation, data.rating_scale, data.movies)


def score(config: TrainConfig, split: SplitData) -> tuple[float, int, float]:
    """(validation RMSE of the exported model, epochs or sweeps, fit seconds) of one fit."""
    from training.pipeline import fit

    started = time.perf_counter()
    fitted = fit(
        config,
        split.fit_part,
        split.rating_scale,
        validation=split.validation,
        movies=split.movies,
        verbose=0,
    )
    seconds = time.perf_counter() - started
    v_u, v_m, v_r = split.validation
    predicted, _ = fitted.scorer().predict(np.asarray(v_u, np.int64), np.asarray(v_m, np.int64))
    return rmse(predicted, v_r), int(fitted.epochs), seconds


def run_search(
    search: Search, split: SplitData, confirm: SplitData, quick: bool, record: Any
) -> dict[str, Any]:
    """Coordinate search on `split`, then default and chosen on `confirm`; returns the search's summary."""
    best = {name: values[0] for name, values in search.axes}
    cache: dict[str, float] = {}  # by the whole resulting TrainConfig and seed: equal settings fit once

    def evaluate(params: dict[str, Value], on: SplitData, role: str) -> float:
        config = configure(search, on.seed, params, quick)
        key = config.model_dump_json()
        if key not in cache:
            value, epochs, seconds = score(config, on)
            record(Point(search.name, on.seed, _jsonable(params), value, epochs, round(seconds, 1), role))
            cache[key] = value
        return cache[key]

    today = evaluate({}, split, "today")  # today's defaults (with `base`: e.g. side features off)
    for name, values in search.axes:
        results = {value: evaluate({**best, name: value}, split, "grid") for value in values}
        best[name] = min(values, key=lambda v: results[v])
    chosen = evaluate(best, split, "grid")
    confirm_today = evaluate({}, confirm, "confirm-today")
    confirm_chosen = evaluate(best, confirm, "confirm-chosen")
    today_config = configure(search, split.seed, {}, quick).model_dump()
    chosen_config = configure(search, split.seed, best, quick).model_dump()
    return {
        "search": search.name,
        "kind": search.kind,
        "base": _jsonable(search.base),
        "chosen": _jsonable(best),
        "changed": _changes(today_config, chosen_config),
        f"today_rmse_seed{split.seed}": today,
        f"chosen_rmse_seed{split.seed}": chosen,
        f"today_rmse_seed{confirm.seed}": confirm_today,
        f"chosen_rmse_seed{confirm.seed}": confirm_chosen,
    }


def _changes(before: dict[str, Any], after: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Fields of `after` that differ from `before` (nested "model." fields flattened)."""
    out: dict[str, Any] = {}
    for key, value in after.items():
        if isinstance(value, dict):
            out.update(_changes(before.get(key, {}), value, f"{prefix}{key}."))
        elif before.get(key) != value:
            out[f"{prefix}{key}"] = value
    return out


def _jsonable(params: dict[str, Value]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


def overlay_of(summary: dict[str, Any]) -> dict[str, Any]:
    """The chosen setting as a KIND_DEFAULTS-style dict (what training/config.py takes)."""
    out: dict[str, Any] = {"model": {}}
    for name, value in {**summary["base"], **summary["chosen"]}.items():
        if name == "sweeps/burn_in":
            out["epochs"], out["model"]["burn_in"] = value
        elif name.startswith("model."):
            out["model"][name.removeprefix("model.")] = value
        else:
            out[name] = value
    return out


def render_markdown(report: dict[str, Any]) -> str:
    meta = report["meta"]
    s, c = meta["seed"], meta["confirm_seed"]
    lines = [
        "# Hyper-parameter search",
        "",
        f"Generated by `{meta['command']}` on {meta['created_at']} in {meta['seconds'] / 60:.1f} min"
        + (" (**--quick: numbers meaningless**)" if meta["quick"] else "")
        + ".",
        "",
        f"Every point is one fit on the fit part of the random split's train rows (seed {s}, 80 % train, "
        "held-out rows never read) minus the validation slice of `training.pipeline.carve_validation`, scored "
        "by the exported model's RMSE on that slice (gradient kinds: with early stopping on it, as the selection "
        "fit of a training run; bpmf: the posterior mean after the given sweeps). Coordinate search, one axis at "
        "a time in the order listed (each point's setting lists the axes; first values = the start), from today's "
        "defaults except `bias-noside`, which starts from bias's defaults before side features existed. "
        '"today" = today\'s defaults of training/config.py `KIND_DEFAULTS` (for `-noside`: with '
        "`side_features=False`, what `--no-side-features` gave before it had defaults of its own). The chosen "
        f"setting and today's are then scored on seed {c}'s validation slice, which no choice looked at.",
        "",
        "## Chosen settings",
        "",
        f"| search | changed from today's defaults | today val RMSE (seed {s}) | chosen (seed {s}) "
        f"| today (seed {c}) | chosen (seed {c}) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for summary in report["searches"]:
        changed = ", ".join(f"{k}={v}" for k, v in summary["changed"].items()) or "(none)"
        lines.append(
            f"| {summary['search']} | {changed} | {summary[f'today_rmse_seed{s}']:.4f} | "
            f"{summary[f'chosen_rmse_seed{s}']:.4f} | {summary[f'today_rmse_seed{c}']:.4f} | "
            f"{summary[f'chosen_rmse_seed{c}']:.4f} |"
        )
    lines += ["", "## Every point", ""]
    by_search: dict[str, list[dict[str, Any]]] = {}
    for point in report["points"]:
        by_search.setdefault(point["search"], []).append(point)
    for name, points in by_search.items():
        lines += [f"### {name}", "", "| seed | role | setting | validation RMSE | epochs/sweeps | fit s |"]
        lines.append("|---:|---|---|---:|---:|---:|")
        for p in points:
            setting = ", ".join(f"{k}={v}" for k, v in p["params"].items())
            lines.append(
                f"| {p['seed']} | {p['role']} | {setting} | {p['validation_rmse']:.4f} | {p['epochs']} | "
                f"{p['seconds']:.1f} |"
            )
        lines.append("")
    lines += [
        "Chosen settings as `training/config.py` entries are in `tuning.json` (`searches[].as_config`).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="MovieLens directory (any layout)")
    parser.add_argument("--seed", type=int, default=42, help="split whose validation slice chooses")
    parser.add_argument("--confirm-seed", type=int, default=7, help="split whose validation slice confirms")
    parser.add_argument(
        "--searches", nargs="*", default=[s.name for s in SEARCHES], choices=[s.name for s in SEARCHES]
    )
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--name", default="tuning", help="report file stem")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 epoch / 4 sweeps per point")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("training.pipeline").setLevel(logging.WARNING)

    started = time.perf_counter()
    data = load_ratings(args.data)
    split = validation_split(data, args.seed)
    confirm = validation_split(data, args.confirm_seed)
    report: dict[str, Any] = {
        "meta": {
            "command": "python bench/tune.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "data": {"path": str(args.data), "n_ratings": len(data.ratings)},
            "seed": args.seed,
            "confirm_seed": args.confirm_seed,
            "n_fit": len(split.fit_part.ratings),
            "n_validation": len(split.validation[2]),
            "quick": args.quick,
            "cpu_count": os.cpu_count(),
            "seconds": 0.0,
        },
        "searches": [],
        "points": [],
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = args.output_dir / f"{args.name}.json", args.output_dir / f"{args.name}.md"

    def write() -> None:
        report["meta"]["seconds"] = round(time.perf_counter() - started, 1)
        json_path.write_text(json.dumps(report, indent=2) + "\n")
        md_path.write_text(render_markdown(report))

    def record(point: Point) -> None:
        report["points"].append(asdict(point))
        print(
            f"{point.search:12s} seed {point.seed:3d} {point.role:15s} val RMSE {point.validation_rmse:.4f} "
            f"({point.epochs} ep, {point.seconds:.1f} s)  {point.params}",
            flush=True,
        )
        write()

    for search in SEARCHES:
        if search.name in args.searches:
            summary = run_search(search, split, confirm, args.quick, record)
            summary["as_config"] = overlay_of(summary)
            report["searches"].append(summary)
            write()
    write()
    print(md_path.read_text().split("## Every point")[0])
    print(f"wrote {md_path} and {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
