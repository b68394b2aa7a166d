"""Distributed-training benchmark: one process against N data-parallel processes (Keras DataParallel on JAX).

    python bench/distributed.py [--data /tmp/synth-dist] [--users 20000 --movies 8000 --ratings 2000000]
                                [--model bias] [--workers 1,2] [--epochs 6 --batch-size 8192]
                                [--learning-rate 0.01 --factors 32] [--tensorflow-baseline]
                                [--out bench/results/distributed.md]

Steps (each a subprocess; wall, CPU and peak resident memory of the whole process tree from `wait4`):
1. `python -m training synth` into `--data`, unless a `ratings.csv` is already there;
2. for each N of `--workers`: `python -m training train` end to end (split, epochs chosen on the validation
   slice, evaluation, refit, ranker, save) on the JAX backend: N = 1 as a one-process job of the same engine
   (`--coordinator 127.0.0.1:PORT --num-processes 1 --process-id 0`), so that the comparison isolates the
   distribution; N > 1 with `--workers N`. `--tensorflow-baseline` adds the default single-process run;
3. from each manifest: held-out RMSE, epochs, fit seconds, ratings per second per process, and the bytes every
   process sends per step (the trainable weights' gradients, all-reduced densely), with what that costs per
   epoch on a network of a given speed, so the cost on a real cluster can be estimated.
All N processes of one run share this machine's cores: on a 2-core machine two workers measure the overhead
of the engine, not a speed-up. Writes a markdown report with the raw figures as a JSON block at its end.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.scale import run_step
from bench.serving import PYTHON, ROOT, machine
from training.distributed import free_port

# Network speeds (Gbit/s) at which the all-reduce time per epoch is estimated.
NETWORKS_GBIT = (1, 10, 25, 100)


def train_command(args: argparse.Namespace, workers: int | None, out: Path) -> list[str]:
    """The `train` command of one run: `workers` None is the default single-process (TensorFlow) path."""
    cmd = [
        *(PYTHON, "-m", "training", "train", "--data", str(args.data), "--model", args.model),
        *("--output-dir", str(out), "--seed", str(args.seed), "--quiet"),
        *("--epochs", str(args.epochs), "--batch-size", str(args.batch_size)),
        *("--learning-rate", str(args.learning_rate), "--factors", str(args.factors)),
    ]
    if args.no_side_features:
        cmd.append("--no-side-features")
    if workers == 1:
        cmd += ["--coordinator", f"127.0.0.1:{free_port()}", "--num-processes", "1", "--process-id", "0"]
    elif workers is not None:
        cmd += ["--workers", str(workers)]
    return cmd


def summarise(manifest: dict[str, Any], usage: dict[str, Any], processes: int) -> dict[str, Any]:
    """The figures of one run from its manifest: accuracy, epochs, fit time, throughput and communication."""
    metrics, config = manifest["metrics"], manifest["config"]
    n_train = manifest["evaluated_model"]["n_ratings"]
    refit = manifest.get("refit") or {"n_ratings": 0, "epochs": 0, "seconds": 0.0}
    selection_epochs = len(manifest["history"].get("loss", []))
    # Rows every process together fed through a train step: the selection fit (on train minus the validation
    # slice, every epoch it ran), the evaluated fit on train, and the refit on all ratings.
    rows = (
        selection_epochs * n_train * (1 - config["validation_fraction"])
        + metrics["epochs"] * n_train
        + refit["epochs"] * refit["n_ratings"]
    )
    fit_s = metrics["train_seconds"] + refit["seconds"]
    out: dict[str, Any] = {
        "processes": processes,
        "backend": manifest["libraries"]["keras_backend"],
        **usage,
        "rmse": round(metrics["rmse"], 4),
        "epochs_chosen": metrics["epochs"],
        "selection_epochs_run": selection_epochs,
        "fit_s": round(fit_s, 1),
        "ratings_fed": round(rows),
        "ratings_per_s": round(rows / fit_s),
        "ratings_per_s_per_process": round(rows / fit_s / processes),
        "ratings_per_cpu_s": round(rows / usage["cpu_s"]),
    }
    dist = manifest.get("distributed")
    if dist:
        per_step = dist["allreduce_per_step"]
        steps = math.ceil(manifest["data"]["n_ratings"] / dist["global_batch_size"])
        per_epoch = per_step["bytes_per_process_per_step"] * steps
        out["distributed"] = dist
        out["steps_per_epoch_all_ratings"] = steps
        out["allreduce_bytes_per_process_per_epoch"] = per_epoch
        out["allreduce_s_per_epoch_at_gbit"] = {
            str(g): round(per_epoch * 8 / (g * 1e9), 2) for g in NETWORKS_GBIT
        }
    return out


def report(result: dict[str, Any]) -> str:
    runs = result["runs"]
    lines = [
        "# Distributed training: 1 vs N data-parallel processes on one machine",
        "",
        f"{result['date']}, {result['machine']}. Data: {result['data']}.",
        f"Command: `{result['command']}`.",
        "",
        "Every run is end to end (load, split, epochs chosen on the validation slice, evaluated fit, refit on "
        "all ratings, ranker, save); the N processes of one run share this machine's cores.",
        "",
        "| run | backend | wall s | CPU s (all processes) | peak RSS MB (largest process) | fit s | epochs | held-out RMSE | ratings/s | "
        "ratings/s per process | ratings fed per CPU s (whole run) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in runs.items():
        lines.append(
            f"| {name} | {r['backend']} | {r['wall_s']} | {r['cpu_s']} | {r['peak_rss_mb']} | {r['fit_s']} | "
            f"{r['epochs_chosen']} | {r['rmse']} | {r['ratings_per_s']:,} | "
            f"{r['ratings_per_s_per_process']:,} | {r['ratings_per_cpu_s']:,} |"
        )
    lines += ["", "## Communication per step", ""]
    for name, r in runs.items():
        if "distributed" not in r or r["processes"] < 2:
            continue
        a = r["distributed"]["allreduce_per_step"]
        net = ", ".join(f"{s} s at {g} Gbit/s" for g, s in r["allreduce_s_per_epoch_at_gbit"].items())
        lines.append(
            f"- {name}: trainable weights {a['trainable_bytes'] / 1e6:.2f} MB, all-reduced densely every step "
            f"(ring factor {a['ring_allreduce_factor']}): {a['bytes_per_process_per_step'] / 1e6:.2f} MB sent "
            f"per process per step; {r['steps_per_epoch_all_ratings']:,} steps per epoch of all ratings at a "
            f"global batch of {r['distributed']['global_batch_size']:,}: "
            f"{r['allreduce_bytes_per_process_per_epoch'] / 1e9:.2f} GB per process per epoch ({net})."
        )
    lines += ["", "```json", json.dumps(result, indent=2), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/synth-dist"))
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--movies", type=int, default=8_000)
    parser.add_argument("--ratings", type=int, default=2_000_000)
    parser.add_argument("--model", default="bias")
    parser.add_argument("--workers", default="1,2", help="process counts to compare, e.g. 1,2")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--epochs", type=int, default=6, help="upper bound; early stopping chooses")
    parser.add_argument("--batch-size", type=int, default=8192, help="the global batch")
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--factors", type=int, default=32)
    parser.add_argument("--no-side-features", action="store_true")
    parser.add_argument("--tensorflow-baseline", action="store_true", help="also the default 1-process run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/distributed.md")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": " ".join(["bench/distributed.py", *(argv if argv is not None else sys.argv[1:])]),
        "runs": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
        work = Path(tmp)
        if not (args.data / "ratings.csv").exists():
            cmd = [
                *(PYTHON, "-m", "training", "synth", "--out", str(args.data)),
                *("--users", str(args.users), "--movies", str(args.movies), "--ratings", str(args.ratings)),
            ]
            result["synth"] = run_step(cmd, work / "synth.log")
            print(f"synth: {result['synth']}", flush=True)
        planted = args.data / "planted.json"
        result["planted"] = json.loads(planted.read_text()) if planted.exists() else None
        result["data"] = str(args.data)
        plan: list[tuple[str, int | None, int]] = [
            (f"{n} process{'es' if n > 1 else ''}", n, n) for n in map(int, args.workers.split(","))
        ]
        if args.tensorflow_baseline:
            plan.insert(0, ("1 process, default path", None, 1))
        for name, workers, processes in plan:
            out = work / f"models-{processes}-{'tf' if workers is None else 'jax'}"
            log = work / f"{out.name}.log"
            try:
                usage = run_step(train_command(args, workers, out), log)
            except (RuntimeError, subprocess.SubprocessError):
                print(log.read_text()[-4000:], file=sys.stderr)
                raise
            manifest = json.loads((out / "latest" / "manifest.json").read_text())
            result["runs"][name] = summarise(manifest, usage, processes)
            print(f"{name}: {json.dumps(result['runs'][name])}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(result))
    print(f"report written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
