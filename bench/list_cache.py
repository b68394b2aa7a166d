"""The list cache (app/list_cache.py) over HTTP: repeat and first lists against the ceiling, in one run.

    python bench/list_cache.py [--model-dir DIR | --data ../shared/data/ml-latest-small] [--kinds default,bias]
                               [--duration 10] [--concurrency 16,64] [--repeats 2] [--out bench/results/list_cache]

For each artifact (by default the default artifact, bpmf + ranker, and `bias`, both trained on the data by this
run), three uvicorn servers one after the other: the service as shipped (list cache on, asyncio's event loop),
the same with `MOVIEREC_LIST_CACHE_MB=0`, which scores every list afresh, as a first request or the first after
a write does, and that again on uvloop (uvicorn's choice when it is installed), which the service does not use
because it starves connections at 64 of them. Each drives wrk (bench/serving.py's load generator: one thread, a random known user per
request) at each concurrency over `GET /recommend/{user}?k=10` and the same with a genre filter, with the
trivial JSON ceiling before and after on the same server; after warm-up every user's list has been asked once, so
the cached server answers repeat lists. Figures are ratios to the ceiling of the same server and repeat, wall
(requests/s, p99) and CPU (server CPU µs per request). Writes `<out>.json` and `<out>.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.serving import (  # noqa: E402  (a script: the repository root is put on the path first)
    CEILING,
    Server,
    ServerConfig,
    build_scenarios,
    machine,
    measure,
    train_model,
    warm_up,
)

SCENARIOS = ("recommend", "recommend_genre")
_CACHE_OFF = (("MOVIEREC_LIST_CACHE_MB", "0"),)
# Each mode: the server's MOVIEREC_* settings and uvicorn's event loop. The last one is why the service runs on
# asyncio's loop (Dockerfile): under uvloop a saturated server leaves some connections unanswered for hundreds
# of milliseconds at 64 connections, whatever the route costs.
MODES: dict[str, tuple[tuple[tuple[str, str], ...], str]] = {
    "cache on (repeat lists)": ((), "asyncio"),
    "cache off (first lists)": (_CACHE_OFF, "asyncio"),
    "cache off, uvloop": (_CACHE_OFF, "uvloop"),
}


def measure_mode(
    model_dir: Path,
    env: tuple[tuple[str, str], ...],
    loop: str,
    concurrency: list[int],
    duration: float,
    port: int,
    workdir: Path,
) -> list[dict[str, Any]]:
    scenarios = build_scenarios(model_dir, "Comedy")
    rows = []
    with Server(
        "bench.naive_app:create_bench_app", model_dir, ServerConfig(loop=loop, env=env), port
    ) as server:
        warm_up(server, [scenarios[CEILING], *(scenarios[n] for n in SCENARIOS)], workdir)
        # Every user of the pools once more, so that the cached server answers repeat lists only.
        for name in SCENARIOS:
            measure(server, scenarios[name], 16, 3, workdir)
        for c in concurrency:
            block = [measure(server, scenarios[CEILING], c, duration, workdir)]
            block += [measure(server, scenarios[n], c, duration, workdir) for n in SCENARIOS]
            block.append(measure(server, scenarios[CEILING], c, duration, workdir))
            ceiling_rps = float(np.mean([block[0]["rps"], block[-1]["rps"]]))
            ceiling_p99 = float(np.mean([block[0]["p99_ms"], block[-1]["p99_ms"]]))
            ceiling_cpu = float(
                np.mean([block[0]["server_cpu_us_per_request"], block[-1]["server_cpu_us_per_request"]])
            )
            for row in block[1:-1]:
                row.update(
                    ceiling_rps=round(ceiling_rps, 1),
                    ceiling_p99_ms=round(ceiling_p99, 2),
                    rps_vs_ceiling=round(row["rps"] / ceiling_rps, 3),
                    p99_vs_ceiling=round(row["p99_ms"] / ceiling_p99, 2),
                    cpu_vs_ceiling=round(row["server_cpu_us_per_request"] / ceiling_cpu, 2),
                )
                rows.append(row)
            print(f"  c={c}: " + ", ".join(f"{r['scenario']} {r['rps']:.0f}/s" for r in block), flush=True)
    return rows


def write_report(result: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    meta = result["meta"]
    lines = [
        "# The list cache: repeat and first lists against the ceiling",
        "",
        f"Produced by `{meta['command']}` on {meta['machine']}, {meta['date']}; wrk, 1 thread, {meta['duration_s']} s per"
        " row; load average "
        + f"{meta['loadavg_at_start']} at the start, {meta['loadavg_at_end']} at the end.",
        "One uvicorn worker; `cache off` is `MOVIEREC_LIST_CACHE_MB=0`: every list scored afresh, the cost of a first"
        " list or of the first list after a write. Ratios are to the ceiling (trivial JSON route) of the same server,"
        " measured before and after each block; `cpu x` is server CPU per request over the ceiling's. The service runs"
        " on asyncio's event loop; `cache off, uvloop` is the same server on uvloop, for comparison.",
        "",
        "| model | mode | repeat | route | conns | req/s | × ceiling | p99 ms | p99 × ceiling | max ms | CPU µs/req |"
        " cpu × | errors |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        errors = row.get("errors", 0)
        lines.append(
            f"| {row['model']} | {row['mode']} | {row['repeat']} | {result['labels'][row['scenario']]} | "
            f"{row['concurrency']} | {row['rps']:.0f} | {row['rps_vs_ceiling']:.2f} | {row['p99_ms']:.1f} | "
            f"{row['p99_vs_ceiling']:.2f} | {row['max_ms']:.0f} | {row['server_cpu_us_per_request']:.0f} | {row['cpu_vs_ceiling']:.2f} | "
            f"{errors} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/ml-latest-small")
    parser.add_argument("--model-dir", type=Path, default=None, help="measure this artifact only")
    parser.add_argument("--kinds", default="default,bias")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", default="16,64")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--port", type=int, default=8223)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/list_cache")
    args = parser.parse_args(argv)
    concurrency = [int(c) for c in args.concurrency.split(",")]
    load_start = os.getloadavg()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-list-cache-") as tmp:
        workdir = Path(tmp)
        if args.model_dir:
            models = {args.model_dir.name: args.model_dir.resolve()}
        else:
            models = {
                kind: train_model(args.data, workdir, None if kind == "default" else kind)
                for kind in args.kinds.split(",")
            }
        for repeat in range(1, args.repeats + 1):
            for model, model_dir in models.items():
                for mode, (env, loop) in MODES.items():
                    print(f"{model}, {mode}, repeat {repeat}", flush=True)
                    for row in measure_mode(
                        model_dir, env, loop, concurrency, args.duration, args.port, workdir
                    ):
                        rows.append({**row, "model": model, "mode": mode, "repeat": repeat})
        labels = {n: s.label for n, s in build_scenarios(next(iter(models.values())), "Comedy").items()}
    result = {
        "meta": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "command": " ".join(
                ["python bench/list_cache.py", *(argv if argv is not None else sys.argv[1:])]
            ),
            "duration_s": args.duration,
            "loadavg_at_start": [round(x, 2) for x in load_start],
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "labels": labels,
        "rows": rows,
    }
    write_report(result, args.out)
    print(f"wrote {args.out.with_suffix('.md')} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
