"""Data-parallel training on several processes: Keras 3's `keras.distribution.DataParallel` on the JAX backend.

Why this engine: gradients are combined every step by the all-reduce XLA inserts into the jitted train step
(CPU collectives over gloo between processes, joined by `jax.distributed.initialize`), so there is no
parameter server of our own and no averaging at the end. Keras 3 with TensorFlow's multi-worker strategies is
reported broken (keras-team/keras#20585, #18624), which is why the distributed path runs on JAX while the
single-process default stays on TensorFlow.

Two ways in (`python -m training train ...`):
- `--workers N` on one machine: `launch_local` starts N processes of the same command on 127.0.0.1 (a free
  port) and relays their output, each line prefixed with the process id;
- `--coordinator HOST:PORT --num-processes N --process-id I`: one process of a job across machines (`join`);
  every machine runs the same command on the same data, the coordinator being process 0's address.

Every process runs the whole pipeline (the same split, the same seeds, so the same epochs chosen on the same
validation metrics, which are computed over all processes' shards) and feeds its own shard of the training
rows; process 0 alone fits the ranker (a cheap SVD on NumPy) and writes the artifact. Only the Keras SGD kinds
(`ModelKind.data_parallel`) can run this way; `refuse_undistributable` names the rest.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np
from numpy.typing import NDArray

from movierec.errors import MovieRecError

ENGINE = "keras.distribution DataParallel on JAX"
COLLECTIVES = "gloo (CPU)"
# Seconds a process waits at exit for the others (process 0 still fitting the ranker and writing).
SHUTDOWN_TIMEOUT_S = 3600
# Seconds the launcher waits for the other processes once one has failed, before it ends them.
_GRACE_S = 5.0

# This process's place in a job once `join` ran (one per process: JAX's distributed runtime is global too).
_joined: dict[str, Worker] = {}


@dataclass(frozen=True)
class Worker:
    """This process's place in a data-parallel job."""

    process_id: int
    num_processes: int
    coordinator: str

    @property
    def writes(self) -> bool:
        """Process 0 fits the ranker and writes the artifact; the others train their shard and exit."""
        return self.process_id == 0

    def per_process_batch(self, global_batch: int) -> int:
        """Rows per step fed by this process: the configured batch is the global one, split evenly."""
        if global_batch < self.num_processes:
            raise MovieRecError(
                f"a batch of {global_batch} rows cannot be split over {self.num_processes} processes; "
                "raise --batch-size"
            )
        return global_batch // self.num_processes

    def shard(self, arrays: tuple[NDArray[Any], ...], seed: int) -> tuple[NDArray[Any], ...]:
        """This process's rows of `arrays`: every process gets the same count, drawn by one seeded shuffle.

        The length must be a multiple of the process count (the trainer pads it to whole global batches), so
        every process runs the same number of steps, which the collectives of each step require.
        """
        n = len(arrays[0])
        if n % self.num_processes:
            raise ValueError(f"{n} rows do not split evenly over {self.num_processes} processes")
        rows = np.random.default_rng(seed).permutation(n)[self.process_id :: self.num_processes]
        return tuple(a[rows] for a in arrays)

    def shard_validation(
        self, validation: tuple[NDArray[Any], NDArray[Any], NDArray[Any]], seed: int
    ) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any], NDArray[np.float32]]:
        """This process's share of the validation slice, padded with zero-weight rows to equal shares.

        The metrics are summed over every process's share inside the evaluation step, so each process sees
        the validation RMSE of the whole slice and early stopping decides alike everywhere.
        """
        u, m, r = validation
        n = len(r)
        pad = (-n) % self.num_processes
        rows = np.concatenate([np.arange(n), np.zeros(pad, dtype=np.int64)])
        weights = np.ones(n + pad, dtype=np.float32)
        weights[n:] = 0.0
        u_s, m_s, r_s, w_s = self.shard((u[rows], m[rows], r[rows], weights), seed)
        return u_s, m_s, r_s, w_s.astype(np.float32)

    def leave(self) -> None:
        """End the steps taken together: after the last fit, process 0 goes on alone (ranker, saving).

        Without this, a variable created later (Keras's saving builds a throwaway optimizer) would be placed on
        every process's device, a collective that process 0 alone would wait on until the job times out.
        """
        import keras

        keras.distribution.set_distribution(None)

    def manifest_entry(self, global_batch: int, graph: Any) -> dict[str, Any]:
        """The manifest's `distributed`: which engine combined the gradients, over how many processes, and
        what one step sends between them (`graph` is the training graph, whose trainable weights it sums)."""
        import jax

        per_process = self.per_process_batch(global_batch)
        return {
            "engine": ENGINE,
            "processes": self.num_processes,
            "devices": jax.device_count(),
            "collectives": COLLECTIVES,
            "coordinator": self.coordinator,
            "per_process_batch_size": per_process,
            "global_batch_size": per_process * self.num_processes,
            "gradients": "all-reduced every step",
            "ranker": "fitted on process 0",
            "allreduce_per_step": allreduce_bytes_per_step(graph, self.num_processes),
            "jax": jax.__version__,
        }


