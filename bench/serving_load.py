"""The serving benchmark's load-shape rows: mixed load, and lists on a large catalogue.

Called by `bench/serving.py` (one run, one result file):
- mixed load, one worker: `/recommend` alone at 64 connections, then 48 connections of `/recommend` while 8
  connections write ratings (`PUT /users/{id}/ratings/{movie}`) and 4 send 1,000-pair `/predict` batches at
  the same time (three wrk processes). Targets: `/recommend` p99 under the mix <= 3x its p99 alone, no list and
  no write failing, most batches served (refusals are the 503 + Retry-After of app/offload.py).
- a large catalogue, one worker (`--large-model-dir`, e.g. 62,000 movies from `python -m training synth`):
  first lists (list cache off) with list batching off and as shipped (`auto`, which batches such costly
  lists in a thread), at concurrency 16 and 1, and repeat lists (cache on, every user of the pool asked once
  before). Targets: >= 500 req/s for first lists and >= 1,000 for repeat lists at 16 connections, and a lone
  request's p50 no worse with batching (no batching window adds latency to it).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.serving import Scenario, Server, ServerConfig, build_scenarios, run_wrk, warm_up

MIXED_LIGHT_CONNECTIONS, MIXED_WRITE_CONNECTIONS, MIXED_HEAVY_CONNECTIONS = 48, 8, 4
MIXED_KEY = "bench-key"
# A lone request is "no worse" within this much of the unbatched p50: run-to-run noise on a shared machine.
P50_TOLERANCE = 1.10
FIRST_LISTS_TARGET_RPS, REPEAT_LISTS_TARGET_RPS = 500, 1_000


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("requests", "rps", "p50_ms", "p90_ms", "p99_ms", "max_ms", "errors", "error_detail")
    return {k: row[k] for k in keys}


def _writes(model_dir: Path, n: int = 2_000) -> Scenario:
    """Ratings of random known users and movies (repeats included), as the web page's clients send them."""
    import numpy as np

    rng = np.random.default_rng(7)
    users, movies = np.load(model_dir / "user_ids.npy"), np.load(model_dir / "movie_ids.npy")
    paths = [
        f"/users/{int(u)}/ratings/{int(m)}"
        for u, m in zip(rng.choice(users, n), rng.choice(movies, n), strict=True)
    ]
    bodies = [json.dumps({"rating": float(r)}) for r in rng.integers(1, 11, 50) / 2]
    return Scenario("put", "PUT", "PUT", paths, bodies, {"Authorization": f"Bearer {MIXED_KEY}"})


def measure_mixed(
    model_dir: Path, scenarios: dict[str, Scenario], duration: float, port: int, workdir: Path
) -> dict[str, Any]:
    """/recommend alone at 64 connections, then under 8 connections of writes and 4 of 1,000-pair batches."""
    light, heavy, writes = scenarios["recommend"], scenarios["predict_1000"], _writes(model_dir)
    env = (("MOVIEREC_API_KEY", MIXED_KEY), ("MOVIEREC_DATABASE_URL", f"sqlite:///{workdir / 'mixed.db'}"))
    total = MIXED_LIGHT_CONNECTIONS + MIXED_WRITE_CONNECTIONS + MIXED_HEAVY_CONNECTIONS
    with Server("bench.naive_app:create_bench_app", model_dir, ServerConfig(env=env), port) as server:
        warm_up(server, [light, heavy, writes], workdir)
        alone = run_wrk(server.base_url, light, total, duration, workdir)
        with ThreadPoolExecutor(3) as pool:
            loads = [
                pool.submit(run_wrk, server.base_url, scenario, connections, duration, workdir)
                for scenario, connections in (
                    (light, MIXED_LIGHT_CONNECTIONS),
                    (writes, MIXED_WRITE_CONNECTIONS),
                    (heavy, MIXED_HEAVY_CONNECTIONS),
                )
            ]
            under_mix, written, batches = (load.result() for load in loads)
    served = 1 - batches["error_detail"]["status"] / max(batches["requests"], 1)
    ratio = under_mix["p99_ms"] / max(alone["p99_ms"], 1e-9)
    return {
        "recommend_alone_c64": _summary(alone),
        "recommend_under_mix_c48": _summary(under_mix),
        "writes_under_mix_c8": _summary(written),
        "batches_under_mix_c4": _summary(batches),
        "p99_ratio": round(ratio, 2),
        "batches_served_share": round(served, 3),
        "targets": [
            {
                "target": "mixed load: /recommend p99 <= 3x its p99 alone (c=64)",
                "value": round(ratio, 2),
                "met": ratio <= 3,
            },
            {
                "target": "mixed load: no list and no write fails",
                "value": under_mix["errors"] + written["errors"],
                "met": under_mix["errors"] + written["errors"] == 0,
            },
            {"target": "mixed load: most batches served", "value": round(served, 3), "met": served > 0.5},
        ],
    }


# The large-catalogue servers: list cache off (every list scored: first lists), batching off and as shipped.
LARGE_MODES = {
    "first lists, batching off": (("MOVIEREC_LIST_CACHE_MB", "0"), ("MOVIEREC_LIST_BATCHING", "off")),
    "first lists, as shipped": (("MOVIEREC_LIST_CACHE_MB", "0"),),
}


