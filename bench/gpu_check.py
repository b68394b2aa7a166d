"""GPU check: the list path a request takes, on the GPU (Keras ops) against the numpy CPU path.

    KERAS_BACKEND=jax python bench/gpu_check.py --model DIR [--batches 1,16,64] [--repeats 5] [--out FILE.json]

`DIR` is an artifact, e.g. a 62,000-movie one (`python -m training synth --movies 62000 ...` then `train`).
For each batch size, the lists of that many known users (k=10, rated movies excluded, every 4th with a genre
filter) through `Recommender.rank_lists`, what `/recommend` calls: on the CPU the pruned numpy path, on the
device `movierec.scoring.device_lists` (propensities, ratings, blend, filters and top-k on the device, k
results per user back). Timed after a warm-up (compilation, transfers), best of `--repeats`, wall and CPU
seconds. Without a visible GPU it says so and Keras runs on its CPU backend, which checks the code, not the
speed. Prints a markdown table; `--out` also writes the figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from movierec.artifacts import load_bundle
from movierec.recommender import ListQuery, Recommender


def _time(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Best wall and CPU seconds of `fn` over `repeats` runs, after one warm-up run."""
    fn()
    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu


def _queries(recommender: Recommender, users: np.ndarray) -> list[ListQuery]:
    genre = recommender.genre_names[0] if recommender.genre_names else None
    queries = []
    for n, user in enumerate(users.tolist()):
        query = recommender.list_query(int(user), 10, genres=[genre] if genre and n % 4 == 0 else None)
        assert isinstance(query, ListQuery)
        queries.append(query)
    return queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/latest"))
    parser.add_argument("--batches", default="1,16,64", help="lists scored together per call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from app.device import visible_gpus

    gpus = visible_gpus()
    import keras

    backend = f"Keras {keras.__version__} on {keras.backend.backend()}"
    print(f"{backend}; GPUs visible: {gpus or 'none (Keras runs on the CPU: a check of the code only)'}")
    bundle = load_bundle(args.model)
    cpu, device = Recommender(bundle), Recommender(bundle, device="gpu")
    rng = np.random.default_rng(0)
    results: list[dict[str, Any]] = []
    for batch in (int(b) for b in args.batches.split(",")):
        users = rng.choice(bundle.user_ids.ids, batch, replace=False)
        queries = _queries(cpu, users)
        cpu_wall, cpu_cpu = _time(lambda q=queries: cpu.rank_lists(q), args.repeats)
        dev_wall, dev_cpu = _time(lambda q=queries: device.rank_lists(q), args.repeats)
        results.append(
            {
                "batch": batch,
                "movies": int(bundle.movie_ids.ids.size),
                "cpu_lists_per_s": batch / cpu_wall,
                "cpu_cpu_s_per_list": cpu_cpu / batch,
                "device_lists_per_s": batch / dev_wall,
                "device_cpu_s_per_list": dev_cpu / batch,
                "speedup": cpu_wall / dev_wall,
            }
        )
    print(
        f"\n{bundle.movie_ids.ids.size:,} movies, {platform.processor() or platform.machine()}\n\n"
        "| lists per call | CPU path lists/s | device path lists/s | speed-up (wall) | CPU ms per list, CPU / device |"
        "\n|---:|---:|---:|---:|---:|"
    )
    for r in results:
        print(
            f"| {r['batch']} | {r['cpu_lists_per_s']:,.0f} | {r['device_lists_per_s']:,.0f} | {r['speedup']:.2f}x | "
            f"{r['cpu_cpu_s_per_list'] * 1e3:.2f} / {r['device_cpu_s_per_list'] * 1e3:.2f} |"
        )
    if args.out:
        args.out.write_text(
            json.dumps({"backend": backend, "gpus": gpus, "results": results}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
