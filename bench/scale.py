"""Scale benchmark: ml-25m-size synthetic ratings, each recommended kind trained to convergence, one served.

    python bench/scale.py --label NAME [--data /tmp/synth-25m] [--users 162000 --movies 62000 --ratings 25000000]
                          [--model KIND --solver als --epochs N --no-refit --batch-size B --learning-rate LR]
                          [--serve --duration 15 --concurrency 1,16]
    python bench/scale.py --spark-result FILE      # add a `bench/spark_als.py` result as the peer
    python bench/scale.py --report-only            # rewrite the report from the results file

Every invocation adds one run (under `--label`) to `bench/results/scale.json` and rewrites
`bench/results/scale.md` from all the runs there, so the kinds are measured one at a time on a quiet machine
and reported side by side. Without `--model` and the fit flags a run trains what `python -m training train`
trains by default (bpmf with its ranker, refit on all ratings).

Steps (each a subprocess, its peak resident memory read from `wait4`'s rusage):
1. `python -m training synth` into `--data`, unless a `ratings.csv` is already there; then the data's
   attainable-RMSE bound (bench/synth_bound.py), once per data set;
2. `python -m training train` on it with the given kind and settings (the kind's defaults for those not given);
   for Keras kinds, seconds per epoch come from Keras' epoch lines;
   (`--model-dir DIR --train-log FILE` reports an artifact trained earlier instead);
3. with `--serve`: serve the artifact with the same uvicorn settings as `bench/serving.py` and measure the
   ceiling, `GET /recommend/{user_id}?k=10` (random known users), with a genre filter, and `POST /predict`
   one pair, plus the server's resident memory after warm-up.
The report keeps a hand-written "## Reading these figures" section of the previous report as it was.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.serving import (
    CEILING,
    PYTHON,
    ROOT,
    Server,
    ServerConfig,
    add_ratios,
    build_scenarios,
    ceilings,
    machine,
    measure,
    warm_up,
)
from bench.spark_als import markdown_section as spark_section
from bench.spark_als import whole_run_wall_s as spark_wall_s
from bench.synth_bound import known_movies_bound

# Keras verbose=2 epoch line: "275/275 - 360s - 1s/step - loss: ..." (elapsed time first, whole seconds).
_EPOCH_RE = re.compile(r"^\s*(\d+)/(\d+) - (\d+(?:\.\d+)?)(ms|s) - ")
_UNIT = {"ms": 1e-3, "s": 1.0}


def run_step(cmd: list[str], log_path: Path) -> dict[str, Any]:
    """Run a command with output to `log_path`; wall seconds, CPU seconds and peak RSS (MB) of it alone."""
    started = time.perf_counter()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {code}; see {log_path}")
    return {
        "wall_s": round(time.perf_counter() - started, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # kilobytes on Linux
    }


def epoch_seconds(log_text: str) -> list[float]:
    """Seconds of each epoch (validation pass included) from Keras' verbose=2 lines."""
    out = []
    for line in log_text.splitlines():
        m = _EPOCH_RE.match(line)
        if m and m.group(1) == m.group(2):
            out.append(round(float(m.group(3)) * _UNIT[m.group(4)], 1))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/synth-25m"))
    parser.add_argument("--users", type=int, default=162_000)
    parser.add_argument("--movies", type=int, default=62_000)
    parser.add_argument("--ratings", type=int, default=25_000_000)
    parser.add_argument(
        "--label", default=None, help="the run's name in the results (default: kind[-solver])"
    )
    parser.add_argument("--model", default=None, help="model kind (default: the trainer's default)")
    parser.add_argument("--solver", choices=["sgd", "als"], default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--no-refit", action="store_true")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="report this artifact instead of training one"
    )
    parser.add_argument("--train-log", type=Path, default=None, help="with --model-dir: its training log")
    parser.add_argument(
        "--train-usage", default=None, help="with --model-dir: JSON {wall_s, cpu_s, peak_rss_mb} of its run"
    )
    parser.add_argument(
        "--synth-usage", default=None, help="JSON {wall_s, cpu_s, peak_rss_mb} of an earlier synth step"
    )
    parser.add_argument("--serve", action="store_true", help="also serve the artifact and measure it")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--genre", default="Comedy")
    parser.add_argument("--port", type=int, default=8140)
    parser.add_argument("--spark-result", type=Path, default=None, help="a bench/spark_als.py result JSON")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--results", type=Path, default=ROOT / "bench/results/scale.json")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/scale.md")
    args = parser.parse_args(argv)
    results: dict[str, Any] = (
        json.loads(args.results.read_text()) if args.results.exists() else {"data": {}, "runs": {}}
    )
    command = " ".join(["bench/scale.py", *(argv if argv is not None else sys.argv[1:])])
    if args.spark_result is not None:
        results["spark_als"] = json.loads(args.spark_result.read_text())
    elif not args.report_only:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            results["data"] = data_section(args, results.get("data", {}), Path(tmp))
            label = args.label or "-".join(x for x in (args.model or "default", args.solver) if x)
            results["runs"][label] = measure_run(args, command, Path(tmp))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=1) + "\n")
    write_report(results, args.out)
    print(f"wrote {args.results} and {args.out}")
    return 0