def measure_batching(model_dir: Path, duration: float, port: int, workdir: Path) -> dict[str, Any]:
    """/recommend on a large catalogue: first lists with batching off and as shipped (c16, c1), repeat lists."""
    recommend = build_scenarios(model_dir, "Comedy")["recommend"]
    runs: dict[str, dict[str, Any]] = {}
    for mode, env in LARGE_MODES.items():
        with Server("bench.naive_app:create_bench_app", model_dir, ServerConfig(env=env), port) as server:
            warm_up(server, [recommend], workdir)
            runs[mode] = {
                f"c{c}": _summary(run_wrk(server.base_url, recommend, c, duration, workdir)) for c in (16, 1)
            }
            runs[mode]["memory"] = server.memory()
    with Server("bench.naive_app:create_bench_app", model_dir, ServerConfig(), port) as server:
        # Every user of the pool once (wrk's random order covers the 2,000 of them many times over), so that
        # the measured run answers repeat lists.
        run_wrk(server.base_url, recommend, 16, max(duration, 10), workdir)
        runs["repeat lists"] = {"c16": _summary(run_wrk(server.base_url, recommend, 16, duration, workdir))}
        runs["repeat lists"]["memory"] = server.memory()
    off, shipped = runs["first lists, batching off"], runs["first lists, as shipped"]
    first_rps, repeat_rps = shipped["c16"]["rps"], runs["repeat lists"]["c16"]["rps"]
    speedup = first_rps / max(off["c16"]["rps"], 1e-9)
    p50_lone = shipped["c1"]["p50_ms"] / max(off["c1"]["p50_ms"], 1e-9)
    return {
        "model": str(model_dir),
        "n_movies": _n_movies(model_dir),
        "runs": runs,
        "speedup_c16": round(speedup, 2),
        "p99_ratio_c16": round(shipped["c16"]["p99_ms"] / max(off["c16"]["p99_ms"], 1e-9), 2),
        "p50_ratio_c1": round(p50_lone, 3),
        "targets": [
            {
                "target": f"{FIRST_LISTS_TARGET_RPS:,} req/s for first lists on a large catalogue (c=16)",
                "value": round(first_rps),
                "met": first_rps >= FIRST_LISTS_TARGET_RPS,
            },
            {
                "target": f"{REPEAT_LISTS_TARGET_RPS:,} req/s for repeat lists on a large catalogue (c=16)",
                "value": round(repeat_rps),
                "met": repeat_rps >= REPEAT_LISTS_TARGET_RPS,
            },
            {
                "target": f"large catalogue: lone-request p50 no worse with batching (c=1, within {P50_TOLERANCE - 1:.0%})",
                "value": round(p50_lone, 3),
                "met": p50_lone <= P50_TOLERANCE,
            },
        ],
    }


def _n_movies(model_dir: Path) -> int:
    import numpy as np

    return int(np.load(model_dir / "movie_ids.npy").shape[0])


def report_lines(mixed: dict[str, Any] | None, batching: dict[str, Any] | None) -> list[str]:
    """Markdown sections for `bench/serving.py`'s report."""
    lines: list[str] = []
    head = "| run | req/s | p50 ms | p99 ms | max ms | errors |"
    rule = "|---|---:|---:|---:|---:|---:|"

    def row(label: str, r: dict[str, Any]) -> str:
        return f"| {label} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.1f} | {r['errors']} |"

    if mixed:
        lines += [
            "## Mixed load (one worker)",
            "",
            f"`/recommend` p99 under the mix is {mixed['p99_ratio']}x its p99 alone; "
            f"{mixed['batches_served_share']:.1%} of the 1,000-pair batches were served (the rest got 503 + Retry-After).",
            "",
            head,
            rule,
            row("GET /recommend alone, 64 connections", mixed["recommend_alone_c64"]),
            row("GET /recommend, 48 connections, under the mix", mixed["recommend_under_mix_c48"]),
            row("PUT a rating, 8 connections, under the mix", mixed["writes_under_mix_c8"]),
            row("POST /predict 1,000 pairs, 4 connections, under the mix", mixed["batches_under_mix_c4"]),
            "",
        ]
    if batching:
        runs = batching["runs"]
        lines += [
            f"## Lists on a large catalogue ({batching['n_movies']:,} movies, one worker)",
            "",
            "First lists: list cache off, every list scored. As shipped (`MOVIEREC_LIST_BATCHING=auto`: such costly "
            f"lists are batched in a scoring thread) against batching off at concurrency 16: {batching['speedup_c16']}x "
            f"the requests/s, p99 {batching['p99_ratio_c16']}x; a lone request (concurrency 1) p50 "
            f"{batching['p50_ratio_c1']}x. Repeat lists: cache on, every user of the pool asked before.",
            "",
            head,
            rule,
        ]
        for mode, by_concurrency in runs.items():
            for c, measured in by_concurrency.items():
                if c.startswith("c"):
                    lines.append(row(f"{mode}, concurrency {c[1:]}", measured))
        lines.append("")
    return lines
