"""Command line of the trainer.

python -m training download ml-latest-small [--data-root data]   (stdout: the directory it unpacked to, only)
python -m training train --data DIR [--model {dot,bias,nn,svdpp,bpmf}] [--output-dir models] [--no-refit] ...
        [--workers N | --coordinator HOST:PORT --num-processes N --process-id I]   (data-parallel, on JAX)
python -m training analyze models/latest [--predict USER_ID MOVIE_ID] [--plot curves.png]
python -m training import-db --data DIR [--database URL]
python -m training train --database URL ...   (train on what the ratings database holds, instead of --data)
python -m training retrain [--database URL] [--output-dir models]   (promote a new model only if it is no worse)
python -m training synth --out DIR --users N --movies M --ratings R

import-db and retrain read the database URL from $MOVIEREC_DATABASE_URL when --database is not given (an explicit
flag wins): a URL with a password then stays off the command line, where `ps` would show it to every user.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
import time
from pathlib import Path

from movierec.errors import MovieRecError
from movierec.model_config import MODEL_KINDS
from training.config import TrainConfig, TrainerSettings
from training.native_log import once_native_startup_lines


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    dl = sub.add_parser(
        "download",
        help="download and unpack a GroupLens MovieLens data set; prints only the directory it produced "
        "(ml-10m: ml-10M100K) on stdout, so scripts can use `$(python -m training download NAME)`",
    )
    dl.add_argument("name", help="e.g. ml-latest-small, ml-100k, ml-1m, ml-25m")
    dl.add_argument(
        "--data-root", type=Path, default=None, help="where to unpack (default: $MOVIEREC_DATA_ROOT or data/)"
    )

    tr = sub.add_parser("train", help="train a model and write a versioned artifact")
    source = tr.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="MovieLens directory, or a single ratings file")
    source.add_argument(
        "--database",
        default=None,
        help="SQLAlchemy URL of the ratings database (after import-db): train on the imported set and "
        "people's own ratings as the database holds them, titles and genres from its movies tables",
    )
    tr.add_argument(
        "--model",
        choices=list(MODEL_KINDS),
        default="bpmf",
        help="rating model (default bpmf: the best held-out RMSE); every kind gets the top-N ranker beside it",
    )
    tr.add_argument(
        "--output-dir", type=Path, default=None, help="model root (default: $MOVIEREC_OUTPUT_DIR or models/)"
    )
    tr.add_argument("--seed", type=int, default=None)
    tr.add_argument("--split", choices=["random", "temporal"], default=None)
    tr.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="upper bound on epochs (early stopping chooses); bpmf: Gibbs sweeps",
    )
    tr.add_argument(
        "--solver",
        choices=["sgd", "als"],
        default=None,
        help="bias only: als fits it by alternating least squares (closed-form sweeps, its own defaults), "
        "minutes instead of hours at ml-25m size; default sgd (Keras minibatches)",
    )
    tr.add_argument("--batch-size", type=int, default=None)
    tr.add_argument("--learning-rate", type=float, default=None)
    tr.add_argument("--factors", type=int, default=None, help="embedding width")
    tr.add_argument("--l2", type=float, default=None, help="L2 penalty on the embeddings")
    tr.add_argument("--no-refit", action="store_true", help="serve the model fitted on the train split")
    tr.add_argument(
        "--no-side-features",
        action="store_true",
        help="learn from ratings alone (no genre, year or who-rated-what priors)",
    )
    tr.add_argument(
        "--no-ranker",
        action="store_true",
        help="fit no top-N ranker (lists are then ranked by predicted rating)",
    )
    tr.add_argument(
        "--ranker-rank",
        type=int,
        default=None,
        metavar="N",
        help="singular directions the low-rank EASE ranker keeps (default 128; serving costs movies x N)",
    )
    tr.add_argument(
        "--drop-invalid", action="store_true", help="drop invalid rows (reported) instead of failing"
    )
    tr.add_argument("--user-col", default="userId", help="single-file input: user id column")
    tr.add_argument("--movie-col", default="movieId", help="single-file input: movie id column")
    tr.add_argument("--rating-col", default="rating", help="single-file input: rating column")
    tr.add_argument(
        "--timestamp-col", default="timestamp", help="single-file input: timestamp column ('' for none)"
    )
    tr.add_argument("--movies", type=Path, default=None, help="single-file input: a movies.csv for titles")
    tr.add_argument(
        "--quiet",
        action="store_true",
        help="one line per epoch instead of the progress bar (the default when the output is not a terminal)",
    )
    dp = tr.add_argument_group(
        "data-parallel training of dot, bias, nn, svdpp (Keras DataParallel on JAX; training/distributed.py)"
    )
    dp.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="train on N processes of this machine (default 1: one process, the usual backend)",
    )
    dp.add_argument(
        "--coordinator", default=None, metavar="HOST:PORT", help="across machines: process 0's address"
    )
    dp.add_argument("--num-processes", type=int, default=None, metavar="N", help="with --coordinator")
    dp.add_argument("--process-id", type=int, default=None, metavar="I", help="with --coordinator: 0..N-1")

    an = sub.add_parser("analyze", help="bias ranking, a prediction and learning curves of an artifact")
    an.add_argument("artifact", type=Path, nargs="?", default=Path("models/latest"))
    an.add_argument("--predict", type=int, nargs=2, metavar=("USER_ID", "MOVIE_ID"))
    an.add_argument("--limit", type=int, default=15)
    an.add_argument("--most-rated", type=int, default=2000)
    an.add_argument(
        "--plot", type=Path, default=None, help="write learning curves and the bias ranking as PNG"
    )

    im = sub.add_parser("import-db", help="load a MovieLens directory into the ratings database")
    im.add_argument("--data", type=Path, required=True, help="a MovieLens directory (any layout)")
    im.add_argument(
        "--database",
        default=None,
        help="SQLAlchemy URL, e.g. sqlite:///data/movierec.db (default: $MOVIEREC_DATABASE_URL)",
    )

    rt = sub.add_parser(
        "retrain",
        help="train a candidate on the ratings database and promote it (move latest) only if it is no worse "
        "than the serving model on the newest ratings neither has seen (training/retrain.py)",
    )
    rt.add_argument(
        "--database",
        default=None,
        help="SQLAlchemy URL of the ratings database (default: $MOVIEREC_DATABASE_URL)",
    )
    rt.add_argument(
        "--output-dir", type=Path, default=None, help="model root (default: $MOVIEREC_OUTPUT_DIR or models/)"
    )
    rt.add_argument(
        "--report", type=Path, default=None, help="JSON report (default: <output-dir>/retrain-reports/)"
    )
    rt.add_argument("--min-ratings", type=int, default=None, help="held-out ratings needed to decide (200)")
    rt.add_argument("--min-users", type=int, default=None, help="users with a held-out rating needed (20)")
    rt.add_argument("--rmse-tolerance", type=float, default=None, help="allowed RMSE increase (0)")
    rt.add_argument("--ndcg-tolerance", type=float, default=None, help="allowed NDCG@10 decrease (0)")

    sy = sub.add_parser("synth", help="generate synthetic ratings with planted low-rank structure")
    sy.add_argument("--out", type=Path, required=True)
    sy.add_argument("--users", type=int, default=10_000)
    sy.add_argument("--movies", type=int, default=5_000)
    sy.add_argument("--ratings", type=int, default=1_000_000)
    sy.add_argument("--factors", type=int, default=16)
    sy.add_argument("--noise", type=float, default=0.8)
    sy.add_argument("--seed", type=int, default=0)
    return parser


def _cmd_download(args: argparse.Namespace, settings: TrainerSettings) -> int:
    from training.download import download_dataset

    root = args.data_root or settings.data_root
    path = download_dataset(
        args.name, root, base_url=settings.data_base_url, timeout=settings.download_timeout
    )
    print(path)
    return 0


# `--solver als` is suggested, for the kinds it fits, from this many ratings on (at ml-25m size an Adam epoch
# takes over a minute on 2 cores and the SGD defaults need many of them: bench/results/scale.md).
ALS_HINT_RATINGS = 5_000_000


def _cmd_train(args: argparse.Namespace, settings: TrainerSettings, argv: list[str]) -> int:
    from training.distributed import start

    worker = start(args, argv)  # an exit status once a local multi-process job has run, a Worker, or None
    if isinstance(worker, int):
        return worker
    os.environ.setdefault("KERAS_BACKEND", settings.keras_backend)
    from movierec.data import ColumnNames, load_ratings
    from training.pipeline import train_run
    from training.progress import keras_verbose, reading_progress

    with once_native_startup_lines():
        import keras  # noqa: F401  (loads the backend here, whose native start-up lines would print twice)

    started = time.perf_counter()
    overrides: dict[str, object] = {
        key: value
        for key, value in {
            "seed": args.seed,
            "split": args.split,
            "solver": args.solver,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
        }.items()
        if value is not None
    }
    model_fields: dict[str, object] = {
        k: v for k, v in {"n_factors": args.factors, "l2_factors": args.l2}.items() if v is not None
    }
    if args.no_side_features:
        model_fields["side_features"] = False
    if args.no_refit:
        overrides["refit"] = False
    ranker: dict[str, object] = {}
    if args.no_ranker:
        ranker["enabled"] = False
    if args.ranker_rank is not None:
        ranker["rank"] = args.ranker_rank
    if ranker:
        overrides["ranker"] = ranker
    config = TrainConfig.for_kind(args.model, model_fields=model_fields, **overrides)
    if args.database is not None:
        from movierec.store.training_data import read_training_data

        data = read_training_data(args.database, progress=reading_progress()).data
    elif args.data.is_file():
        columns = ColumnNames(args.user_col, args.movie_col, args.rating_col, args.timestamp_col or None)
        data = load_ratings(
            args.data,
            drop_invalid=args.drop_invalid,
            columns=columns,
            movies_path=args.movies,
            progress=reading_progress(),
        )
    else:
        data = load_ratings(args.data, drop_invalid=args.drop_invalid, progress=reading_progress())
    if data.dropped_rows:
        print(f"dropped {data.dropped_rows} invalid rows (--drop-invalid)")
    solver = " by alternating least squares" if config.solver == "als" else ""
    print(
        f"training {config.model.kind}{solver} on {len(data.ratings):,} ratings from "
        f"{data.source.get('database', data.ratings_path)} ({data.layout} layout), seed {config.seed}, {config.split} split"
    )
    from training.kinds.registry import ALS_KINDS, kind_for

    if config.model.kind in ALS_KINDS and config.solver == "sgd" and len(data.ratings) >= ALS_HINT_RATINGS:
        print(
            f"hint: at this size SGD needs many long epochs; `--solver als` fits {config.model.kind} in minutes "
            "(README, 'Training at ml-25m size')"
        )
    output_dir = args.output_dir or settings.output_dir
    result = train_run(data, config, output_dir, verbose=keras_verbose(args.quiet))
    if worker is not None and not worker.writes:
        print(f"process {worker.process_id} of {worker.num_processes} trained its shard; process 0 writes")
        return 0
    m = result.manifest.metrics
    refit = result.manifest.refit
    print(
        f"\nmodel {config.model.kind}: {m['epochs']} {kind_for(config).step_unit}, held-out RMSE {m['rmse']:.4f}, MAE {m['mae']:.4f} "
        f"on {m['n_heldout']:,} ratings ({m['n_fallback']} fallback predictions)\n"
        f"fit {m['train_seconds']:.1f} s"
        + (
            f" (choosing epochs on a validation slice {m['selection_seconds']:.1f} s, then the whole train split)"
            if m["selection_seconds"]
            else ""
        )
        + (f", refit on all ratings {refit['seconds']:.1f} s" if refit else ", no refit")
        + f", total {time.perf_counter() - started:.1f} s\n"
        f"artifact {result.run_dir}"
    )
    if result.ranker is not None:
        info = result.ranker.info
        grid = ", ".join(f"{l2} {ndcg:.4f}" for l2, ndcg in info["validation"].items())
        print(
            f"ranker {info['kind']} (rank {info['rank']}): L2 {info['l2']:g} chosen on validation NDCG@10 "
            f"({grid}); held-out NDCG@10 {m['ndcg@10']:.4f}, recall@10 {m['recall@10']:.4f} ranked with the "
            f"rating model (EASE alone {info['heldout_ease_ndcg@10']:.4f}); fit {info['seconds']:.1f} s"
        )
    else:
        print("no ranker (--no-ranker): lists are ranked by predicted rating")
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from movierec.artifacts import load_bundle
    from movierec.recommender import Recommender
    from training.analyze import bias_report, plot, provenance

    bundle = load_bundle(args.artifact)
    recommender = Recommender(bundle)
    manifest = bundle.manifest
    print(
        f"artifact {bundle.path} ({manifest.model_kind}, held-out RMSE {manifest.metrics.get('rmse', float('nan')):.4f})"
    )
    print(provenance(manifest) + "\n")
    if recommender.scorer.has_bias:
        print(bias_report(recommender, args.limit, args.most_rated))
    else:
        print(f"a {manifest.model_kind!r} model has no learned biases: no bias ranking")
    if args.predict:
        user_id, movie_id = args.predict
        import numpy as np

        pred = recommender.predict(np.array([user_id]), np.array([movie_id]))
        note = " (fallback: unknown id)" if pred.fallback[0] else ""
        title = (
            recommender.titles[recommender.movie_index(movie_id)] if pred.movie_known[0] else "unknown movie"
        )
        print(f"\nuser {user_id}, movie {movie_id} ({title}): predicted rating {pred.ratings[0]:.2f}{note}")
    if args.plot:
        plot(recommender, manifest, args.plot, args.limit, args.most_rated)
        print(f"\nplot written to {args.plot}")
    return 0


def _cmd_retrain(args: argparse.Namespace, settings: TrainerSettings) -> int:
    """Exit 0 whether the candidate was promoted or `latest` kept (the report says which and why)."""
    os.environ.setdefault("KERAS_BACKEND", settings.keras_backend)
    from training.retrain import GateSettings, retrain

    with once_native_startup_lines():
        import keras  # noqa: F401

    given = {
        "min_ratings": args.min_ratings,
        "min_users": args.min_users,
        "rmse_tolerance": args.rmse_tolerance,
        "ndcg_tolerance": args.ndcg_tolerance,
    }
    gate = GateSettings(**{k: v for k, v in given.items() if v is not None})
    report = retrain(
        args.database, args.output_dir or settings.output_dir, gate=gate, report_path=args.report
    )
    print(report.summary())
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from training.synth import SynthSpec, write_synthetic

    spec = SynthSpec(
        n_users=args.users,
        n_movies=args.movies,
        n_ratings=args.ratings,
        n_factors=args.factors,
        noise=args.noise,
        seed=args.seed,
    )
    report = write_synthetic(spec, args.out)
    print(report)
    return 0


# Where import-db and retrain take the database URL from without --database: the variable the service reads, so
# one setting serves both and a password in the URL never appears on a command line (`ps`, /proc/<pid>/cmdline).
DATABASE_URL_ENV = "MOVIEREC_DATABASE_URL"


def _database_from_env(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Fill `args.database` from $MOVIEREC_DATABASE_URL when the flag was not given; neither: a usage error."""
    if args.database is not None:
        return
    url = os.environ.get(DATABASE_URL_ENV, "").strip()
    if not url:
        sub = f"python -m training {args.command}"
        parser.exit(2, f"{sub}: error: no database: pass --database URL or set ${DATABASE_URL_ENV}\n")
    args.database = url


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command in ("import-db", "retrain"):
        _database_from_env(parser, args)
    # Line by line, so that printed lines, log lines (stderr) and Keras's epochs keep their order in a log file.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = TrainerSettings()
    try:
        if args.command == "download":
            return _cmd_download(args, settings)
        if args.command == "train":
            return _cmd_train(args, settings, list(sys.argv[1:] if argv is None else argv))
        if args.command == "analyze":
            return _cmd_analyze(args)
        if args.command == "import-db":
            from training.import_db import import_directory
            from training.progress import reading_progress

            print(import_directory(args.data, args.database, progress=reading_progress()))
            return 0
        if args.command == "retrain":
            return _cmd_retrain(args, settings)
        return _cmd_synth(args)
    except MovieRecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