def data_section(args: argparse.Namespace, known: dict[str, Any], work: Path) -> dict[str, Any]:
    """The data set's description: generated here if missing, its planted model and attainable bound."""
    section = dict(known)
    if not (args.data / "ratings.csv").exists():
        cmd = [PYTHON, "-m", "training", "synth", "--out", str(args.data)]
        cmd += ["--users", str(args.users), "--movies", str(args.movies), "--ratings", str(args.ratings)]
        section["synth"] = run_step(cmd, work / "synth.log")
        print(f"synth: {section['synth']}", flush=True)
    elif args.synth_usage:
        section["synth"] = json.loads(args.synth_usage)
    planted = json.loads((args.data / "planted.json").read_text())
    if known.get("planted") not in (None, planted):
        raise SystemExit(
            f"{args.data} is not the data set of the runs in {args.results}: give this one its own --results and --out"
        )
    if "bound" not in section:
        section["planted"] = planted
        section["bound"] = known_movies_bound(args.data)
        print(f"bound: {section['bound']}", flush=True)
    return section


def measure_run(args: argparse.Namespace, command: str, work: Path) -> dict[str, Any]:
    """Train (or read) one artifact, and with `--serve` serve it; its figures."""
    run: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": command,
    }
    if args.model_dir is None:
        cmd = [PYTHON, "-m", "training", "train", "--data", str(args.data), "--quiet"]
        cmd += ["--output-dir", str(work / "models")]
        for flag, value in (
            ("--model", args.model),
            ("--solver", args.solver),
            ("--epochs", args.epochs),
            ("--batch-size", args.batch_size),
            ("--learning-rate", args.learning_rate),
        ):
            if value is not None:
                cmd += [flag, str(value)]
        if args.no_refit:
            cmd.append("--no-refit")
        log_path: Path | None = work / "train.log"
        run["train"] = run_step(cmd, work / "train.log")
        run["train"]["command"] = " ".join(["python", *cmd[1:]]).replace(str(work), "TMP")
        model_dir = (work / "models" / "latest").resolve()
    else:
        log_path = args.train_log
        run["train"] = json.loads(args.train_usage) if args.train_usage else {}
        model_dir = args.model_dir.resolve()
    log_text = log_path.read_text(errors="replace") if log_path and log_path.exists() else ""
    run["train"].update(
        epochs_seconds=epoch_seconds(log_text),
        summary=[
            x for x in log_text.splitlines() if x.startswith(("training ", "model ", "fit ", "artifact "))
        ],
    )
    manifest = json.loads((model_dir / "manifest.json").read_text())
    run["model"] = {
        key: manifest.get(key)
        for key in ("run_id", "model_kind", "ranker", "n_users", "n_movies", "metrics", "refit", "history")
    }
    run["model"]["evaluated_model"] = manifest.get("evaluated_model")
    run["model"]["solver"] = manifest["config"].get("solver", "sgd")
    run["model"]["n_factors"] = manifest["config"]["model"]["n_factors"]
    print(f"train: {run['train']}", flush=True)
    if args.serve:
        run["serving"] = measure_serving(args, model_dir, work)
    return run


def measure_serving(args: argparse.Namespace, model_dir: Path, work: Path) -> dict[str, Any]:
    """The ceiling and the list and prediction scenarios at each concurrency, on one uvicorn worker."""
    scenarios = build_scenarios(model_dir, args.genre)
    names = [CEILING, "recommend", "recommend_genre", "predict_one"]
    rows = []
    serving: dict[str, Any] = {}
    with Server("bench.naive_app:create_bench_app", model_dir, ServerConfig(), args.port) as server:
        started = time.perf_counter()
        warm_up(server, [scenarios[n] for n in names], work)
        serving["memory_after_warmup"] = server.memory()
        for c in [int(x) for x in args.concurrency.split(",")]:
            for n in [*names, CEILING]:
                rows.append(measure(server, scenarios[n], c, args.duration, work))
                print(f"  c={c} {n}: {rows[-1]['rps']:.0f}/s p50 {rows[-1]['p50_ms']:.1f} ms", flush=True)
        serving["memory_at_end"] = server.memory()
        serving["seconds"] = round(time.perf_counter() - started, 1)
    ceiling = ceilings(rows)
    add_ratios(rows, ceiling)
    serving["rows"] = rows
    serving["ceiling"] = {str(c): v for c, v in ceiling.items()}
    return serving


