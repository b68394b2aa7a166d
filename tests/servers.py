"""uvicorn on 127.0.0.1 in a subprocess, for the tests that talk to the service over real HTTP."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_uvicorn(
    env: dict[str, str], *, ready_timeout: float = 60, workers: int = 1
) -> tuple[subprocess.Popen[bytes], str]:
    """`uvicorn app.main:app` with `env` added to this process's environment, once /ready answers 200: the
    process (the caller stops it) and its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)]
    if workers > 1:
        command += ["--workers", str(workers)]
    proc = subprocess.Popen(
        [*command, "--log-level", "warning"],
        cwd=ROOT,
        env={**os.environ, "MOVIEREC_DEVICE": "cpu", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited: {proc.stdout.read().decode() if proc.stdout else ''}")
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"uvicorn did not become ready in {ready_timeout:.0f} s")


@contextmanager
def running_uvicorn(env: dict[str, str], *, ready_timeout: float = 60, workers: int = 1) -> Iterator[str]:
    """`start_uvicorn`, stopped afterwards; yields its base URL."""
    proc, base = start_uvicorn(env, ready_timeout=ready_timeout, workers=workers)
    try:
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def serving_a_copy(model_root: Path, copy_to: Path, key: str, **settings: str) -> Iterator[str]:
    """uvicorn serving a copy of `model_root` (reloads may touch it) with ratings in a SQLite file there, and one
    bearer `key` for both the admin and the ratings schemes, so one Authorization header covers every
    operation; `settings` are further MOVIEREC_* variables."""
    shutil.copytree(model_root, copy_to, dirs_exist_ok=True, symlinks=True)
    env = {
        "MOVIEREC_MODEL_DIR": str(copy_to / "latest"),
        "MOVIEREC_ADMIN_TOKEN": key,
        "MOVIEREC_API_KEY": key,
        "MOVIEREC_DATABASE_URL": f"sqlite:///{copy_to / 'ratings.db'}",
        **settings,
    }
    with running_uvicorn(env) as base:
        yield base
