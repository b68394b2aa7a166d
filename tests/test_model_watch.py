"""Version polling (app/model_watch.py): a new `latest` reaches a running service with no failed request."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from conftest import tiny_train_config
from fastapi.testclient import TestClient
from servers import running_uvicorn

from app import model_watch
from app.main import create_app
from app.settings import Settings
from movierec.artifacts import LATEST, SCORING_FILE, point_latest
from movierec.data import RatingsData

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "watch-token"
POLL = 0.2  # seconds between checks in these tests
SWAP_TIMEOUT = 20.0  # a swap loads and smoke-tests the tiny run: well under a second when the machine is idle


@pytest.fixture(scope="module")
def runs(tiny_model_root: Path, tiny_ratings: RatingsData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model root with the tiny session run and a second, really trained run (another seed); `latest` on
    the first. Built in a copy: the session artifact is never touched."""
    from training.pipeline import train_run

    root = tmp_path_factory.mktemp("watch-runs")
    shutil.copytree(tiny_model_root, root, symlinks=True, dirs_exist_ok=True)
    config = tiny_train_config().model_copy(update={"seed": 7})
    train_run(tiny_ratings, config, root, verbose=0, update_latest=False)
    return root


@pytest.fixture
def model_root(runs: Path, tmp_path: Path) -> Path:
    """A fresh copy of `runs` per test (tests move `latest` and add broken runs)."""
    root = tmp_path / "models"
    shutil.copytree(runs, root, symlinks=True)
    return root


def _run_ids(root: Path) -> tuple[str, str]:
    """(the run `latest` points at, the other run)."""
    first = os.readlink(root / LATEST)
    (second,) = [p.name for p in root.iterdir() if p.is_dir() and not p.is_symlink() and p.name != first]
    return first, second


def _add_broken_run(root: Path, source: str, name: str) -> None:
    """A copy of a good run whose scoring arrays are truncated: its checksum no longer matches."""
    shutil.copytree(root / source, root / name)
    path = root / name / SCORING_FILE
    path.write_bytes(path.read_bytes()[:100])


def _wait_for(condition: Callable[[], bool], timeout: float = SWAP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.05)


@pytest.fixture
def server(model_root: Path) -> Iterator[str]:
    """uvicorn on 127.0.0.1 serving `model_root/latest`, polling it every POLL seconds."""
    env = {"MOVIEREC_MODEL_DIR": str(model_root / LATEST), "MOVIEREC_MODEL_POLL_SECONDS": str(POLL)}
    with running_uvicorn(env) as base:
        yield base


class Hammer:
    """A client thread sending GET /recommend back to back, recording every failure."""

    def __init__(self, base: str, user_id: int) -> None:
        self.base, self.user_id = base, user_id
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        with httpx.Client(base_url=self.base, timeout=10) as client:
            while not self._stop.is_set():
                try:
                    response = client.get(
                        f"/recommend/{self.user_id}", params={"k": 5, "exclude_rated": "false"}
                    )
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                if response.status_code == 200 and len(response.json()["items"]) == 5:
                    self.ok += 1
                else:
                    self.failures.append(f"{response.status_code}: {response.text[:200]}")

    def __enter__(self) -> Hammer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def test_new_latest_reaches_the_running_server_with_no_failed_request(server: str, model_root: Path) -> None:
    first, second = _run_ids(model_root)
    with httpx.Client(base_url=server, timeout=10) as client:
        info = client.get("/model").json()
        assert info["run_id"] == first
        assert info["model_watch"]["interval_s"] == POLL
        assert info["model_watch"]["watching"] == LATEST  # by name: the server path is never shown
        with Hammer(server, user_id=1) as hammer:
            _wait_for(lambda: hammer.ok >= 20 or bool(hammer.failures))  # traffic flows before the switch
            assert hammer.failures == []
            before = hammer.ok
            point_latest(model_root, second)
            switched_at = time.monotonic()
            _wait_for(lambda: client.get("/ready").json()["run_id"] == second)
            took = time.monotonic() - switched_at
            _wait_for(lambda: hammer.ok >= before + 20)  # and keeps flowing after it
        info = client.get("/model").json()
    assert hammer.failures == []
    assert info["run_id"] == second
    assert info["model_watch"]["last_result"] in ("swapped", "unchanged")
    assert info["model_watch"]["last_change_at"] is not None
    assert took < SWAP_TIMEOUT
    metrics = httpx.get(f"{server}/metrics").text
    assert f'movierec_model_info{{model_kind="bias",run_id="{second}"}} 1.0' in metrics
    assert 'movierec_reloads_total{outcome="ok"} 1.0' in metrics