def rating_passes(model: dict[str, Any]) -> int:
    """Ratings times passes over them, summed over the run's fits (choosing epochs, evaluated, refit)."""
    evaluated = model.get("evaluated_model") or {}
    history = (model.get("history") or {}).get("val_rmse") or []
    n_train = evaluated.get("n_ratings", 0)
    # The selection fit runs on train minus its validation slice (10%) for as many epochs as its curve has.
    passes = round(0.9 * n_train) * len(history) + n_train * evaluated.get("epochs", 0)
    refit = model.get("refit") or {}
    return int(passes + refit.get("n_ratings", 0) * refit.get("epochs", 0))


def _cores(machine_text: str) -> int:
    match = re.match(r"(\d+) CPUs?", machine_text)
    return int(match.group(1)) if match else 1


def _method(model: dict[str, Any]) -> str:
    """How the run's rating model was fitted."""
    if model.get("model_kind") == "bpmf":
        return "Gibbs sampling"
    return "ALS" if model.get("solver") == "als" else "SGD"


def _epochs_text(model: dict[str, Any]) -> str:
    """`selection run/chosen, refit n` in the kind's unit (sweeps for the closed-form fits)."""
    history = (model.get("history") or {}).get("val_rmse") or []
    chosen = (model.get("evaluated_model") or {}).get("epochs") or model["metrics"].get("epochs")
    refit = (model.get("refit") or {}).get("epochs")
    unit = "epochs" if _method(model) == "SGD" else "sweeps"
    parts = [f"{len(history)} run, {chosen} chosen" if history else f"{chosen}"]
    if refit:
        parts.append(f"refit {refit}")
    return f"{'; '.join(parts)} {unit}"


