"""Scale benchmark: generate ml-25m-size synthetic ratings, train a model on them, serve it, measure /recommend.

    python bench/scale.py [--data /tmp/synth-25m] [--users 162000 --movies 62000 --ratings 25000000]
                          [--model KIND] [--epochs N --no-refit --batch-size B --learning-rate LR]
                          [--duration 15 --concurrency 1,16] [--out bench/results/scale.md]

Without `--model` and the fit flags it trains what `python -m training train` trains by default (the default
artifact: `bpmf` with its ranker, early stopping where the kind has it, refit on all ratings).

Steps (each a subprocess, its peak resident memory read from `wait4`'s rusage):
1. `python -m training synth` into `--data`, unless a `ratings.csv` is already there;
2. `python -m training train` on it with the given kind and settings (the kind's defaults for those not given);
   for Keras kinds, seconds per epoch come from Keras' epoch lines;
   (`--model-dir DIR --train-log FILE` reports an artifact trained earlier instead);
3. serve the artifact with the same uvicorn settings as `bench/serving.py` and measure the ceiling,
   `GET /recommend/{user_id}?k=10` (random known users), with a genre filter, and `POST /predict` one pair,
   plus the server's resident memory after warm-up.
Writes a markdown report with the raw figures as a JSON block at its end.
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
    parser.add_argument("--model", default=None, help="model kind (default: the trainer's default)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--no-refit", action="store_true")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="an artifact trained earlier (skips training)"
    )
    parser.add_argument("--train-log", type=Path, default=None, help="with --model-dir: its training log")
    parser.add_argument(
        "--train-usage", default=None, help="with --model-dir: JSON {wall_s, cpu_s, peak_rss_mb}"
    )
    parser.add_argument(
        "--synth-usage", default=None, help="JSON {wall_s, cpu_s, peak_rss_mb} of an earlier synth run"
    )
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--genre", default="Comedy")
    parser.add_argument("--port", type=int, default=8140)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/scale.md")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": " ".join(["bench/scale.py", *(argv if argv is not None else sys.argv[1:])]),
    }

    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        if not (args.data / "ratings.csv").exists():
            cmd = [
                PYTHON,
                "-m",
                "training",
                "synth",
                "--out",
                str(args.data),
                "--users",
                str(args.users),
                "--movies",
                str(args.movies),
                "--ratings",
                str(args.ratings),
            ]
            result["synth"] = run_step(cmd, work / "synth.log")
            print(f"synth: {result['synth']}", flush=True)
        elif args.synth_usage:
            result["synth"] = json.loads(args.synth_usage)
        planted = args.data / "planted.json"
        result["planted"] = json.loads(planted.read_text()) if planted.exists() else None

        if args.model_dir is None:
            cmd = [
                PYTHON,
                "-m",
                "training",
                "train",
                "--data",
                str(args.data),
                "--quiet",
                "--output-dir",
                str(work / "models"),
            ]
            for flag, value in (
                ("--model", args.model),
                ("--epochs", args.epochs),
                ("--batch-size", args.batch_size),
                ("--learning-rate", args.learning_rate),
            ):
                if value is not None:
                    cmd += [flag, str(value)]
            if args.no_refit:
                cmd.append("--no-refit")
            log_path = work / "train.log"
            result["train"] = run_step(cmd, log_path)
            model_dir = (work / "models" / "latest").resolve()
        else:
            log_path = args.train_log
            result["train"] = json.loads(args.train_usage) if args.train_usage else {}
            model_dir = args.model_dir.resolve()
        log_text = log_path.read_text(errors="replace") if log_path and log_path.exists() else ""
        result["train"].update(
            epochs_seconds=epoch_seconds(log_text),
            settings={
                "model": args.model or "default",
                "epochs": args.epochs or "kind default",
                "batch_size": args.batch_size or "kind default",
                "learning_rate": args.learning_rate or "kind default",
                "refit": not args.no_refit,
            },
            summary=[
                x for x in log_text.splitlines() if x.startswith(("training ", "model ", "fit ", "artifact "))
            ],
        )
        manifest = json.loads((model_dir / "manifest.json").read_text())
        result["model"] = {
            "run_id": manifest["run_id"],
            "kind": manifest.get("model_kind"),
            "ranker": manifest.get("ranker"),
            "n_users": manifest["n_users"],
            "n_movies": manifest["n_movies"],
            "metrics": manifest["metrics"],
        }
        print(f"train: {result['train']}", flush=True)

        scenarios = build_scenarios(model_dir, args.genre)
        names = [CEILING, "recommend", "recommend_genre", "predict_one"]
        rows = []
        with Server("bench.naive_app:create_bench_app", model_dir, ServerConfig(), args.port) as server:
            started = time.perf_counter()
            warm_up(server, [scenarios[n] for n in names], work)
            result["serve_memory_after_warmup"] = server.memory()
            for c in [int(x) for x in args.concurrency.split(",")]:
                for n in [*names, CEILING]:
                    rows.append(measure(server, scenarios[n], c, args.duration, work))
                    print(f"  c={c} {n}: {rows[-1]['rps']:.0f}/s p50 {rows[-1]['p50_ms']:.1f} ms", flush=True)
            result["serve_memory_at_end"] = server.memory()
            result["serve_seconds"] = round(time.perf_counter() - started, 1)
    ceiling = ceilings(rows)
    add_ratios(rows, ceiling)
    result["rows"] = rows
    result["ceiling"] = {str(c): v for c, v in ceiling.items()}
    write_report(result, args.out)
    print(f"wrote {args.out}")
    return 0


def _ranker_rows(ranker: dict[str, Any] | None) -> list[str]:
    """The ranker's figures from the manifest (its fit time is inside the whole command's)."""
    if not ranker:
        return []
    return [
        f"| ranker: rank, L2 chosen on validation | {ranker.get('rank')}, {ranker.get('l2')} |",
        f"| ranker: seconds (choosing L2, the evaluated and the served fit) | {ranker.get('seconds')} |",
        f"| ranker: held-out NDCG@10 of the EASE part alone | {ranker.get('heldout_ease_ndcg@10')} |",
    ]


def write_report(result: dict[str, Any], out: Path) -> None:
    train, model, planted = result["train"], result["model"], result.get("planted") or {}
    m = model["metrics"]
    lines = [
        "# Scale benchmark (ml-25m size, synthetic)",
        "",
        f"Run {result['date']} on {result['machine']}. Command: `{result['command']}`.",
        "",
        "## Data",
        "",
        f"`python -m training synth`: {planted.get('n_ratings', 0):,} ratings, {planted.get('n_users', 0):,} users, "
        f"{planted.get('n_movies_rated', 0):,} movies rated; planted-model RMSE floor "
        f"**{planted.get('planted_rmse_floor')}**; most-rated movie {planted.get('top_movie_share', 0):.2%} of ratings; "
        f"ratings per user {planted.get('ratings_per_user')}.",
    ]
    if "synth" in result:
        s = result["synth"]
        lines.append(f"Generation: {s['wall_s']} s wall, {s['cpu_s']} s CPU, peak RSS {s['peak_rss_mb']} MB.")
    per_epoch = train.get("epochs_seconds") or []
    lines += [
        "",
        f"## Training `{model.get('kind') or 'bias'}`" + (" with its ranker" if model.get("ranker") else ""),
        "",
        f"Settings: {train['settings']}.",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| wall seconds per epoch (Keras epoch line, validation pass included) | {', '.join(str(x) for x in per_epoch) or 'n/a'} |",
        f"| whole command, wall s (load, split, fit, evaluate, save) | {train.get('wall_s', 'n/a')} |",
        f"| whole command, CPU s | {train.get('cpu_s', 'n/a')} |",
        f"| peak resident memory, MB (limit 8,192) | {train.get('peak_rss_mb', 'n/a')} |",
        f"| held-out RMSE (planted floor {planted.get('planted_rmse_floor')}) | {m.get('rmse', float('nan')):.4f} |",
        f"| artifact users × movies | {model['n_users']:,} × {model['n_movies']:,} |",
        *_ranker_rows(model.get("ranker")),
        "",
        "## Serving the ml-25m-size model (1 uvicorn worker, uvloop, httptools, 1 BLAS thread)",
        "",
        f"Resident memory after warm-up: **{result['serve_memory_after_warmup']['rss_mb']} MB** "
        f"(at end {result['serve_memory_at_end']['rss_mb']} MB).",
        "",
        "| concurrency | scenario | req/s | × ceiling | p50 ms | p99 ms | errors | server CPU µs/req | loadavg 1 min |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['concurrency']} | {r['scenario']} | {r['rps']:,.0f} | {r['rps_vs_ceiling']:.3f} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['errors']} | {r['server_cpu_us_per_request']:,.0f} | "
            f"{r['loadavg_before'][0]} → {r['loadavg_after'][0]} |"
        )
    gpu = Path("/proc/driver/nvidia").exists() or Path("/dev/nvidia0").exists()
    lines += [
        "",
        "## GPU",
        "",
        "A GPU is visible: rerun the training step with `KERAS_BACKEND=jax` and the `train-gpu` extra for ratings/s."
        if gpu
        else "No GPU was available to this run, so the GPU training figure (Keras on JAX, ratings per second) was "
        "not measured.",
    ]
    lines += ["", "## Raw figures", "", "```json", json.dumps(result, indent=1), "```", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
