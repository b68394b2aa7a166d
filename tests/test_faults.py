"""Broken artifacts: start-up refuses them with a message naming the problem; `/admin/reload` refuses them and
the model that was serving keeps serving.

Each fault is made on a copy of the session's tiny run (`shutil.copytree` into `tmp_path`), never in place.
Faults that a checksum would catch anyway (an id map that no longer matches the model) also get their checksum
rewritten, so that the consistency check behind the checksum is what is tested. The SIGKILL-during-training
test lives in `test_training.py`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from movierec.artifacts import (
    CATALOGUE_FILE,
    LATEST,
    MANIFEST,
    MODEL_FILE,
    MOVIE_IDS_FILE,
    USER_IDS_FILE,
    sha256_file,
)
from movierec.errors import ArtifactError

TOKEN = "faults-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _rewrite_checksum(run: Path, name: str) -> None:
    manifest = json.loads((run / MANIFEST).read_text())
    manifest["files"][name] = {"sha256": sha256_file(run / name), "bytes": (run / name).stat().st_size}
    (run / MANIFEST).write_text(json.dumps(manifest))


def truncate_model(run: Path) -> None:
    path = run / MODEL_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def future_schema(run: Path) -> None:
    manifest = json.loads((run / MANIFEST).read_text())
    manifest["schema_version"] = 99
    (run / MANIFEST).write_text(json.dumps(manifest))


def short_user_ids(run: Path) -> None:
    ids = np.load(run / USER_IDS_FILE)
    np.save(run / USER_IDS_FILE, ids[:-1])
    _rewrite_checksum(run, USER_IDS_FILE)


def shifted_movie_ids(run: Path) -> None:
    ids = np.load(run / MOVIE_IDS_FILE)
    np.save(run / MOVIE_IDS_FILE, ids + 1)  # still a valid (sorted, unique) map, but not the model's
    _rewrite_checksum(run, MOVIE_IDS_FILE)


def missing_catalogue(run: Path) -> None:
    (run / CATALOGUE_FILE).unlink()


def corrupt_manifest(run: Path) -> None:
    (run / MANIFEST).write_text('{"schema_version": 2, "run_id": ')


# fault name -> (how to break a run, fragments the refusal must contain)
FAULTS: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "truncated-model": (truncate_model, (MODEL_FILE, "truncated or corrupt")),
    "future-schema": (future_schema, ("schema_version 99", "upgrade movierec")),
    "short-user-ids": (short_user_ids, ("inconsistent", "id maps hold 59 users", "user_factors")),
    "shifted-movie-ids": (shifted_movie_ids, ("inconsistent", "catalogue movie ids do not match")),
    "missing-catalogue": (missing_catalogue, (CATALOGUE_FILE, "missing")),
    "corrupt-manifest": (corrupt_manifest, (MANIFEST, "not valid JSON")),
}


@pytest.fixture
def model_root(tiny_bundle_dir: Path, tmp_path: Path) -> Path:
    """A private model root: the good run (what `latest` points at) and one broken copy per fault."""
    root = tmp_path / "models"
    root.mkdir()
    shutil.copytree(tiny_bundle_dir, root / tiny_bundle_dir.name)
    (root / LATEST).symlink_to(tiny_bundle_dir.name)
    for name, (breaker, _) in FAULTS.items():
        shutil.copytree(tiny_bundle_dir, root / name)
        breaker(root / name)
    return root


@pytest.fixture
def client(model_root: Path) -> Iterator[TestClient]:
    settings = Settings(model_dir=model_root / LATEST, admin_token=TOKEN, device="cpu")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


# ---- start-up ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", list(FAULTS))
def test_startup_refuses_a_broken_artifact_naming_the_problem(model_root: Path, fault: str) -> None:
    app = create_app(Settings(model_dir=model_root / fault, device="cpu"))
    with pytest.raises(ArtifactError) as excinfo, TestClient(app):
        pass
    for fragment in FAULTS[fault][1]:
        assert fragment in str(excinfo.value), (fragment, str(excinfo.value))
    assert app.state.holder.current is None


def test_startup_refuses_a_latest_link_pointing_nowhere(model_root: Path) -> None:
    (model_root / LATEST).unlink()
    (model_root / LATEST).symlink_to("run-that-was-deleted")
    app = create_app(Settings(model_dir=model_root / LATEST, device="cpu"))
    with pytest.raises(ArtifactError, match="run-that-was-deleted, which does not exist"), TestClient(app):
        pass


def test_startup_refuses_a_missing_model_dir(tmp_path: Path) -> None:
    app = create_app(Settings(model_dir=tmp_path / "nothing-here", device="cpu"))
    with pytest.raises(ArtifactError, match="does not exist; train a model first"), TestClient(app):
        pass


# ---- /admin/reload -------------------------------------------------------------------------------------------


def _assert_still_serving(client: TestClient, run_id: str) -> None:
    assert client.get("/model").json()["run_id"] == run_id
    assert client.get("/ready").json() == {"status": "ready", "run_id": run_id, "database": "ok"}
    prediction = client.post("/predict", json={"user_id": 1, "movie_id": 10})
    assert prediction.status_code == 200 and 0.5 <= prediction.json()["predicted_rating"] <= 5.0


@pytest.mark.parametrize("fault", list(FAULTS))
def test_reload_refuses_a_broken_run_and_the_old_model_keeps_serving(
    client: TestClient, model_root: Path, tiny_bundle_dir: Path, fault: str
) -> None:
    response = client.post("/admin/reload", headers=AUTH, json={"run_id": fault})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "invalid_artifact"
    for fragment in FAULTS[fault][1]:
        assert fragment in body["detail"], (fragment, body["detail"])
    assert str(model_root) not in body["detail"] and str(model_root.resolve()) not in body["detail"]
    _assert_still_serving(client, tiny_bundle_dir.name)
    assert 'movierec_reloads_total{outcome="refused"} 1.0' in client.get("/metrics").text


def test_reload_of_latest_pointing_nowhere_is_refused(
    client: TestClient, model_root: Path, tiny_bundle_dir: Path
) -> None:
    (model_root / LATEST).unlink()
    (model_root / LATEST).symlink_to("run-that-was-deleted")
    response = client.post("/admin/reload", headers=AUTH)
    assert response.status_code == 422 and response.json()["code"] == "invalid_artifact", response.text
    assert LATEST in response.json()["detail"]
    _assert_still_serving(client, tiny_bundle_dir.name)


def test_a_good_reload_after_refusals_still_works(
    client: TestClient, model_root: Path, tiny_bundle_dir: Path
) -> None:
    for fault in FAULTS:
        assert client.post("/admin/reload", headers=AUTH, json={"run_id": fault}).status_code == 422
    shutil.copytree(tiny_bundle_dir, model_root / "second-good-run")
    body = client.post("/admin/reload", headers=AUTH, json={"run_id": "second-good-run"}).json()
    # The manifest's run id is what the service reports; the copy keeps the original's.
    assert body == {"previous_run_id": tiny_bundle_dir.name, "run_id": tiny_bundle_dir.name}
    _assert_still_serving(client, tiny_bundle_dir.name)


def test_a_run_deleted_after_listing_is_refused(
    client: TestClient, model_root: Path, tiny_bundle_dir: Path
) -> None:
    """A run directory that vanishes (or loses files) between two reloads is refused, not half-loaded."""
    shutil.copytree(tiny_bundle_dir, model_root / "ephemeral")
    for name in (MODEL_FILE, CATALOGUE_FILE):
        (model_root / "ephemeral" / name).unlink()
    response = client.post("/admin/reload", headers=AUTH, json={"run_id": "ephemeral"})
    assert response.status_code == 422, response.text
    _assert_still_serving(client, tiny_bundle_dir.name)


def test_unchecked_artifacts_still_fail_on_inconsistency(model_root: Path) -> None:
    """With checksum verification off, the consistency checks still catch mismatched id maps."""
    app = create_app(Settings(model_dir=model_root / "short-user-ids", device="cpu", verify_checksums=False))
    with pytest.raises(ArtifactError, match="inconsistent"), TestClient(app):
        pass