def training_rows(runs: dict[str, Any], floor: float, bound: float | None) -> list[str]:
    lines = [
        "| run | command | wall s | CPU s | peak RSS MB | epochs / sweeps | held-out RMSE | above floor "
        "| above bound | rating passes / s / core |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for label, run in runs.items():
        train, model = run["train"], run["model"]
        rmse = model["metrics"]["rmse"]
        # train_seconds already counts the selection fit's.
        fit_s = model["metrics"].get("train_seconds") or 0
        fit_s += (model.get("refit") or {}).get("seconds") or 0
        passes = rating_passes(model)
        rate = f"{passes / fit_s / _cores(run['machine']) / 1e6:.2f}M" if passes and fit_s else "n/a"
        above_bound = f"{rmse - bound:+.4f}" if bound is not None else "n/a"
        lines.append(
            f"| {label} | `{_short_command(train.get('command', run['command']))}` | {train.get('wall_s', 'n/a')} "
            f"| {train.get('cpu_s', 'n/a')} | {train.get('peak_rss_mb', 'n/a')} | {_epochs_text(model)} "
            f"| {rmse:.4f} | {rmse - floor:+.4f} | {above_bound} | {rate} |"
        )
    return lines


def _short_command(command: str) -> str:
    """The trainer's flags that matter (data and output paths dropped)."""
    words = command.split()
    keep: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word in ("--data", "--output-dir"):
            skip = True
            continue
        if word != "--quiet":
            keep.append(word)
    return " ".join(keep)


def _serving_lines(label: str, serving: dict[str, Any]) -> list[str]:
    lines = [
        f"## Serving `{label}` (1 uvicorn worker, asyncio loop, httptools, 1 BLAS thread)",
        "",
        f"Resident memory after warm-up: **{serving['memory_after_warmup']['rss_mb']} MB** "
        f"(at end {serving['memory_at_end']['rss_mb']} MB).",
        "",
        "| concurrency | scenario | req/s | × ceiling | p50 ms | p99 ms | errors | server CPU µs/req | loadavg 1 min |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in serving["rows"]:
        lines.append(
            f"| {r['concurrency']} | {r['scenario']} | {r['rps']:,.0f} | {r['rps_vs_ceiling']:.3f} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['errors']} | {r['server_cpu_us_per_request']:,.0f} | "
            f"{r['loadavg_before'][0]} → {r['loadavg_after'][0]} |"
        )
    return lines


def _kept_reading(out: Path) -> list[str]:
    """The previous report's hand-written "## Reading these figures" section (up to the next section)."""
    if not out.exists():
        return []
    lines = out.read_text().splitlines()
    try:
        start = lines.index("## Reading these figures")
    except ValueError:
        return []
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    while end > start and not lines[end - 1].strip():
        end -= 1
    return [*lines[start:end], ""]


def write_report(results: dict[str, Any], out: Path) -> None:
    data, runs = results.get("data", {}), results.get("runs", {})
    planted = data.get("planted") or {}
    floor = planted.get("planted_rmse_floor", float("nan"))
    bound = (data.get("bound") or {}).get("known_movies_bound")
    lines = [
        "# Scale benchmark (ml-25m size, synthetic)",
        "",
        "Each run is one `python -m training train` on the same data and split, measured alone on a quiet machine "
        "(`bench/scale.py`, raw figures in [scale.json](scale.json)).",
        "",
        "## Data",
        "",
        f"`python -m training synth`: {planted.get('n_ratings', 0):,} ratings, {planted.get('n_users', 0):,} users, "
        f"{planted.get('n_movies_rated', 0):,} movies rated, {planted.get('spec', {}).get('n_factors')} planted "
        f"factors; most-rated movie {planted.get('top_movie_share', 0):.2%} of ratings; ratings per user "
        f"{planted.get('ratings_per_user')}.",
        "",
        f"- **Planted floor {floor}**: the noiseless planted ratings scored against the observed ones. No model "
        "can know them.",
    ]
    if bound is not None:
        lines.append(
            f"- **Attainable bound {bound}** (bench/synth_bound.py): each user's Bayes-optimal estimate from their "
            "own train ratings, *given every movie's planted factors and bias*, scored on the same held-out "
            "ratings. It grants more than any trainer has, so no method trained on this data should go below it; "
            f"the {bound - floor:.3f} between it and the floor is what a user's ~100 noisy ratings cannot tell."
        )
    if "synth" in data:
        s = data["synth"]
        lines.append(
            f"- Generation: {s['wall_s']} s wall, {s['cpu_s']} s CPU, peak RSS {s['peak_rss_mb']} MB."
        )
    lines += ["", "## Training to convergence on one machine", ""]
    lines += training_rows(runs, floor, bound)
    spark = results.get("spark_als")
    if spark:
        held, total = spark["heldout"], spark["total"]
        wall = spark_wall_s(spark)
        chosen = spark["chosen"]
        lines.append(
            f"| Spark MLlib ALS (peer) | rank {chosen['rank']}, regParam {chosen['reg']}, maxIter "
            f"{spark['settings']['max_iter']}, `{spark['settings']['master']}` | {wall} | {total['cpu_s']} "
            f"| {total['peak_rss_mb']} | {spark['settings']['max_iter']} iterations | {held['rmse']:.4f} "
            f"| {held['rmse'] - floor:+.4f} | "
            + (f"{held['rmse'] - bound:+.4f}" if bound is not None else "n/a")
            + " | n/a |"
        )
    lines += [
        "",
        "Wall and CPU seconds are the whole command's (load, split, every fit, evaluate, save, and the ranker "
        "where the run fits one); peak RSS is the largest resident set of the command. Epochs or sweeps: those "
        "the selection fit ran and chose on the validation slice, then those of the refit on all ratings (the "
        "evaluated fit on the train split runs the chosen count). Rating passes per second per core: ratings "
        "times passes over them in all fits, over the fits' wall seconds and the machine's cores.",
        "",
    ]
    for label, run in runs.items():
        model = run["model"]
        ranker = model.get("ranker")
        extra = (
            f"; ranker rank {ranker.get('rank')}, L2 {ranker.get('l2')}, {ranker.get('seconds')} s"
            if ranker
            else ""
        )
        lines.append(
            f"- `{label}`: run {run['date']} on {run['machine']}; {model.get('model_kind')} "
            f"({_method(model)}, {model.get('n_factors')} factors), artifact "
            f"{model['n_users']:,} × {model['n_movies']:,}{extra}."
        )
    if spark:
        lines += ["", *spark_section(spark, level=3)]
    for label, run in runs.items():
        if run.get("serving"):
            lines += ["", *_serving_lines(label, run["serving"])]
    lines += ["", *_kept_reading(out)]
    gpu = Path("/proc/driver/nvidia").exists() or Path("/dev/nvidia0").exists()
    lines += [
        "## GPU",
        "",
        "A GPU is visible: rerun the training step with `KERAS_BACKEND=jax` and the `train-gpu` extra for ratings/s."
        if gpu
        else "No GPU was available to these runs, so the GPU training figure (Keras on JAX, ratings per second) "
        "was not measured.",
        "",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
