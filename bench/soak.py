"""Soak test: sustained concurrent load on /recommend and /predict with /admin/reload every few seconds.

    python bench/soak.py [--duration 60] [--concurrency 64] [--reload-every 5] [--data ../shared/data/ml-latest-small]

Trains two small `bias` runs on the real data into a temporary model root (so reloads alternate between two run
ids), starts uvicorn on 127.0.0.1 serving `latest`, warms up, then drives `--concurrency` clients (httpx, async)
for `--duration` seconds while a reloader swaps runs with the admin token. It records requests sent, failures
(non-2xx answers and transport errors, reloads included), latency percentiles, and the server's resident memory
(VmRSS of the uvicorn process) after warm-up, during the run and at the end. The pass criteria of the
reliability issue: 0 failed requests, 0 failed reloads, end RSS within 10% of the start RSS. Results go to
`bench/results/soak.md` and `soak.json`; the exit status is 1 when a criterion fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
RSS_TOLERANCE = 0.10
# The client must drop idle connections before the server does (as a load balancer in front would): with both at
# 5 s (the uvicorn and httpx defaults) a request can race the server's close and fail with a ReadError.
SERVER_KEEP_ALIVE_S = 30
CLIENT_KEEP_ALIVE_S = 5.0


@dataclass
class Tally:
    """Counts of one kind of request."""

    sent: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)

    def fail(self, reason: str) -> None:
        self.failed += 1
        self.failures[reason] = self.failures.get(reason, 0) + 1

    def summary(self) -> dict[str, Any]:
        lat = np.array(self.latencies) * 1000 if self.latencies else np.zeros(1)
        return {
            "sent": self.sent,
            "failed": self.failed,
            "failures": self.failures,
            "p50_ms": round(float(np.percentile(lat, 50)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2),
            "max_ms": round(float(lat.max()), 2),
        }


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def train_runs(data_dir: Path, root: Path, n_runs: int) -> tuple[list[str], list[int], list[int]]:
    """Two quick `bias` runs (different seeds) into `root`; returns run ids, user ids and movie ids."""
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from movierec.data import load_ratings
    from training.config import TrainConfig
    from training.pipeline import train_run

    data = load_ratings(data_dir)
    run_ids = []
    for seed in range(n_runs):
        config = TrainConfig.for_kind(
            "bias",
            seed=seed,
            epochs=2,
            batch_size=4096,
            learning_rate=0.02,
            refit=False,
            model_fields={"n_factors": 16},
        )
        run_ids.append(train_run(data, config, root, verbose=0).run_dir.name)
    ratings = data.ratings
    return (
        run_ids,
        sorted(ratings["user_id"].unique().tolist()),
        sorted(ratings["movie_id"].unique().tolist()),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(root: Path, token: str, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MOVIEREC_MODEL_DIR": str(root / "latest"),
        "MOVIEREC_ADMIN_TOKEN": token,
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


async def drive(
    client: httpx.AsyncClient,
    stop_at: float,
    users: list[int],
    movies: list[int],
    tallies: dict[str, Tally],
    seed: int,
) -> None:
    """One client: alternate GET /recommend/{user} and POST /predict (single pairs and batches of 20)."""
    rng = random.Random(seed)
    while time.monotonic() < stop_at:
        roll = rng.random()
        if roll < 0.5:
            name = "recommend"
            request = client.build_request("GET", f"/recommend/{rng.choice(users)}", params={"k": 10})
        elif roll < 0.8:
            name = "predict"
            request = client.build_request(
                "POST", "/predict", json={"user_id": rng.choice(users), "movie_id": rng.choice(movies)}
            )
        else:
            name = "predict_batch"
            pairs = [{"user_id": rng.choice(users), "movie_id": rng.choice(movies)} for _ in range(20)]
            request = client.build_request("POST", "/predict", json={"instances": pairs})
        tally = tallies[name]
        tally.sent += 1
        started = time.perf_counter()
        try:
            response = await client.send(request)
        except httpx.HTTPError as exc:
            tally.fail(type(exc).__name__)
            continue
        tally.latencies.append(time.perf_counter() - started)
        if response.status_code != 200:
            tally.fail(str(response.status_code))


async def reloader(
    client: httpx.AsyncClient,
    stop_at: float,
    every: float,
    run_ids: list[str],
    token: str,
    tally: Tally,
    served: list[str],
) -> None:
    """POST /admin/reload every `every` seconds, alternating between the run ids."""
    i = 0
    while True:
        await asyncio.sleep(every)
        if time.monotonic() >= stop_at:
            return
        i += 1
        target = run_ids[i % len(run_ids)]
        tally.sent += 1
        started = time.perf_counter()
        try:
            response = await client.post(
                "/admin/reload",
                json={"run_id": target},
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            )
        except httpx.HTTPError as exc:
            tally.fail(type(exc).__name__)
            continue
        tally.latencies.append(time.perf_counter() - started)
        if response.status_code != 200 or response.json().get("run_id") != target:
            tally.fail(f"{response.status_code}")
        else:
            served.append(target)


async def sample_rss(pid: int, stop_at: float, samples: list[tuple[float, int]], t0: float) -> None:
    while time.monotonic() < stop_at:
        samples.append((round(time.monotonic() - t0, 1), rss_bytes(pid)))
        await asyncio.sleep(1.0)


async def soak(
    args: argparse.Namespace, root: Path, run_ids: list[str], users: list[int], movies: list[int]
) -> dict[str, Any]:
    token = secrets.token_urlsafe(24)
    port = free_port()
    log_path = root / "server.log"
    proc = start_server(root, token, port, log_path)
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
            auth = {"Authorization": f"Bearer {token}"}
            # Warm-up at full concurrency, with one reload to each run and back, so that connection buffers,
            # threadpool threads and both runs' first allocations exist before the start RSS is read.
            warm = {name: Tally() for name in ("recommend", "predict", "predict_batch")}
            warm_stop = time.monotonic() + args.warmup
            await asyncio.gather(
                *(drive(client, warm_stop, users, movies, warm, 10_000 + i) for i in range(args.concurrency)),
                reloader(client, warm_stop, args.warmup / 3, [*run_ids[1:], run_ids[0]], token, Tally(), []),
            )
            (
                await client.post("/admin/reload", json={"run_id": run_ids[0]}, headers=auth, timeout=60)
            ).raise_for_status()
            await asyncio.sleep(1.0)
            rss_start = rss_bytes(proc.pid)
            load_start = os.getloadavg()

            tallies = {name: Tally() for name in ("recommend", "predict", "predict_batch")}
            reloads = Tally()
            served: list[str] = []
            rss_samples: list[tuple[float, int]] = []
            t0 = time.monotonic()
            stop_at = t0 + args.duration
            await asyncio.gather(
                *(drive(client, stop_at, users, movies, tallies, i) for i in range(args.concurrency)),
                reloader(client, stop_at, args.reload_every, run_ids, token, reloads, served),
                sample_rss(proc.pid, stop_at, rss_samples, t0),
            )
            elapsed = time.monotonic() - t0
            load_end = os.getloadavg()
            await asyncio.sleep(1.0)
            rss_end = rss_bytes(proc.pid)
            final_run = (await client.get("/model")).json()["run_id"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    server_log = log_path.read_text(errors="replace")
    requests = {name: t.summary() for name, t in tallies.items()}
    sent = sum(t.sent for t in tallies.values())
    failed = sum(t.failed for t in tallies.values())
    growth = (rss_end - rss_start) / rss_start
    return {
        "config": {
            "duration_s": args.duration,
            "concurrency": args.concurrency,
            "reload_every_s": args.reload_every,
            "data": str(args.data),
            "run_ids": run_ids,
            "warmup_s": args.warmup,
        },
        "machine": {
            "platform": platform.platform(),
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
        "reloads": {**reloads.summary(), "served_in_order": served, "final_run_id": final_run},
        "rss_start_mib": round(rss_start / 2**20, 1),
        "rss_end_mib": round(rss_end / 2**20, 1),
        "rss_max_mib": round(max(r for _, r in rss_samples) / 2**20, 1) if rss_samples else None,
        "rss_growth_pct": round(100 * growth, 2),
        "rss_samples_mib": [(t, round(r / 2**20, 1)) for t, r in rss_samples],
        "server_log_errors": [
            line for line in server_log.splitlines() if "ERROR" in line or "Traceback" in line
        ][:20],
        "passed": failed == 0 and reloads.failed == 0 and reloads.sent > 0 and abs(growth) <= RSS_TOLERANCE,
    }


def write_report(result: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    c, m, r = result["config"], result["machine"], result["reloads"]
    rows = "\n".join(
        f"| {name} | {s['sent']} | {s['failed']} | {s['p50_ms']} | {s['p99_ms']} | {s['max_ms']} |"
        for name, s in result["requests"].items()
    )
    verdict = "PASS" if result["passed"] else "FAIL"
    text = f"""# Soak: {c["duration_s"]} s at concurrency {c["concurrency"]}, reload every {c["reload_every_s"]} s — {verdict}

