"""Serving benchmark: the service over real HTTP against the web stack's ceiling and naive Keras serving.

    python bench/serving.py [--model-dir DIR | --data ../shared/data/ml-latest-small]
                            [--duration 15] [--concurrency 1,16,64] [--workers 1] [--sweep] [--out bench/results/serving]

Starts uvicorn on 127.0.0.1 with `bench.naive_app:create_bench_app` (the real app, same settings and
middleware, plus the trivial JSON ceiling route `/_bench/ceiling`) and drives it with wrk (one wrk thread,
a generated Lua script picking a random known user / pre-built body per request), at each concurrency:

- ceiling: `GET /_bench/ceiling`, measured before and after the other scenarios (their mean is the reference;
  the two runs show how much the machine drifted); for information, the same answer on a DirectRoute;
- `POST /predict` one pair; `POST /predict` 1,000 pairs; `GET /recommend/{user_id}?k=10`; the same with a
  genre filter; `POST /recommend` fold-in of 10 ratings; `GET /movies/bias-ranking`;
- then, on a second server with the same uvicorn settings, the naive reference `bench.naive_app:create_naive_app`
  (`model.predict` per request).

Every figure is also a ratio to the ceiling at the same concurrency, measured in the same run, so results from a
noisy machine stay comparable. Resident memory (VmRSS of the server process tree) is read after warm-up.
`--sweep` additionally measures server settings (worker count, event loop, HTTP parser, BLAS threads,
threadpool size) on the ceiling, single predict and recommend at concurrency 16.
Without wrk on PATH an httpx/asyncio load loop is used (less accurate on 2 cores: it competes for CPU).
Writes `<out>.json` and `<out>.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: `bench.serving_load` imports from here
PYTHON = sys.executable
CEILING = "ceiling"


# ---- scenarios ------------------------------------------------------------------------------------------


@dataclass
class Scenario:
    """One endpoint under load: a method, and a pool of paths (GET) or bodies (POST) picked at random."""

    name: str
    label: str
    method: str
    paths: list[str]
    bodies: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


def build_scenarios(model_dir: Path, genre: str, seed: int = 0) -> dict[str, Scenario]:
    """Request pools from the served artifact's own ids: random known users and movies."""
    rng = np.random.default_rng(seed)
    users = np.load(model_dir / "user_ids.npy")
    movies = np.load(model_dir / "movie_ids.npy")

    def pairs(n: int) -> list[dict[str, int]]:
        return [
            {"user_id": int(u), "movie_id": int(m)}
            for u, m in zip(rng.choice(users, n), rng.choice(movies, n), strict=True)
        ]

    def fold_in_body() -> str:
        chosen = rng.choice(movies, 10, replace=False)
        ratings = rng.integers(1, 11, 10) / 2
        return json.dumps(
            {
                "ratings": [
                    {"movie_id": int(m), "rating": float(r)} for m, r in zip(chosen, ratings, strict=True)
                ],
                "k": 10,
            }
        )

    some_users = rng.choice(users, 2_000)
    return {
        CEILING: Scenario(CEILING, "ceiling: trivial JSON endpoint", "GET", ["/_bench/ceiling"]),
        "ceiling_direct": Scenario(
            "ceiling_direct",
            "trivial JSON endpoint on a DirectRoute (information)",
            "GET",
            ["/_bench/ceiling-direct"],
        ),
        "predict_one": Scenario(
            "predict_one",
            "POST /predict, one pair",
            "POST",
            ["/predict"],
            [json.dumps(p) for p in pairs(2_000)],
        ),
        "predict_1000": Scenario(
            "predict_1000",
            "POST /predict, 1,000 pairs",
            "POST",
            ["/predict"],
            [json.dumps({"instances": pairs(1_000)}) for _ in range(24)],
        ),
        "recommend": Scenario(
            "recommend", "GET /recommend/{user_id}?k=10", "GET", [f"/recommend/{u}?k=10" for u in some_users]
        ),
        "recommend_genre": Scenario(
            "recommend_genre",
            f"GET /recommend/{{user_id}}?k=10&genre={genre}",
            "GET",
            [f"/recommend/{u}?k=10&genre={genre}" for u in some_users],
        ),
        "fold_in": Scenario(
            "fold_in",
            "POST /recommend, fold-in of 10 ratings",
            "POST",
            ["/recommend"],
            [fold_in_body() for _ in range(500)],
        ),
        "bias_ranking": Scenario("bias_ranking", "GET /movies/bias-ranking", "GET", ["/movies/bias-ranking"]),
        "naive_predict": Scenario(
            "naive_predict",
            "naive: model.predict per request, one pair",
            "POST",
            ["/predict"],
            [json.dumps(p) for p in pairs(2_000)],
        ),
    }


