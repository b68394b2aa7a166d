"""Stored-ratings benchmark: write throughput, read-after-write, and lists of users with stored ratings.

    python bench/ratings.py [--model-dir DIR] [--duration 10] [--concurrency 16] [--out bench/results/ratings]

One uvicorn worker serving an artifact (default: the default artifact trained on ml-latest-small, as
bench/serving.py does) with people's ratings in a fresh SQLite file, measured in one run:
1. the ceiling (trivial JSON endpoint, same server), the baseline every figure is divided by;
2. `PUT /users/{id}/ratings/{movie}` from `--concurrency` clients for `--duration` s: writes/s, p50/p99;
3. read-after-write: a PUT, then at once `GET /recommend/{id}`; the time from the PUT returning to that list,
   and whether it already reflects the write (`user_vector` "fold_in"; it must, every time);
4. `GET /recommend/{id}` for users with stored ratings (vectors re-solved, cached) against trained users.
Writes a markdown report with the raw figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.serving import ROOT, Scenario, Server, ServerConfig, machine, run_wrk, train_model

KEY = "bench-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


async def _read_after_write(base: str, users: list[int], movies: list[int]) -> dict[str, Any]:
    import httpx

    gaps, reflected = [], 0
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=AUTH) as client:
        for user, movie in zip(users, movies, strict=True):
            put = await client.put(f"/users/{user}/ratings/{movie}", json={"rating": 5.0})
            put.raise_for_status()
            written = time.perf_counter()
            body = (await client.get(f"/recommend/{user}", params={"k": 10})).json()
            gaps.append(time.perf_counter() - written)
            reflected += body.get("user_vector") == "fold_in" and movie not in {
                i["movie_id"] for i in body["items"]
            }
    ms = np.asarray(gaps) * 1e3
    return {
        "writes": len(users),
        "reflected_on_first_read": reflected,
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/ml-latest-small")
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--port", type=int, default=8133)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/ratings")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="bench-ratings-") as tmp:
        workdir = Path(tmp)
        model_dir = args.model_dir.resolve() if args.model_dir else train_model(args.data, workdir)
        users = np.load(model_dir / "user_ids.npy")
        movies = np.load(model_dir / "movie_ids.npy")
        env = (
            ("MOVIEREC_API_KEY", KEY),
            ("MOVIEREC_DATABASE_URL", f"sqlite:///{workdir / 'ratings.db'}"),
        )
        with Server(
            "bench.naive_app:create_bench_app", model_dir, ServerConfig(env=env), args.port
        ) as server:
            base = server.base_url
            writers = [int(u) for u in rng.choice(users, 200, replace=False)]
            trained = [int(u) for u in users if int(u) not in set(writers)][:200]
            ceiling_scenario = Scenario("ceiling", "ceiling", "GET", ["/_bench/ceiling"])
            run_wrk(base, ceiling_scenario, args.concurrency, 1, workdir)  # warm-up
            ceiling = run_wrk(base, ceiling_scenario, args.concurrency, args.duration, workdir)
            cpu = server.cpu_seconds()
            put_paths = [
                f"/users/{u}/ratings/{int(m)}"
                for u, m in zip(rng.choice(writers, 2000), rng.choice(movies, 2000), strict=True)
            ]
            # wrk pairs a random path with a random body: ratings of random pairs (repeats included).
            put_bodies = [json.dumps({"rating": float(r)}) for r in rng.integers(1, 11, 50) / 2]
            writes = run_wrk(
                base,
                Scenario("put", "PUT", "PUT", put_paths, put_bodies, AUTH),
                args.concurrency,
                args.duration,
                workdir,
            )
            writes["server_cpu_us_per_request"] = round(
                (server.cpu_seconds() - cpu) / writes["requests"] * 1e6, 1
            )
            after = asyncio.run(
                _read_after_write(base, writers[:100], [int(m) for m in rng.choice(movies, 100)])
            )
            stored_lists = Scenario("stored", "stored", "GET", [f"/recommend/{u}?k=10" for u in writers])
            trained_lists = Scenario("trained", "trained", "GET", [f"/recommend/{u}?k=10" for u in trained])
            run_wrk(base, stored_lists, args.concurrency, 1, workdir)  # vectors re-solved and cached
            stored = run_wrk(base, stored_lists, args.concurrency, args.duration, workdir)
            plain = run_wrk(base, trained_lists, args.concurrency, args.duration, workdir)
    result = {
        "meta": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "model": str(args.model_dir)
            if args.model_dir
            else "the default artifact trained on ml-latest-small",
            "database": "SQLite file (WAL)",
            "load": f"wrk 1 thread, {args.concurrency} connections, {args.duration} s per row",
            "command": " ".join(
                [Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]
            ),
        },
        "ceiling": ceiling,
        "writes": writes,
        "read_after_write": after,
        "recommend_stored_ratings_users": stored,
        "recommend_trained_users": plain,
    }
    _write(result, args.out)
    return 0


def _write(result: dict[str, Any], out: Path) -> None:
    ceiling = result["ceiling"]["rps"]
    rows = [
        ("ceiling (trivial JSON endpoint)", result["ceiling"]),
        ("PUT /users/{id}/ratings/{movie}", result["writes"]),
        ("GET /recommend/{id}, users with stored ratings", result["recommend_stored_ratings_users"]),
        ("GET /recommend/{id}, trained users", result["recommend_trained_users"]),
    ]
    after = result["read_after_write"]
    lines = [
        "# Stored-ratings benchmark",
        "",
        f"Run {result['meta']['date']} on {result['meta']['machine']}; {result['meta']['load']}; one uvicorn worker; "
        f"{result['meta']['database']}; model: {result['meta']['model']}. Command: `{result['meta']['command']}`.",
        "",
        "| run | req/s | × ceiling | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {label} | {r['rps']:,.0f} | {r['rps'] / ceiling:.2f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} |"
            for label, r in rows
        ),
        "",
        f"Read-after-write: {after['reflected_on_first_read']} of {after['writes']} writes were reflected by the first "
        f"`GET /recommend` after the `PUT` returned (p50 {after['p50_ms']:.2f} ms, p99 {after['p99_ms']:.2f} ms from "
        "the PUT returning to that list).",
        "",
        "```json",
        json.dumps(result, indent=2),
        "```",
        "",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
