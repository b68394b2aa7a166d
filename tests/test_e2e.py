"""End to end: uvicorn on 127.0.0.1 with a real artifact, called over HTTP with httpx."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servers import running_uvicorn

from movierec.artifacts import MANIFEST, point_latest

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "e2e-token"


@pytest.fixture(scope="module")
def model_root(tiny_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model root with two runs (the tiny run and a renamed copy), `latest` on the first."""
    root = tmp_path_factory.mktemp("e2e-models")
    first = tiny_bundle_dir.name
    shutil.copytree(tiny_bundle_dir, root / first)
    second = f"{first}-copy"
    shutil.copytree(tiny_bundle_dir, root / second)
    manifest = json.loads((root / second / MANIFEST).read_text())
    manifest["run_id"] = second
    (root / second / MANIFEST).write_text(json.dumps(manifest))
    point_latest(root, first)
    return root


@pytest.fixture(scope="module")
def server(model_root: Path) -> Iterator[str]:
    env = {"MOVIEREC_MODEL_DIR": str(model_root / "latest"), "MOVIEREC_ADMIN_TOKEN": TOKEN}
    with running_uvicorn(env) as base:
        yield base


@pytest.mark.slow
def test_uvicorn_serves_predictions_and_recommendations(server: str, model_root: Path) -> None:
    with httpx.Client(base_url=server, timeout=10) as client:
        served = (model_root / "latest").resolve().name
        assert client.get("/health").json() == {"status": "ok", "run_id": served}
        assert client.head("/health").status_code == 200
        user = client.get("/model").json()
        assert user["model_kind"] == "bias"
        rec = client.get("/recommend/1", params={"k": 3, "exclude_rated": "false"})
        assert rec.status_code == 200 and len(rec.json()["items"]) == 3
        pred = client.post("/predict", json={"user_id": 1, "movie_id": rec.json()["items"][0]["movie_id"]})
        assert pred.status_code == 200 and 0.5 <= pred.json()["predicted_rating"] <= 5
        bad = client.post("/predict", content=b"{not json", headers={"content-type": "application/json"})
        assert bad.status_code == 422 and bad.json()["code"] == "invalid_json"


@pytest.mark.slow
def test_reload_under_concurrent_requests_fails_none(server: str, model_root: Path) -> None:
    runs = sorted(p.name for p in model_root.iterdir() if p.is_dir() and not p.is_symlink())
    failures: list[str] = []
    counts = {"requests": 0}
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=server, timeout=10) as client:
            while not stop.is_set():
                for response in (
                    client.get("/recommend/1", params={"k": 5}),
                    client.post("/predict", json={"user_id": 1, "movie_id": 10}),
                ):
                    counts["requests"] += 1
                    if response.status_code != 200:
                        failures.append(f"{response.status_code} {response.text}")

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    seen = set()
    with httpx.Client(base_url=server, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}) as admin:
        for i in range(6):
            response = admin.post("/admin/reload", json={"run_id": runs[i % 2]})
            assert response.status_code == 200, response.text
            seen.add(admin.get("/model").json()["run_id"])
            time.sleep(0.2)
    stop.set()
    for thread in threads:
        thread.join()
    assert seen == set(runs)
    assert counts["requests"] > 20
    assert failures == []