Produced by `python bench/soak.py --duration {c["duration_s"]} --concurrency {c["concurrency"]}`
(`bench/results/soak.json` holds every figure, including the RSS samples).

Setup: two `bias` runs (16 factors, 2 epochs, no refit; seeds 0 and 1) trained on `{Path(c["data"]).name}` into a
temporary model root; one uvicorn worker on 127.0.0.1 serving `latest`; {c["concurrency"]} async httpx clients in one
process on the same machine, 50% `GET /recommend/{{user}}?k=10`, 30% single `POST /predict`, 20% `POST /predict`
batches of 20 pairs, random known ids; keep-alive {CLIENT_KEEP_ALIVE_S:g} s in the client, {SERVER_KEEP_ALIVE_S} s in uvicorn;
`POST /admin/reload` every {c["reload_every_s"]} s alternating
`{c["run_ids"][0]}` and `{c["run_ids"][-1]}`. Warm-up: {c["warmup_s"]} s of the same traffic with reloads to each run, then
the start RSS is read.

Machine: {m["platform"]}, Python {m["python"]}, {m["cpus"]} CPUs (shared with other work: load average
{m["loadavg_start"]} at the start, {m["loadavg_end"]} at the end). Client and server share the CPUs, so the
throughput is a floor, not the service's capacity.