def active_worker() -> Worker | None:
    """This process's `Worker` once `join` ran; None in an ordinary single-process run."""
    return _joined.get("worker")


def refuse_undistributable(kind: str, solver: str | None = None) -> None:
    """A clear error for a fit that cannot train data-parallel (bpmf's Gibbs sampler, ALS: one process).

    Refused rather than run on process 0 alone: the other processes would idle while the manifest claimed a
    distributed fit.
    """
    from training.kinds.registry import KINDS, kind_named

    if solver == "als":
        raise MovieRecError("--solver als fits in one process (its sweeps use every core): drop --workers")
    if not kind_named(kind).data_parallel:
        able = ", ".join(name for name, k in KINDS.items() if k.data_parallel)
        raise MovieRecError(
            f"--workers/--num-processes > 1 trains the Keras SGD kinds data-parallel ({able}); {kind!r} is "
            "fitted in one process (a Gibbs sampler for bpmf): train it without --workers"
        )


def start(args: argparse.Namespace, train_argv: list[str]) -> int | Worker | None:
    """What `train`'s data-parallel flags ask for, before Keras is imported.

    `--workers N` (N > 1): run the N local processes, and return the job's exit status. `--coordinator ...`:
    join the job as one process and return its `Worker`. Neither: None, the ordinary single-process run.
    """
    cluster = (args.coordinator, args.num_processes, args.process_id)
    if args.workers < 1:
        raise MovieRecError(f"--workers must be at least 1, got {args.workers}")
    if all(value is None for value in cluster):
        if args.workers == 1:
            return None
        refuse_undistributable(args.model, getattr(args, "solver", None))
        return launch_local(train_argv, args.workers)
    if any(value is None for value in cluster):
        raise MovieRecError("--coordinator, --num-processes and --process-id go together")
    if args.workers != 1:
        raise MovieRecError(
            "--workers starts every process of one machine; with --coordinator start one process per command"
        )
    refuse_undistributable(args.model, getattr(args, "solver", None))
    return join(args.coordinator, args.num_processes, args.process_id)


def join(coordinator: str, num_processes: int, process_id: int) -> Worker:
    """Make this process `process_id` of a data-parallel job: JAX backend, gloo collectives, DataParallel.

    Must run before Keras is imported, since Keras picks its backend at import.
    """
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise MovieRecError(f"--process-id must be in 0..{num_processes - 1}, got {process_id}")
    if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") != "jax":
        raise RuntimeError("Keras was imported before the distributed job set its backend to JAX")
    os.environ["KERAS_BACKEND"] = "jax"
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator,
        num_processes=num_processes,
        process_id=process_id,
        # A job on 127.0.0.1 (the local launcher's) listens on loopback only, not on every interface.
        coordinator_bind_address=coordinator if _is_loopback(coordinator) else None,
        # The others wait at exit for process 0, which fits the ranker and writes the artifact after them.
        shutdown_timeout_seconds=SHUTDOWN_TIMEOUT_S,
    )
    import keras

    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=keras.distribution.list_devices(), auto_shard_dataset=False)
    )
    worker = _joined["worker"] = Worker(process_id, num_processes, coordinator)
    return worker