# ---- load generators ------------------------------------------------------------------------------------

_LUA = """
local paths = {%(paths)s}
local bodies = {%(bodies)s}
local np, nb = #paths, #bodies
wrk.method = "%(method)s"
wrk.headers["Content-Type"] = "application/json"
%(headers)s
math.randomseed(os.time())
request = function()
  local body = nil
  if nb > 0 then body = bodies[math.random(nb)] end
  return wrk.format(nil, paths[math.random(np)], nil, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCHJSON {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"connect\\": %%d, \\"read\\": %%d, \\"write\\": %%d, " ..
    "\\"status\\": %%d, \\"timeout\\": %%d, \\"p50_us\\": %%d, \\"p90_us\\": %%d, \\"p99_us\\": %%d, " ..
    "\\"max_us\\": %%d, \\"mean_us\\": %%f}\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


def _lua_strings(items: list[str]) -> str:
    return ",".join(f"[==[{s}]==]" for s in items)


def run_wrk(
    base_url: str, scenario: Scenario, concurrency: int, duration: float, workdir: Path
) -> dict[str, Any]:
    """One wrk run (one thread: the server keeps the other core); returns requests/s, percentiles, errors."""
    script = workdir / f"{scenario.name}.lua"
    script.write_text(
        _LUA
        % {
            "paths": _lua_strings(scenario.paths),
            "bodies": _lua_strings(scenario.bodies),
            "method": scenario.method,
            "headers": "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in scenario.headers.items()),
        }
    )
    cmd = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        base_url + scenario.paths[0],
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("BENCHJSON "))
    raw = json.loads(line.removeprefix("BENCHJSON "))
    seconds = raw["duration_us"] / 1e6
    errors = raw["connect"] + raw["read"] + raw["write"] + raw["status"] + raw["timeout"]
    return {
        "requests": raw["requests"],
        "seconds": round(seconds, 3),
        "rps": round(raw["requests"] / seconds, 1),
        "p50_ms": raw["p50_us"] / 1e3,
        "p90_ms": raw["p90_us"] / 1e3,
        "p99_ms": raw["p99_us"] / 1e3,
        "max_ms": raw["max_us"] / 1e3,
        "errors": errors,
        "error_detail": {k: raw[k] for k in ("connect", "read", "write", "status", "timeout")},
    }


def run_httpx(base_url: str, scenario: Scenario, concurrency: int, duration: float) -> dict[str, Any]:
    """Closed-loop asyncio load with httpx: `concurrency` clients issuing requests back to back."""
    import httpx

    async def main() -> tuple[list[float], int, float]:
        latencies: list[float] = []
        errors = 0
        rng = np.random.default_rng()
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
            deadline = time.perf_counter() + duration

            async def worker() -> None:
                nonlocal errors
                while time.perf_counter() < deadline:
                    path = scenario.paths[int(rng.integers(len(scenario.paths)))]
                    body = (
                        scenario.bodies[int(rng.integers(len(scenario.bodies)))] if scenario.bodies else None
                    )
                    started = time.perf_counter()
                    try:
                        r = await client.request(
                            scenario.method, path, content=body, headers={"content-type": "application/json"}
                        )
                        errors += r.status_code >= 400
                    except httpx.HTTPError:
                        errors += 1
                    latencies.append(time.perf_counter() - started)

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return latencies, errors, time.perf_counter() - started

    latencies, errors, seconds = asyncio.run(main())
    lat = np.asarray(latencies) * 1e3
    return {
        "requests": len(lat),
        "seconds": round(seconds, 3),
        "rps": round(len(lat) / seconds, 1),
        "p50_ms": float(np.percentile(lat, 50)),
        "p90_ms": float(np.percentile(lat, 90)),
        "p99_ms": float(np.percentile(lat, 99)),
        "max_ms": float(lat.max()),
        "errors": errors,
        "error_detail": {},
    }


def measure(
    server: Server, scenario: Scenario, concurrency: int, duration: float, workdir: Path
) -> dict[str, Any]:
    """A load run with the machine's load average, and the server's CPU seconds, recorded before and after it.

    CPU microseconds per request of the server process tree are the contention-proof figure: on a shared
    machine requests/s fall when neighbours take the cores, CPU time per request hardly moves.
    """
    before = os.getloadavg()
    cpu_before = server.cpu_seconds()
    if shutil.which("wrk"):
        result = run_wrk(server.base_url, scenario, concurrency, duration, workdir)
    else:
        result = run_httpx(server.base_url, scenario, concurrency, duration)
    cpu = server.cpu_seconds() - cpu_before
    result["server_cpu_us_per_request"] = round(cpu / max(result["requests"], 1) * 1e6, 1)
    result.update(
        scenario=scenario.name,
        concurrency=concurrency,
        loadavg_before=[round(x, 2) for x in before],
        loadavg_after=[round(x, 2) for x in os.getloadavg()],
    )
    return result


# ---- the server ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerConfig:
    """uvicorn and service settings of one measured server."""

    workers: int = 1
    loop: str = "asyncio"  # the Dockerfile's: uvloop starves connections when saturated (bench/list_cache.py)
    http: str = "httptools"
    threadpool_size: int = 40
    blas_threads: int = 1
    # Further MOVIEREC_* settings of this server, e.g. (("MOVIEREC_LIST_BATCHING", "on"),).
    env: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        return (
            f"{self.workers} worker(s), loop={self.loop}, http={self.http}, "
            f"threadpool={self.threadpool_size}, blas_threads={self.blas_threads}"
        )


class Server:
    """A uvicorn subprocess on 127.0.0.1; `with Server(...) as s:` waits for /ready and stops it after."""

    def __init__(
        self, factory: str, model_dir: Path, config: ServerConfig, port: int, ready_timeout: float = 300
    ) -> None:
        self.factory, self.model_dir, self.config, self.port = factory, model_dir, config, port
        self.ready_timeout = ready_timeout
        self.base_url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="bench-uvicorn-", suffix=".log", delete=False)  # noqa: SIM115

    def __enter__(self) -> Server:
        env = {
            **os.environ,
            "MOVIEREC_MODEL_DIR": str(self.model_dir),
            "MOVIEREC_DEVICE": "cpu",
            "MOVIEREC_THREADPOOL_SIZE": str(self.config.threadpool_size),
            "MOVIEREC_BLAS_THREADS": str(self.config.blas_threads),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            **dict(self.config.env),
        }
        cmd = [
            PYTHON,
            "-m",
            "uvicorn",
            "--factory",
            self.factory,
            "--app-dir",
            str(ROOT),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.config.workers),
            "--loop",
            self.config.loop,
            "--http",
            self.config.http,
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + self.ready_timeout
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}; log: {Path(self.log.name).read_text()[-3000:]}"
                )
            try:
                if httpx.get(self.base_url + "/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"server not ready after {self.ready_timeout} s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        if exc[0] is None:  # keep the server log only when something went wrong
            Path(self.log.name).unlink(missing_ok=True)

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the server's process tree so far."""
        assert self.proc is not None
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in _process_tree(self.proc.pid):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / ticks

    def memory(self) -> dict[str, Any]:
        """VmRSS / VmHWM (MB) summed over the server's process tree (the supervisor and its workers)."""
        assert self.proc is not None
        pids = _process_tree(self.proc.pid)
        rss = hwm = 0.0
        for pid in pids:
            status = _proc_status(pid)
            rss += status.get("VmRSS", 0.0)
            hwm += status.get("VmHWM", 0.0)
        return {"rss_mb": round(rss, 1), "hwm_mb": round(hwm, 1), "processes": len(pids)}


