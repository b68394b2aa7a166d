"""`python -m app.healthcheck` against a stdlib HTTP server: 200 -> exit 0, anything else -> exit 1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def serve_status(status: int) -> Iterator[int]:
    """Serve `status` on GET /health (404 elsewhere) on 127.0.0.1; yield the port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = status if self.path == "/health" else 404
            body = b'{"status":"ok"}' if code == 200 else b'{"status":"down"}'
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def run_healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HEALTHCHECK_URL"}
    env["PORT"] = str(port)
    return subprocess.run(
        [sys.executable, "-m", "app.healthcheck"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_healthcheck_exits_zero_when_health_answers_200() -> None:
    with serve_status(200) as port:
        result = run_healthcheck(port)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize("status", [503, 500])
def test_healthcheck_exits_one_and_says_why_on_error_status(status: int) -> None:
    with serve_status(status) as port:
        result = run_healthcheck(port)
    assert result.returncode == 1
    assert f"HTTP {status}" in result.stderr


def test_healthcheck_exits_one_when_nothing_listens() -> None:
    result = run_healthcheck(closed_port())
    assert result.returncode == 1
    assert "unreachable" in result.stderr


def test_healthcheck_imports_without_fastapi() -> None:
    code = (
        "import sys; sys.modules['fastapi'] = None; sys.modules['starlette'] = None\nimport app.healthcheck"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