def _is_loopback(address: str) -> bool:
    return address.rsplit(":", 1)[0].strip("[]") in {"127.0.0.1", "localhost", "::1"}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def worker_argv(train_argv: list[str], coordinator: str, num_processes: int, process_id: int) -> list[str]:
    """`train_argv` (the arguments after `python -m training`) as one process of the job: no `--workers`."""
    out: list[str] = []
    skip = False
    for arg in train_argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            out.append(arg)
    return [
        *out,
        "--coordinator",
        coordinator,
        "--num-processes",
        str(num_processes),
        "--process-id",
        str(process_id),
    ]


def launch_local(
    train_argv: list[str], workers: int, *, out: TextIO | None = None, env: dict[str, str] | None = None
) -> int:
    """Run `python -m training <train_argv>` as `workers` processes on 127.0.0.1; process 0's exit status.

    Each process's output is relayed line by line with a `[process i]` prefix. When one fails, the others
    (which would wait on it in the next collective) are ended, and the first failure's status returned
    (128 + N for a process ended by signal N, as a shell reports it).
    """
    stream = out if out is not None else sys.stdout
    coordinator = f"127.0.0.1:{free_port()}"
    child_env = {**(env if env is not None else os.environ), "KERAS_BACKEND": "jax", "PYTHONUNBUFFERED": "1"}
    child_env.setdefault("JAX_PLATFORMS", "cpu")
    print(
        f"training data-parallel on {workers} processes, coordinator {coordinator}", file=stream, flush=True
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "training", *worker_argv(train_argv, coordinator, workers, i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=child_env,
            text=True,
            bufsize=1,
        )
        for i in range(workers)
    ]
    lock = threading.Lock()
    relays = [
        threading.Thread(target=_relay, args=(proc, f"[process {i}] ", stream, lock), daemon=True)
        for i, proc in enumerate(procs)
    ]
    for relay in relays:
        relay.start()
    try:
        codes = _wait_all(procs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for relay in relays:
            relay.join(timeout=5)
    failed = [code if code > 0 else 128 - code for code in codes if code != 0]  # killed by N: 128 + N
    return failed[0] if failed else 0


def _relay(proc: subprocess.Popen[str], prefix: str, stream: TextIO, lock: threading.Lock) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        with lock:
            stream.write(prefix + line)
            stream.flush()


def _wait_all(procs: list[subprocess.Popen[str]]) -> list[int]:
    """Exit statuses of all processes; once one fails, the rest get `_GRACE_S` seconds, then are ended."""
    pending = list(procs)
    codes: dict[int, int] = {}
    while pending:
        for proc in list(pending):
            try:
                codes[id(proc)] = proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                continue
            pending.remove(proc)
            if codes[id(proc)] != 0:
                for other in pending:
                    try:
                        codes[id(other)] = other.wait(timeout=_GRACE_S)
                    except subprocess.TimeoutExpired:  # SIGKILL: JAX catches SIGTERM (a preemption notice)
                        other.kill()
                        codes[id(other)] = other.wait()
                pending = []
                break
    return [codes[id(proc)] for proc in procs]


def allreduce_bytes_per_step(model: Any, processes: int) -> dict[str, float]:
    """What one step sends between processes: every trainable weight's gradient is all-reduced densely.

    A ring all-reduce sends and receives 2 (n - 1) / n times the gradient's bytes per process; the embedding
    tables' gradients are dense (n_users + n_movies rows) even though a batch touches few rows, which is what
    makes this cost grow with the catalogue rather than with the batch.
    """
    size = int(sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in model.trainable_weights))
    factor = 2 * (processes - 1) / processes
    return {
        "trainable_bytes": size,
        "ring_allreduce_factor": round(factor, 4),
        "bytes_per_process_per_step": round(size * factor),
    }
