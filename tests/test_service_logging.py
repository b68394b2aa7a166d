"""What an operator sees from uvicorn (issue 14, 4.5 and 4.6): the served model, reloads, and a one-line
start-up failure instead of a traceback."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from helpers import REPO_ROOT
from servers import free_port

from app.logging_setup import configure_logging
from app.main import create_app
from app.settings import Settings
from movierec.artifacts import load_bundle


def _uvicorn(model_dir: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MOVIEREC_")},
        "MOVIEREC_MODEL_DIR": str(model_dir),
        "MOVIEREC_DEVICE": "cpu",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port), *extra],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_missing_model_stops_uvicorn_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    proc = _uvicorn(tmp_path / "no-model-here", free_port())
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in stderr, stderr
    assert len(stderr.splitlines()) <= 6, stderr
    errors = [line for line in stderr.splitlines() if "cannot serve" in line]
    assert len(errors) == 1, stderr
    assert "does not exist" in errors[0] and "make train" in errors[0] and "MOVIEREC_MODEL_DIR" in errors[0]


@pytest.mark.slow
def test_uvicorn_logs_which_model_it_serves(tiny_bundle_dir: Path) -> None:
    run_id = load_bundle(tiny_bundle_dir).manifest.run_id
    port = free_port()
    proc = _uvicorn(tiny_bundle_dir, port)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    serving = [line for line in stderr.splitlines() if f"serving {run_id}" in line]
    assert len(serving) == 1, stderr  # logged, and once: no second handler on the way to the root logger
    assert serving[0].startswith("INFO:") and "on cpu" in serving[0]


def test_the_service_loggers_follow_movierec_log_level(
    tiny_bundle_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without configuration the `app` logger inherits WARNING and the "serving" line is never made."""
    run_id = load_bundle(tiny_bundle_dir).manifest.run_id
    try:
        with TestClient(create_app(Settings(model_dir=tiny_bundle_dir, device="cpu", log_level="info"))):
            pass
        assert any(f"serving {run_id}" in r.getMessage() for r in caplog.records)
        caplog.clear()
        with TestClient(create_app(Settings(model_dir=tiny_bundle_dir, device="cpu", log_level="warning"))):
            pass
        assert not any("serving" in r.getMessage() for r in caplog.records)
    finally:
        configure_logging("info")


def test_log_level_is_a_typed_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOVIEREC_LOG_LEVEL", "debug")
    assert Settings().log_level == "debug"
    configure_logging("debug")
    try:
        assert logging.getLogger("movierec").level == logging.DEBUG
    finally:
        configure_logging("info")
    monkeypatch.setenv("MOVIEREC_LOG_LEVEL", "chatty")
    with pytest.raises(ValueError, match="log_level"):
        Settings()