## Result

| check | figure | criterion |
|---|---|---|
| requests sent | {result["requests_sent"]} in {result["elapsed_s"]} s ({result["throughput_rps"]} req/s) | |
| failed requests (non-2xx or transport error) | {result["requests_failed"]} | 0 |
| reloads | {r["sent"]} sent, {r["failed"]} failed (p50 {r["p50_ms"]} ms, max {r["max_ms"]} ms) | 0 failed |
| resident memory | {result["rss_start_mib"]} MiB after warm-up, {result["rss_end_mib"]} MiB at the end (max {result["rss_max_mib"]}) | end within 10% of start |
| RSS change | {result["rss_growth_pct"]:+.2f}% | within ±10% |
| server log errors | {len(result["server_log_errors"])} | 0 |

| route | sent | failed | p50 ms | p99 ms | max ms |
|---|---|---|---|---|---|
{rows}

Final served run: `{r["final_run_id"]}`.
"""
    out.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--reload-every", type=float, default=5.0)
    parser.add_argument(
        "--warmup", type=float, default=20.0, help="seconds of warm-up load before the start RSS"
    )
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ml-latest-small")
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        root = Path(tmp) / "models"
        run_ids, users, movies = train_runs(args.data, root, 2)
        result = asyncio.run(soak(args, root, run_ids, users, movies))
    write_report(result, args.out)
    print(args.out.read_text())
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
