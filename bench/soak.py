"""Soak test of today's stack: mixed reads and writes at sustained concurrency, with a model swap every minute.

    python bench/soak.py [--duration 600] [--concurrency 64] [--swap-every 60] [--warmup 30]
                         [--data ../shared/data/ml-latest-small] [--out bench/results/soak.md]

Models: two runs of the default artifact, what `make train` builds (`python -m training train --data DIR`:
bpmf with side features and the top-N ranker, every setting at the CLI's default), seeds 0 and 1, trained on
`--data` into a temporary model root; only the first moves `latest`.

Server: one uvicorn worker on 127.0.0.1 serving ROOT/latest, with stored ratings in a SQLite file of the temporary
directory (MOVIEREC_DATABASE_URL), writes enabled (MOVIEREC_API_KEY), MOVIEREC_ADMIN_TOKEN set, list batching on
(MOVIEREC_LIST_BATCHING=on) and model polling every 2 s (MOVIEREC_MODEL_POLL_SECONDS=2).

Traffic: `--concurrency` async httpx clients in this process for `--duration` seconds, each request drawn from
    37%  GET /recommend/{user}?k=10               known users                          expected 200
     3%  GET /recommend/{user}?k=10               users that stored a rating (re-solved)  200
    20%  POST /predict, one pair                  known users, known movies            200
    10%  POST /predict, a batch of 20 pairs                                            200
    15%  PUT /users/{user}/ratings/{movie}        a known user (70%) or a new id 9_000_000 + n (30%), a
                                                  known movie, a rating on the model's scale in its steps  200
    10%  GET /users/{user}/ratings                a user of the write pool             200
     5%  DELETE /users/{user}/ratings/{movie}     a stored pair (half) or any pair     204 (or 404)
DELETE is idempotent (204 whether or not the pair was stored); a 404 for a pair not stored would also be a
correct answer and is counted as expected. Any other status, and any transport error, is an unexpected error.
A 503 with Retry-After (overloaded, database_busy) is unexpected too in this soak; such answers are also
counted by error code.

Model swaps: every `--swap-every` seconds `latest` is moved atomically to the other run
(`movierec.artifacts.point_latest`), never through /admin/reload; GET /ready is then polled until it reports the
new run id, and the time from the link move to that answer is the swap latency. A swap not seen within 30 s
fails.

Warm-up: `--warmup` seconds of the same traffic, with one swap to the second run and one back, so that both
models have been loaded and every buffer and thread exists; then the server's resident memory (VmRSS of the
uvicorn process) is sampled every 2 s until the end. The RSS slope is a least-squares line through the samples
(MiB per minute), and `slope x duration` the change it implies over the run.

Pass criteria (issue 23): 0 unexpected errors (warm-up included), every swap seen within 30 s, end RSS within 10%
of the start RSS and |slope x duration| within 10% of the start RSS, no ERROR or Traceback line in the server log.
Results go to `--out` (a .md) and the .json beside it (every figure, all RSS samples); the exit status is 1 when
a criterion fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
RSS_TOLERANCE = 0.10
RSS_EVERY_S = 2.0
SWAP_DEADLINE_S = 30.0
READY_POLL_S = 0.05
MODEL_POLL_SECONDS = 2
# What `python -m training train --data DIR` trains with no other flag (training/__main__.py: --model's default).
DEFAULT_KIND: Final = "bpmf"
SEEDS = (0, 1)
NEW_USER_BASE = 9_000_000
NEW_USERS = 500
# The client must drop idle connections before the server does (as a load balancer in front would): with both at
# 5 s (the uvicorn and httpx defaults) a request can race the server's close and fail with a ReadError.
SERVER_KEEP_ALIVE_S = 30
CLIENT_KEEP_ALIVE_S = 5.0
# Each route's share of the traffic and the statuses that are correct answers; anything else is an error.
MIX: dict[str, float] = {
    "recommend": 0.37,
    "recommend_writer": 0.03,
    "predict": 0.20,
    "predict_batch": 0.10,
    "put_rating": 0.15,
    "list_ratings": 0.10,
    "delete_rating": 0.05,
}
EXPECTED: dict[str, frozenset[int]] = {
    "recommend": frozenset({200}),
    "recommend_writer": frozenset({200}),
    "predict": frozenset({200}),
    "predict_batch": frozenset({200}),
    "put_rating": frozenset({200}),
    "list_ratings": frozenset({200}),
    "delete_rating": frozenset({204, 404}),
}
ROUTE_LABELS = {
    "recommend": "GET /recommend/{user}?k=10",
    "recommend_writer": "GET /recommend/{user}?k=10 (user with stored ratings)",
    "predict": "POST /predict (one pair)",
    "predict_batch": "POST /predict (20 pairs)",
    "put_rating": "PUT /users/{user}/ratings/{movie}",
    "list_ratings": "GET /users/{user}/ratings",
    "delete_rating": "DELETE /users/{user}/ratings/{movie}",
}
MAX_FAILURE_SAMPLES = 20


@dataclass
class Tally:
    """Counts of one kind of request."""

    sent: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)

    def fail(self, reason: str) -> None:
        self.failed += 1
        self.failures[reason] = self.failures.get(reason, 0) + 1

    def status(self, code: int) -> None:
        self.statuses[str(code)] = self.statuses.get(str(code), 0) + 1

    def summary(self) -> dict[str, Any]:
        lat = np.array(self.latencies) * 1000 if self.latencies else np.zeros(1)
        return {
            "sent": self.sent,
            "failed": self.failed,
            "failures": self.failures,
            "statuses": self.statuses,
            "p50_ms": round(float(np.percentile(lat, 50)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2),
            "max_ms": round(float(lat.max()), 2),
        }


@dataclass
class Errors:
    """What went wrong, across routes: 503s by error code, and the first few failures in full."""

    t0: float
    overload_503: dict[str, int] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)

    def record(self, route: str, request: httpx.Request, response: httpx.Response | None, error: str) -> None:
        if response is not None and response.status_code == 503:
            code = _error_code(response) or "no code"
            key = f"{code} (Retry-After {response.headers.get('retry-after', 'absent')})"
            self.overload_503[key] = self.overload_503.get(key, 0) + 1
        if len(self.samples) < MAX_FAILURE_SAMPLES:
            self.samples.append(
                {
                    "at_s": round(time.monotonic() - self.t0, 2),
                    "route": route,
                    "request": f"{request.method} {request.url.raw_path.decode()}",
                    "request_body": request.content.decode(errors="replace")[:300],
                    "status": None if response is None else response.status_code,
                    "response_body": None if response is None else response.text[:500],
                    "retry_after": None if response is None else response.headers.get("retry-after"),
                    "error": error,
                }
            )


@dataclass
class Pools:
    """Ids the clients draw from, and what has been written so far (one event loop: no locks needed)."""

    users: list[int]
    movies: list[int]
    ratings: list[float]
    writers: list[int] = field(default_factory=list)
    writer_set: set[int] = field(default_factory=set)
    stored: list[tuple[int, int]] = field(default_factory=list)

    def write_user(self, rng: random.Random) -> int:
        return rng.choice(self.users) if rng.random() < 0.7 else NEW_USER_BASE + rng.randrange(NEW_USERS)

    def wrote(self, user: int, movie: int) -> None:
        if user not in self.writer_set:
            self.writer_set.add(user)
            self.writers.append(user)
        self.stored.append((user, movie))


def _error_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return str(code) if code is not None else None


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_model() -> str:
    """The CPU's name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def train_runs(data_dir: Path, root: Path) -> tuple[list[dict[str, Any]], list[int], list[int], list[float]]:
    """The default artifact twice (seeds 0 and 1) into `root`; only the first moves `latest`.

    The config is the one `python -m training train --data DIR --seed S` builds (training/__main__.py
    `_cmd_train` with no other flag: `TrainConfig.for_kind(kind, model_fields={}, seed=S)`). Returns a record
    per run, the trained user ids, the trained movie ids and the ratings a PUT may send (the scale in its steps).
    """
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from movierec.data import load_ratings
    from training.config import TrainConfig
    from training.pipeline import train_run

    data = load_ratings(data_dir)
    runs: list[dict[str, Any]] = []
    manifest_data: dict[str, Any] = {}
    for i, seed in enumerate(SEEDS):
        config = TrainConfig.for_kind(DEFAULT_KIND, model_fields={}, seed=seed)
        started = time.perf_counter()
        result = train_run(data, config, root, verbose=0, update_latest=i == 0)
        metrics = result.manifest.metrics
        manifest_data = result.manifest.data
        runs.append(
            {
                "run_id": result.run_dir.name,
                "seed": seed,
                "kind": config.model.kind,
                "side_features": config.model.side_features,
                "ranker": config.ranker.enabled,
                "refit": config.refit,
                "rmse": round(float(metrics["rmse"]), 4),
                "ndcg@10": round(float(metrics.get("ndcg@10", float("nan"))), 4),
                "train_s": round(time.perf_counter() - started, 1),
            }
        )
    lo, hi = manifest_data.get("rating_scale", data.rating_scale)
    step = float(manifest_data.get("rating_step") or 0.5)
    scale = [round(lo + i * step, 4) for i in range(round((hi - lo) / step) + 1)]
    ratings = data.ratings
    return (
        runs,
        sorted(ratings["user_id"].unique().tolist()),
        sorted(ratings["movie_id"].unique().tolist()),
        scale,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    root: Path, database: Path, api_key: str, token: str, port: int, log_path: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MOVIEREC_MODEL_DIR": str(root / "latest"),
        "MOVIEREC_DATABASE_URL": f"sqlite:///{database}",
        "MOVIEREC_API_KEY": api_key,
        "MOVIEREC_ADMIN_TOKEN": token,
        "MOVIEREC_LIST_BATCHING": "on",
        "MOVIEREC_MODEL_POLL_SECONDS": str(MODEL_POLL_SECONDS),
        "MOVIEREC_DEVICE": "cpu",
        "KERAS_BACKEND": "tensorflow",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "app.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        "--timeout-keep-alive",
        str(SERVER_KEEP_ALIVE_S),
    ]
    with log_path.open("wb") as log:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


