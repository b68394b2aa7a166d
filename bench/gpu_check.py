"""GPU check: top-10 recommendation on the GPU (Keras ops) against the numpy CPU path.

    KERAS_BACKEND=jax python bench/gpu_check.py --model models/latest [--users 4096] [--movies 1000000]

Times top-10 for a batch of users over (a) the real catalogue of the artifact and (b) a synthetic catalogue of
`--movies` movies with the same factor width. Without a visible GPU it says so and times the CPU paths only.
Prints a markdown table; `--out FILE.json` also writes the figures.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from movierec.artifacts import load_bundle
from movierec.recommender import Recommender
from movierec.scoring import Head, Scorer, build_scorer, top_k_indices
from movierec.scoring.device import DeviceFactorScorer, DeviceMlpScorer


def _time(fn: Callable[[], Any], repeat: int = 3) -> float:
    fn()  # warm-up (compilation, transfers)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def _numpy_top10(scorer: Scorer, users: np.ndarray) -> None:
    scores = (
        scorer.user_factors[users] @ scorer.movie_factors.T
        + scorer.movie_bias
        + scorer.user_bias[users, None]
    )
    for row in scores:
        top_k_indices(row, 10)


def _synthetic_scorer(n_movies: int, n_users: int, k: int, seed: int = 0) -> Scorer:
    rng = np.random.default_rng(seed)
    arrays = {
        "user_factors": rng.normal(0, 0.1, (n_users, k)).astype(np.float32),
        "movie_factors": rng.normal(0, 0.1, (n_movies, k)).astype(np.float32),
        "user_bias": rng.normal(0, 0.1, n_users).astype(np.float32),
        "movie_bias": rng.normal(0, 0.1, n_movies).astype(np.float32),
    }
    zeros_u, zeros_m = np.zeros(n_users, np.float32), np.zeros(n_movies, np.float32)
    return build_scorer("factor", arrays, Head(0.5, 5.0, 3.5, True), zeros_u, zeros_m, device="gpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/latest"))
    parser.add_argument("--users", type=int, default=1024, help="users per timed batch")
    parser.add_argument("--movies", type=int, default=1_000_000, help="size of the synthetic catalogue")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from app.device import visible_gpus

    gpus = visible_gpus()
    import keras

    print(f"Keras {keras.__version__} on {keras.backend.backend()}; GPUs visible: {gpus or 'none'}")
    results: list[dict[str, Any]] = []
    # Device scorers: their numpy arrays time the CPU path, their device copies the keras.ops one.
    catalogues = [("real", Recommender(load_bundle(args.model), device="gpu").scorer)]
    catalogues.append(
        (
            f"synthetic {args.movies:,}",
            _synthetic_scorer(args.movies, args.users, catalogues[0][1].movie_factors.shape[1]),
        )
    )
    for name, scorer in catalogues:
        assert isinstance(scorer, DeviceFactorScorer | DeviceMlpScorer)
        users = np.arange(min(args.users, scorer.n_users))
        cpu = _time(lambda s=scorer, u=users: _numpy_top10(s, u))
        dev = _time(lambda d=scorer, u=users: d.top_k_users(u, 10))
        row = {
            "catalogue": name,
            "movies": scorer.n_movies,
            "users": len(users),
            "numpy_users_per_s": len(users) / cpu,
            "keras_ops_users_per_s": len(users) / dev,
            "keras_device": "gpu" if gpus else "cpu",
            "speedup": cpu / dev,
        }
        results.append(row)
    print(
        "\n| catalogue | movies | numpy users/s | keras.ops users/s (device) | speed-up |\n|---|---|---|---|---|"
    )
    for r in results:
        print(
            f"| {r['catalogue']} | {r['movies']:,} | {r['numpy_users_per_s']:,.0f} | "
            f"{r['keras_ops_users_per_s']:,.0f} ({r['keras_device']}) | {r['speedup']:.1f}x |"
        )
    if args.out:
        args.out.write_text(json.dumps({"gpus": gpus, "results": results}, indent=2))


if __name__ == "__main__":
    main()