def _proc_status(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return out


def _process_tree(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(parents.get(pid, []))
    return tree


def warm_up(server: Server, scenarios: list[Scenario], workdir: Path) -> None:
    for scenario in scenarios:
        measure(server, scenario, 4, 1, workdir)


# ---- the run ---------------------------------------------------------------------------------------------


def train_model(data: Path, workdir: Path, kind: str | None = None) -> Path:
    """Train the default artifact (bpmf + ranker), or `kind` with the ranker, exactly as `python -m training
    train` does; returns the run directory."""
    out = workdir / ("models" if kind is None else f"models-{kind}")
    subprocess.run(
        [
            PYTHON,
            "-m",
            "training",
            "train",
            "--data",
            str(data),
            *(["--model", kind] if kind else []),
            "--output-dir",
            str(out),
            "--quiet",
        ],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return (out / "latest").resolve()


NOTES = [
    "- The ceiling is a trivial endpoint declared the ordinary FastAPI way (what a minimal FastAPI app pays per "
    "request). The service's hot routes are DirectRoutes (app/routing.py): documented by FastAPI but called "
    "without its per-request dependency solving, so a cheap one can exceed 1.0x; the *DirectRoute* row shows "
    "the same trivial answer served that way, i.e. how much of the ceiling is framework.",
    "- Server CPU µs/req is the server process's CPU time over the run divided by its requests: steadier than "
    "req/s on a shared machine, because wrk competes for the same 2 cores.",
]

MAIN_SCENARIOS = [
    "ceiling_direct",
    "predict_one",
    "predict_1000",
    "recommend",
    "recommend_genre",
    "fold_in",
    "bias_ranking",
]


def measure_service(
    model_dir: Path,
    scenarios: dict[str, Scenario],
    names: list[str],
    concurrency: list[int],
    duration: float,
    config: ServerConfig,
    port: int,
    workdir: Path,
) -> dict[str, Any]:
    """Ceiling (before and after) and every named scenario at each concurrency, on one server."""
    rows: list[dict[str, Any]] = []
    with Server("bench.naive_app:create_bench_app", model_dir, config, port) as server:
        warm_up(server, [scenarios[n] for n in [CEILING, *names]], workdir)
        memory = server.memory()
        for c in concurrency:
            block = [measure(server, scenarios[CEILING], c, duration, workdir)]
            block += [measure(server, scenarios[n], c, duration, workdir) for n in names]
            block.append(measure(server, scenarios[CEILING], c, duration, workdir))
            rows += block
            print(f"  c={c}: " + ", ".join(f"{r['scenario']} {r['rps']:.0f}/s" for r in block), flush=True)
        memory_after = server.memory()
    return {"rows": rows, "memory_after_warmup": memory, "memory_at_end": memory_after}


def ceilings(rows: list[dict[str, Any]]) -> dict[int, dict[str, float]]:
    """Per concurrency: the mean of the ceiling runs (requests/s and p99)."""
    out: dict[int, dict[str, float]] = {}
    for c in sorted({r["concurrency"] for r in rows}):
        runs = [r for r in rows if r["scenario"] == CEILING and r["concurrency"] == c]
        out[c] = {
            "rps": round(float(np.mean([r["rps"] for r in runs])), 1),
            "p50_ms": float(np.mean([r["p50_ms"] for r in runs])),
            "p99_ms": float(np.mean([r["p99_ms"] for r in runs])),
            "cpu_us": float(np.mean([r["server_cpu_us_per_request"] for r in runs])),
            "runs_rps": [r["rps"] for r in runs],
        }
    return out


def add_ratios(rows: list[dict[str, Any]], ceiling: dict[int, dict[str, float]]) -> None:
    for r in rows:
        ref = ceiling[r["concurrency"]]
        r["rps_vs_ceiling"] = round(r["rps"] / ref["rps"], 4)
        r["p99_vs_ceiling"] = round(r["p99_ms"] / ref["p99_ms"], 3)
        r["cpu_vs_ceiling"] = round(r["server_cpu_us_per_request"] / max(ref["cpu_us"], 1e-9), 2)


def evaluate_targets(rows: list[dict[str, Any]], memory_mb: float, c: int = 16) -> list[dict[str, Any]]:
    """The issue's targets at concurrency `c` (16), each with its measured figure."""

    def row(name: str) -> dict[str, Any] | None:
        return next((r for r in rows if r["scenario"] == name and r["concurrency"] == c), None)

    targets: list[dict[str, Any]] = []
    one, rec, naive = row("predict_one"), row("recommend"), row("naive_predict")
    if one:
        targets.append(
            {
                "target": f"/predict single >= 70% of ceiling req/s (c={c})",
                "value": one["rps_vs_ceiling"],
                "met": one["rps_vs_ceiling"] >= 0.7,
            }
        )
        targets.append(
            {
                "target": f"/predict single p99 <= 1.5x ceiling p99 (c={c})",
                "value": one["p99_vs_ceiling"],
                "met": one["p99_vs_ceiling"] <= 1.5,
            }
        )
    for name in ("recommend", "recommend_genre", "fold_in"):
        r = row(name)
        if r:
            targets.append(
                {
                    "target": f"{name} >= 40% of ceiling req/s (c={c})",
                    "value": r["rps_vs_ceiling"],
                    "met": r["rps_vs_ceiling"] >= 0.4,
                }
            )
    if one and naive:
        speedup = one["rps"] / max(naive["rps"], 1e-9)
        targets.append(
            {
                "target": f"/predict >= 100x naive model.predict req/s (c={c})",
                "value": round(speedup, 1),
                "met": speedup >= 100,
            }
        )
    errors = sum(r["errors"] for r in rows)
    targets.append({"target": "0 errors in every run", "value": errors, "met": errors == 0})
    targets.append(
        {
            "target": "service resident memory <= 800 MB after warm-up",
            "value": memory_mb,
            "met": memory_mb <= 800,
        }
    )
    del rec
    return targets


SWEEP = [
    ServerConfig(),
    ServerConfig(loop="uvloop"),
    ServerConfig(http="h11"),
    ServerConfig(workers=2),
    ServerConfig(blas_threads=2),
    ServerConfig(threadpool_size=4),
]


def run_sweep(
    model_dir: Path, scenarios: dict[str, Scenario], duration: float, port: int, workdir: Path
) -> list[dict[str, Any]]:
    """Server settings on ceiling, single predict and recommend at concurrency 16."""
    results = []
    for config in SWEEP:
        print(f"sweep: {config.describe()}", flush=True)
        with Server("bench.naive_app:create_bench_app", model_dir, config, port) as server:
            names = [CEILING, "predict_one", "recommend"]
            warm_up(server, [scenarios[n] for n in names], workdir)
            memory = server.memory()
            rows = [measure(server, scenarios[n], 16, duration, workdir) for n in names]
        entry = {"config": config.__dict__, "describe": config.describe(), "memory": memory}
        for r in rows:
            entry[r["scenario"]] = {
                k: r[k] for k in ("rps", "p50_ms", "p99_ms", "errors", "loadavg_before", "loadavg_after")
            }
        results.append(entry)
    return results


# ---- report ----------------------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def write_report(result: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    labels = result["labels"]
    lines = [
        "# Serving benchmark",
        "",
        f"Run {result['meta']['date']} on {result['meta']['machine']}; load generator {result['meta']['load_generator']}; "
        f"server: {result['meta']['server']}. Model: `{result['meta']['model']}`. {result['meta']['duration_s']} s per "
        "cell. Ratios are to the ceiling (trivial JSON endpoint on the same server) at the same concurrency, "
        "measured in the same run (mean of a run before and after the block). "
        f"Machine load average (1 min) during the run: {result['meta']['loadavg_range']}.",
        "",
        f"Command: `{result['meta']['command']}`",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in result["meta"].get("versions", {}).items()) + ".",
        "",
    ]
    for c in result["concurrency"]:
        ref = result["ceiling"][str(c)]
        lines += [
            f"## Concurrency {c}",
            "",
            f"Ceiling runs: {', '.join(_fmt(x) for x in ref['runs_rps'])} req/s.",
            "",
            "| scenario | req/s | × ceiling | p50 ms | p99 ms | p99 × ceiling | errors | server CPU µs/req | × ceiling |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in result["rows"]:
            if r["concurrency"] != c:
                continue
            lines.append(
                f"| {labels[r['scenario']]} | {_fmt(r['rps'])} | {r['rps_vs_ceiling']:.3f} | {_fmt(r['p50_ms'])} | "
                f"{_fmt(r['p99_ms'])} | {r['p99_vs_ceiling']:.2f} | {r['errors']} | "
                f"{_fmt(r['server_cpu_us_per_request'])} | {r['cpu_vs_ceiling']:.2f} |"
            )
        lines.append("")
    from bench.serving_load import report_lines

    lines += report_lines(result.get("mixed"), result.get("batching"))
    mem = result["memory"]
    lines += [
        "## Resident memory",
        "",
        "| process | VmRSS after warm-up (MB) | at end (MB) |",
        "|---|---:|---:|",
        f"| service (numpy scoring, no Keras import) | {mem['service_after_warmup']['rss_mb']} | {mem['service_at_end']['rss_mb']} |",
    ]
    if "naive_after_warmup" in mem:
        lines.append(
            f"| naive (Keras on TensorFlow, model.predict) | {mem['naive_after_warmup']['rss_mb']} | "
            f"{mem['naive_at_end']['rss_mb']} |"
        )
    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---:|:---:|"]
    for t in result["targets"]:
        lines.append(f"| {t['target']} | {t['value']} | {'yes' if t['met'] else '**no**'} |")
    if result.get("sweep"):
        lines += [
            "",
            "## Server settings (concurrency 16)",
            "",
            "| settings | ceiling req/s | predict req/s (× ceiling) | recommend req/s (× ceiling) | predict p99 ms | RSS MB |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for s in result["sweep"]:
            ceil = s[CEILING]["rps"]
            lines.append(
                f"| {s['describe']} | {_fmt(ceil)} | {_fmt(s['predict_one']['rps'])} ({s['predict_one']['rps'] / ceil:.2f}) | "
                f"{_fmt(s['recommend']['rps'])} ({s['recommend']['rps'] / ceil:.2f}) | {_fmt(s['predict_one']['p99_ms'])} | "
                f"{s['memory']['rss_mb']} |"
            )
    if result.get("notes"):
        lines += ["", "## Notes", "", *result["notes"]]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def _versions() -> dict[str, str]:
    """The serving stack's versions, recorded with the figures they produced."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("fastapi", "starlette", "pydantic", "uvicorn", "numpy"):
        with contextlib.suppress(PackageNotFoundError):
            found[package] = version(package)
    return found


def machine() -> str:
    cpu = ""
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            x.split(":", 1)[1].strip()
            for x in Path("/proc/cpuinfo").read_text().splitlines()
            if x.startswith("model name")
        )
    return f"{os.cpu_count()} CPUs ({cpu or platform.processor()}), Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/ml-latest-small")
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="serve this artifact instead of training one"
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per scenario and concurrency")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--scenarios", default=",".join(MAIN_SCENARIOS))
    parser.add_argument("--genre", default="Comedy")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--loop", default="asyncio")
    parser.add_argument("--http", default="httptools")
    parser.add_argument("--threadpool-size", type=int, default=40)
    parser.add_argument("--blas-threads", type=int, default=1)
    parser.add_argument("--no-naive", action="store_true", help="skip the model.predict reference")
    parser.add_argument("--sweep", action="store_true", help="also compare server settings at concurrency 16")
    parser.add_argument("--sweep-duration", type=float, default=None, help="default: --duration")
    parser.add_argument("--no-mixed", action="store_true", help="skip the mixed light + heavy load rows")
    parser.add_argument(
        "--large-model-dir",
        type=Path,
        default=None,
        help="a large-catalogue artifact (e.g. 62,000 movies from `training synth`) for the micro-batching rows",
    )
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/serving")
    args = parser.parse_args(argv)

    concurrency = [int(x) for x in args.concurrency.split(",")]
    names = [n for n in args.scenarios.split(",") if n]
    config = ServerConfig(args.workers, args.loop, args.http, args.threadpool_size, args.blas_threads)
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        workdir = Path(tmp)
        model_dir = args.model_dir.resolve() if args.model_dir else train_model(args.data, workdir)
        scenarios = build_scenarios(model_dir, args.genre)
        load_start = os.getloadavg()
        print(f"service: {config.describe()}", flush=True)
        service = measure_service(
            model_dir, scenarios, names, concurrency, args.duration, config, args.port, workdir
        )
        rows = service["rows"]
        memory = {
            "service_after_warmup": service["memory_after_warmup"],
            "service_at_end": service["memory_at_end"],
        }
        if not args.no_naive:
            print("naive reference", flush=True)
            with Server("bench.naive_app:create_naive_app", model_dir, config, args.port + 1) as naive:
                warm_up(naive, [scenarios["naive_predict"]], workdir)
                memory["naive_after_warmup"] = naive.memory()
                for c in concurrency:
                    rows.append(measure(naive, scenarios["naive_predict"], c, args.duration, workdir))
                    print(f"  c={c}: naive {rows[-1]['rps']:.1f}/s", flush=True)
                memory["naive_at_end"] = naive.memory()
        from bench.serving_load import measure_batching, measure_mixed

        mixed = None
        if not args.no_mixed:
            print("mixed load", flush=True)
            mixed = measure_mixed(model_dir, scenarios, args.duration, args.port + 3, workdir)
        batching = None
        if args.large_model_dir:
            print("micro-batching", flush=True)
            batching = measure_batching(args.large_model_dir.resolve(), args.duration, args.port + 4, workdir)
        sweep = (
            run_sweep(model_dir, scenarios, args.sweep_duration or args.duration, args.port + 2, workdir)
            if args.sweep
            else []
        )
        model_name = (
            str(model_dir)
            if args.model_dir
            else f"the default artifact (bpmf + ranker) trained on {args.data.name} by this run"
        )
    ceiling = ceilings(rows)
    add_ratios(rows, ceiling)
    loads = [r["loadavg_before"][0] for r in rows] + [r["loadavg_after"][0] for r in rows]
    result = {
        "meta": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "load_generator": "wrk 1 thread, Lua-randomised requests"
            if shutil.which("wrk")
            else "httpx asyncio loop",
            "server": f"uvicorn, {config.describe()}",
            "model": model_name,
            "duration_s": args.duration,
            "command": " ".join(
                [Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]
            ),
            "loadavg_at_start": [round(x, 2) for x in load_start],
            "loadavg_range": f"{min(loads):.2f} to {max(loads):.2f}",
            "versions": _versions(),
        },
        "concurrency": concurrency,
        "labels": {n: s.label for n, s in scenarios.items()},
        "ceiling": {str(c): v for c, v in ceiling.items()},
        "rows": rows,
        "memory": memory,
        "targets": evaluate_targets(rows, memory["service_after_warmup"]["rss_mb"])
        + (mixed["targets"] if mixed else [])
        + (batching["targets"] if batching else []),
        "mixed": mixed,
        "batching": batching,
        "sweep": sweep,
        "notes": NOTES,
    }
    write_report(result, args.out)
    for t in result["targets"]:
        print(f"{'MET ' if t['met'] else 'MISS'} {t['target']}: {t['value']}")
    print(f"wrote {args.out.with_suffix('.md')} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