async def wait_ready(client: httpx.AsyncClient, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        try:
            if (await client.get("/ready")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.25)
    raise RuntimeError("server not ready in time")


def build_request(
    client: httpx.AsyncClient, rng: random.Random, pools: Pools, auth: dict[str, str]
) -> tuple[str, httpx.Request, tuple[int, int] | None]:
    """One request of the mix: its route name, the request, and the (user, movie) a PUT stores."""
    roll, edge = rng.random(), 0.0
    name = "delete_rating"
    for route, share in MIX.items():
        edge += share
        if roll < edge:
            name = route
            break
    if name == "recommend_writer" and not pools.writers:
        name = "recommend"
    if name == "recommend":
        return (
            name,
            client.build_request("GET", f"/recommend/{rng.choice(pools.users)}", params={"k": 10}),
            None,
        )
    if name == "recommend_writer":
        user = rng.choice(pools.writers)
        return name, client.build_request("GET", f"/recommend/{user}", params={"k": 10}), None
    if name == "predict":
        body = {"user_id": rng.choice(pools.users), "movie_id": rng.choice(pools.movies)}
        return name, client.build_request("POST", "/predict", json=body), None
    if name == "predict_batch":
        pairs = [
            {"user_id": rng.choice(pools.users), "movie_id": rng.choice(pools.movies)} for _ in range(20)
        ]
        return name, client.build_request("POST", "/predict", json={"instances": pairs}), None
    if name == "put_rating":
        user, movie = pools.write_user(rng), rng.choice(pools.movies)
        request = client.build_request(
            "PUT", f"/users/{user}/ratings/{movie}", json={"rating": rng.choice(pools.ratings)}, headers=auth
        )
        return name, request, (user, movie)
    if name == "list_ratings":
        user = rng.choice(pools.writers) if pools.writers and rng.random() < 0.7 else pools.write_user(rng)
        return name, client.build_request("GET", f"/users/{user}/ratings", headers=auth), None
    if pools.stored and rng.random() < 0.5:
        i = rng.randrange(len(pools.stored))
        pools.stored[i], pools.stored[-1] = pools.stored[-1], pools.stored[i]
        user, movie = pools.stored.pop()
    else:
        user, movie = pools.write_user(rng), rng.choice(pools.movies)
    return name, client.build_request("DELETE", f"/users/{user}/ratings/{movie}", headers=auth), None


async def drive(
    client: httpx.AsyncClient,
    stop_at: float,
    pools: Pools,
    auth: dict[str, str],
    tallies: dict[str, Tally],
    errors: Errors,
    seed: int,
) -> None:
    """One client: requests of the mix, back to back, until `stop_at`."""
    rng = random.Random(seed)
    while time.monotonic() < stop_at:
        name, request, written = build_request(client, rng, pools, auth)
        tally = tallies[name]
        tally.sent += 1
        started = time.perf_counter()
        try:
            response = await client.send(request)
        except httpx.HTTPError as exc:
            tally.fail(type(exc).__name__)
            errors.record(name, request, None, f"{type(exc).__name__}: {exc}")
            continue
        tally.latencies.append(time.perf_counter() - started)
        tally.status(response.status_code)
        if response.status_code not in EXPECTED[name]:
            code = _error_code(response)
            tally.fail(f"{response.status_code} {code}" if code else str(response.status_code))
            errors.record(name, request, response, "unexpected status")
        elif written is not None:
            pools.wrote(*written)


async def swap_to(client: httpx.AsyncClient, root: Path, target: str) -> dict[str, Any]:
    """Move `latest` to `target` and wait for GET /ready to report it; the latency is from the move."""
    from movierec.artifacts import point_latest

    point_latest(root, target)
    moved = time.perf_counter()
    deadline = moved + SWAP_DEADLINE_S
    last: str | None = None
    while time.perf_counter() < deadline:
        try:
            response = await client.get("/ready", timeout=SWAP_DEADLINE_S)
            if response.status_code == 200:
                last = response.json().get("run_id")
                if last == target:
                    return {
                        "target": target,
                        "seen": True,
                        "latency_s": round(time.perf_counter() - moved, 3),
                    }
            else:
                last = f"status {response.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        await asyncio.sleep(READY_POLL_S)
    return {"target": target, "seen": False, "latency_s": None, "last_seen": last}


async def swapper(
    client: httpx.AsyncClient,
    root: Path,
    t0: float,
    stop_at: float,
    every: float,
    targets: list[str],
    swaps: list[dict[str, Any]],
) -> None:
    """At t0 + every, t0 + 2 every, ... (while before `stop_at`) move `latest` to the next of `targets`."""
    k = 0
    while True:
        at = t0 + (k + 1) * every
        if at >= stop_at:
            return
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        swap = await swap_to(client, root, targets[k % len(targets)])
        swaps.append({"at_s": round(at - t0, 1), **swap})
        k += 1


async def sample_rss(pid: int, stop_at: float, samples: list[tuple[float, int]], t0: float) -> None:
    """VmRSS every RSS_EVERY_S seconds from t0 (on a fixed grid, so a slow loop does not stretch it)."""
    k = 0
    while True:
        at = t0 + k * RSS_EVERY_S
        if at > stop_at:
            return
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        samples.append((round(time.monotonic() - t0, 2), rss_bytes(pid)))
        k += 1


def rss_fit(samples: list[tuple[float, int]]) -> tuple[float, float]:
    """Least-squares slope of RSS over time (MiB per minute) and its intercept (MiB)."""
    if len(samples) < 2:
        return 0.0, samples[0][1] / 2**20 if samples else 0.0
    t = np.array([s for s, _ in samples]) / 60
    mib = np.array([r for _, r in samples]) / 2**20
    slope, intercept = np.polyfit(t, mib, 1)
    return float(slope), float(intercept)


async def soak(
    args: argparse.Namespace,
    root: Path,
    database: Path,
    runs: list[dict[str, Any]],
    pools: Pools,
) -> dict[str, Any]:
    token = secrets.token_urlsafe(24)
    api_key = secrets.token_urlsafe(24)
    auth = {"Authorization": f"Bearer {api_key}"}
    run_ids = [r["run_id"] for r in runs]
    port = free_port()
    log_path = root.parent / "server.log"
    proc = start_server(root, database, api_key, token, port, log_path)
    limits = httpx.Limits(
        max_connections=args.concurrency + 4,
        max_keepalive_connections=args.concurrency + 4,
        keepalive_expiry=CLIENT_KEEP_ALIVE_S,
    )
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30
        ) as client:
            await wait_ready(client, proc)
            # Warm-up at full concurrency, with a swap to the second run and one back, so that connection buffers,
            # threadpool threads, the database's pages and both runs' first allocations exist before RSS is read.
            w0 = time.monotonic()
            warm_errors = Errors(t0=w0)
            warm = {name: Tally() for name in MIX}
            warm_swaps: list[dict[str, Any]] = []
            warm_stop = w0 + args.warmup
            await asyncio.gather(
                *(
                    drive(client, warm_stop, pools, auth, warm, warm_errors, 10_000 + i)
                    for i in range(args.concurrency)
                ),
                swapper(
                    client, root, w0, warm_stop - 0.01, args.warmup / 3, [run_ids[1], run_ids[0]], warm_swaps
                ),
            )
            if not warm_swaps or warm_swaps[-1]["target"] != run_ids[0]:  # warm-up too short for both swaps
                warm_swaps.append(
                    {"at_s": round(time.monotonic() - w0, 1), **await swap_to(client, root, run_ids[0])}
                )
            load_start = os.getloadavg()

            errors = Errors(t0=time.monotonic())
            tallies = {name: Tally() for name in MIX}
            swaps: list[dict[str, Any]] = []
            rss_samples: list[tuple[float, int]] = []
            t0 = errors.t0
            stop_at = t0 + args.duration
            await asyncio.gather(
                *(drive(client, stop_at, pools, auth, tallies, errors, i) for i in range(args.concurrency)),
                swapper(client, root, t0, stop_at, args.swap_every, [run_ids[1], run_ids[0]], swaps),
                sample_rss(proc.pid, stop_at, rss_samples, t0),
            )
            elapsed = time.monotonic() - t0
            rss_samples.append((round(elapsed, 2), rss_bytes(proc.pid)))
            load_end = os.getloadavg()
            final_run = (await client.get("/ready")).json().get("run_id")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    server_log = log_path.read_text(errors="replace").splitlines()
    requests = {name: t.summary() for name, t in tallies.items()}
    sent = sum(t.sent for t in tallies.values())
    failed = sum(t.failed for t in tallies.values())
    warm_sent = sum(t.sent for t in warm.values())
    warm_failed = sum(t.failed for t in warm.values())
    rss_start, rss_end = rss_samples[0][1], rss_samples[-1][1]
    rss_max = max(r for _, r in rss_samples)
    slope, intercept = rss_fit(rss_samples)
    implied = slope * args.duration / 60  # MiB over the whole run
    growth = (rss_end - rss_start) / rss_start
    implied_pct = implied / (rss_start / 2**20)
    latencies = [s["latency_s"] for s in swaps if s["seen"]]
    swaps_failed = sum(not s["seen"] for s in swaps)
    warm_swaps_failed = sum(not s["seen"] for s in warm_swaps)
    log_errors = [line for line in server_log if "ERROR" in line or "Traceback" in line]
    criteria = {
        "no_unexpected_errors": failed == 0 and warm_failed == 0,
        "swaps_seen": swaps_failed == 0
        and warm_swaps_failed == 0
        and (len(swaps) > 0 or args.duration <= args.swap_every),
        "rss_end_within_10pct": abs(growth) <= RSS_TOLERANCE,
        "rss_slope_within_10pct": abs(implied_pct) <= RSS_TOLERANCE,
        "no_server_log_errors": not log_errors,
    }
    return {
        "config": {
            "duration_s": args.duration,
            "concurrency": args.concurrency,
            "swap_every_s": args.swap_every,
            "warmup_s": args.warmup,
            "data": str(args.data),
            "runs": runs,
            "mix": MIX,
            "expected_statuses": {name: sorted(codes) for name, codes in EXPECTED.items()},
            "server": {
                "workers": 1,
                "list_batching": "on",
                "model_poll_seconds": MODEL_POLL_SECONDS,
                "database": "sqlite (file in the temporary directory)",
                "keep_alive_s": SERVER_KEEP_ALIVE_S,
            },
            "client_keep_alive_s": CLIENT_KEEP_ALIVE_S,
            "command": shlex.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        },
        "machine": {
            "platform": platform.platform(),
            "cpu": cpu_model(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_start": [round(x, 2) for x in load_start],
            "loadavg_end": [round(x, 2) for x in load_end],
        },
        "elapsed_s": round(elapsed, 1),
        "requests_sent": sent,
        "requests_failed": failed,
        "throughput_rps": round(sent / elapsed, 1),
        "requests": requests,
        "overload_503": errors.overload_503,
        "failure_samples": errors.samples,
        "warmup": {
            "requests_sent": warm_sent,
            "requests_failed": warm_failed,
            "failures": {name: t.failures for name, t in warm.items() if t.failures},
            "overload_503": warm_errors.overload_503,
            "failure_samples": warm_errors.samples,
            "swaps": warm_swaps,
        },
        "swaps": {
            "sent": len(swaps),
            "seen": len(latencies),
            "failed": swaps_failed,
            "latency_p50_s": round(float(np.median(latencies)), 3) if latencies else None,
            "latency_max_s": round(max(latencies), 3) if latencies else None,
            "each": swaps,
            "final_run_id": final_run,
        },
        "ratings_written": {"writers": len(pools.writers), "pairs_stored_at_end_approx": len(pools.stored)},
        "rss": {
            "start_mib": round(rss_start / 2**20, 1),
            "end_mib": round(rss_end / 2**20, 1),
            "max_mib": round(rss_max / 2**20, 1),
            "end_change_pct": round(100 * growth, 2),
            "slope_mib_per_min": round(slope, 4),
            "fit_intercept_mib": round(intercept, 1),
            "implied_change_mib": round(implied, 2),
            "implied_change_pct": round(100 * implied_pct, 2),
            "every_s": RSS_EVERY_S,
            "samples_mib": [(t, round(r / 2**20, 2)) for t, r in rss_samples],
        },
        "server_log": {
            "errors": len(log_errors),
            "error_lines": log_errors[:20],
            "warnings": sum("WARNING" in line for line in server_log),
            "warning_lines": [line for line in server_log if "WARNING" in line][:20],
            "model_watch_swaps": sum(
                "model watch:" in line and "moved; serving" in line for line in server_log
            ),
        },
        "criteria": criteria,
        "passed": all(criteria.values()),
    }


def write_report(result: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path = out.with_suffix(".json")
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    c, m, s, rss, w = result["config"], result["machine"], result["swaps"], result["rss"], result["warmup"]
    cr, log = result["criteria"], result["server_log"]

    def mark(ok: bool) -> str:
        return "yes" if ok else "**NO**"

    def statuses(summary: dict[str, Any]) -> str:
        return ", ".join(f"{code}: {n}" for code, n in sorted(summary["statuses"].items())) or "-"

    def failures(summary: dict[str, Any]) -> str:
        return ", ".join(f"{why}: {n}" for why, n in sorted(summary["failures"].items())) or "-"

    rows = "\n".join(
        f"| {ROUTE_LABELS[name]} | {q['sent']} | {'/'.join(map(str, c['expected_statuses'][name]))} | "
        f"{statuses(q)} | {q['failed']} | {failures(q)} | {q['p50_ms']} | {q['p99_ms']} | {q['max_ms']} |"
        for name, q in result["requests"].items()
    )
    run_lines = "\n".join(
        f"- `{r['run_id']}`: seed {r['seed']}, held-out RMSE {r['rmse']}, NDCG@10 {r['ndcg@10']}, trained in "
        f"{r['train_s']} s"
        for r in c["runs"]
    )
    swap_lines = (
        "\n".join(
            f"| {x['at_s']} | `{x['target']}` | {x['latency_s'] if x['seen'] else 'not seen in 30 s'} |"
            for x in s["each"]
        )
        or "| - | - | - |"
    )
    overload = (
        ", ".join(f"{k}: {n}" for k, n in sorted(result["overload_503"].items()))
        if result["overload_503"]
        else "none"
    )
    warm_swaps = ", ".join(
        f"`{x['target']}` {x['latency_s']} s" if x["seen"] else f"`{x['target']}` not seen"
        for x in w["swaps"]
    )
    mix = ", ".join(f"{ROUTE_LABELS[name]} {share:.0%}" for name, share in c["mix"].items())
    verdict = "PASS" if result["passed"] else "FAIL"
    samples = ""
    if result["failure_samples"] or w["failure_samples"]:
        shown = (result["failure_samples"] or w["failure_samples"])[:5]
        samples = (
            "\n## First unexpected answers\n\n"
            + "\n".join(
                f"- {x['at_s']} s, {x['request']} {x['request_body']!r}: {x['status']} {x['response_body'] or x['error']!r}"
                f" (Retry-After {x['retry_after']})"
                for x in shown
            )
            + f"\n\n(all of them, up to {MAX_FAILURE_SAMPLES}, in `{json_path.name}`)\n"
        )
    log_lines = ""
    if log["error_lines"]:
        log_lines = "\n## Server log errors\n\n```\n" + "\n".join(log["error_lines"][:10]) + "\n```\n"
    text = f"""# Soak: {c["duration_s"]:g} s at concurrency {c["concurrency"]}, mixed reads and writes, model swap every {c["swap_every_s"]:g} s — {verdict}

Produced by `python {c["command"]}` (`{json_path.name}` beside this file holds every figure, including the
RSS samples).

Models: two runs of the default artifact (`python -m training train --data {Path(c["data"]).name}`: {c["runs"][0]["kind"]}
with side features and the top-N ranker, refit on all ratings), seeds 0 and 1, in a temporary model root:
{run_lines}

Server: one uvicorn worker on 127.0.0.1 serving `ROOT/latest`; stored ratings in a SQLite file; writes enabled
(`MOVIEREC_API_KEY`), `MOVIEREC_LIST_BATCHING=on`, `MOVIEREC_MODEL_POLL_SECONDS={c["server"]["model_poll_seconds"]}`;
keep-alive {c["client_keep_alive_s"]:g} s in the client, {c["server"]["keep_alive_s"]} s in uvicorn.

Traffic: {c["concurrency"]} async httpx clients in one process on the same machine: {mix}. PUTs write a half-star
rating on the model's scale for a known user (70%) or a new id 9,000,000+n (30%), so stored ratings re-solve
known users' vectors and create new users; half the DELETEs remove a stored pair. Every
{c["swap_every_s"]:g} s `latest` is moved atomically to the other run (`point_latest`, no admin call) and
GET /ready polled until it reports the new run (a swap not seen in {SWAP_DEADLINE_S:g} s fails). Warm-up:
{c["warmup_s"]:g} s of the same traffic with a swap each way ({warm_swaps}); then VmRSS of the uvicorn process
every {rss["every_s"]:g} s.

Machine: {m["cpu"]}, {m["cpus"]} CPUs, {m["platform"]}, Python {m["python"]} (load average {m["loadavg_start"]} at
the start, {m["loadavg_end"]} at the end). Client and server share the CPUs, so the throughput is a floor, not
the service's capacity.

## Result

| check | figure | criterion | met |
|---|---|---|---|
| requests sent | {result["requests_sent"]} in {result["elapsed_s"]} s ({result["throughput_rps"]} req/s); warm-up {w["requests_sent"]} | | |
| unexpected errors (a status not expected for the route, or a transport error) | {result["requests_failed"]}; warm-up {w["requests_failed"]} | 0 | {mark(cr["no_unexpected_errors"])} |
| 503 answers, by code | {overload} | (counted above) | |
| model swaps | {s["sent"]} moved, {s["seen"]} seen on /ready (latency p50 {s["latency_p50_s"]} s, max {s["latency_max_s"]} s) | all seen within {SWAP_DEADLINE_S:g} s | {mark(cr["swaps_seen"])} |
| resident memory | {rss["start_mib"]} MiB after warm-up, {rss["end_mib"]} MiB at the end ({rss["end_change_pct"]:+.2f}%), max {rss["max_mib"]} | end within 10% of start | {mark(cr["rss_end_within_10pct"])} |
| RSS slope (least squares, {len(rss["samples_mib"])} samples) | {rss["slope_mib_per_min"]:+.3f} MiB/min: {rss["implied_change_mib"]:+.1f} MiB over the run ({rss["implied_change_pct"]:+.2f}% of start) | within ±10% of start | {mark(cr["rss_slope_within_10pct"])} |
| server log ERROR / Traceback lines | {log["errors"]} (warnings {log["warnings"]}) | 0 | {mark(cr["no_server_log_errors"])} |

| route | sent | expected | statuses | unexpected | why | p50 ms | p99 ms | max ms |
|---|---|---|---|---|---|---|---|---|
{rows}

| swap at (s) | to | seen on /ready after (s) |
|---|---|---|
{swap_lines}

Final served run: `{s["final_run_id"]}`; the server logged {log["model_watch_swaps"]} model-watch swaps (warm-up included).
Users that stored a rating: {result["ratings_written"]["writers"]}.
{samples}{log_lines}"""
    out.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load after warm-up (600)")
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent clients (64)")
    parser.add_argument("--swap-every", type=float, default=60.0, help="seconds between model swaps (60)")
    parser.add_argument(
        "--warmup", type=float, default=30.0, help="seconds of warm-up load, a swap each way, before RSS (30)"
    )
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ml-latest-small")
    parser.add_argument(
        "--out", type=Path, default=RESULTS / "soak.md", help="the report; the JSON goes beside it (.json)"
    )
    args = parser.parse_args()
    if args.out.suffix != ".md":
        parser.error("--out must name a .md file (the JSON is written beside it)")
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        root = Path(tmp) / "models"
        runs, users, movies, scale = train_runs(args.data, root)
        pools = Pools(users=users, movies=movies, ratings=scale)
        result = asyncio.run(soak(args, root, Path(tmp) / "ratings.db", runs, pools))
    write_report(result, args.out)
    print(args.out.read_text())
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