@pytest.fixture
def client(model_root: Path) -> Iterator[TestClient]:
    settings = Settings(
        model_dir=model_root / LATEST, model_poll_seconds=POLL, device="cpu", admin_token=TOKEN
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_a_broken_run_is_refused_and_the_next_good_one_is_taken(client: TestClient, model_root: Path) -> None:
    first, second = _run_ids(model_root)
    _add_broken_run(model_root, second, "broken-run")
    point_latest(model_root, "broken-run")
    _wait_for(lambda: client.get("/model").json()["model_watch"]["last_result"] == "refused")
    info = client.get("/model").json()
    assert info["run_id"] == first  # the old model keeps serving
    assert "broken-run" in info["model_watch"]["last_error"]
    assert "checksum" in info["model_watch"]["last_error"]
    assert client.get("/recommend/1", params={"k": 3}).status_code == 200
    # Not retried while the link stays on the broken run ...
    time.sleep(3 * POLL)
    assert client.get("/model").json()["model_watch"]["last_result"] == "unchanged"
    # ... and the next good run is taken.
    point_latest(model_root, second)
    _wait_for(lambda: client.get("/ready").json()["run_id"] == second)
    assert client.get("/model").json()["model_watch"]["last_error"] is None


def test_a_dangling_latest_keeps_the_old_model(client: TestClient, model_root: Path) -> None:
    first, _ = _run_ids(model_root)
    point_latest(model_root, "no-such-run")
    _wait_for(lambda: client.get("/model").json()["model_watch"]["last_result"] == "refused")
    assert client.get("/ready").json()["run_id"] == first


def test_a_run_pinned_by_admin_reload_stays_until_latest_moves(model_root: Path) -> None:
    first, second = _run_ids(model_root)
    # A long interval: the test drives the checks itself through `poll()`.
    settings = Settings(
        model_dir=model_root / LATEST, model_poll_seconds=3600, device="cpu", admin_token=TOKEN
    )
    app = create_app(settings)
    with TestClient(app) as client:
        watcher = app.state.model_watch
        pinned = client.post(
            "/admin/reload", json={"run_id": second}, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert pinned.status_code == 200, pinned.text
        assert watcher.poll() == "unchanged"  # `latest` still on the first run: the pin holds
        assert client.get("/ready").json()["run_id"] == second
        point_latest(model_root, first)  # not a move: the watcher has seen `latest` there already
        assert watcher.poll() == "unchanged"
        point_latest(model_root, second)
        assert watcher.poll() == "swapped"
        point_latest(model_root, first)
        assert watcher.poll() == "swapped"
        assert client.get("/ready").json()["run_id"] == first


def test_an_admin_reload_during_a_poll_is_never_overwritten_by_it(
    model_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The poller loads the run `latest` moved to while an admin pins another: the admin's reload waits for
    the poll's swap and comes after it, so the run its 200 names is the one served."""
    first, second = _run_ids(model_root)
    settings = Settings(
        model_dir=model_root / LATEST, model_poll_seconds=3600, device="cpu", admin_token=TOKEN
    )
    app = create_app(settings)
    loading, release = threading.Event(), threading.Event()
    load_model = model_watch.load_model

    def slow_load(*args: object, **kwargs: object) -> object:
        loading.set()
        release.wait(10)
        return load_model(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(model_watch, "load_model", slow_load)
    with TestClient(app) as client:
        watcher = app.state.model_watch
        point_latest(model_root, second)
        poll = threading.Thread(target=watcher.poll)
        poll.start()
        assert loading.wait(10)
        pinned: list[httpx.Response] = []
        admin = threading.Thread(
            target=lambda: pinned.append(
                client.post(
                    "/admin/reload", json={"run_id": first}, headers={"Authorization": f"Bearer {TOKEN}"}
                )
            )
        )
        admin.start()
        time.sleep(0.3)
        assert not pinned  # waits for the poll's swap instead of racing it
        release.set()
        poll.join(20)
        admin.join(20)
        assert pinned and pinned[0].status_code == 200 and pinned[0].json()["run_id"] == first
        assert client.get("/ready").json()["run_id"] == first
        assert watcher.poll() == "unchanged"  # and the pin holds until `latest` moves again


def test_polling_off(tiny_bundle_dir: Path) -> None:
    settings = Settings(model_dir=tiny_bundle_dir, model_poll_seconds=0, device="cpu")
    app = create_app(settings)
    with TestClient(app) as client:
        assert app.state.model_watch is None
        assert client.get("/model").json()["model_watch"] is None
    with pytest.raises(ValueError):
        Settings(model_dir=tiny_bundle_dir, model_poll_seconds=-1)
