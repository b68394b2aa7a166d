"""The artifact contract: save_bundle writes it, load_bundle validates it, writes are atomic, `latest` only
moves on success."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from movierec.artifacts import (
    LATEST,
    MANIFEST,
    MODEL_FILE,
    REQUIRED_FILES,
    SCHEMA_VERSION,
    SCORING_FILE,
    TMP_PREFIX,
    USER_IDS_FILE,
    FileRecord,
    UserRatings,
    list_runs,
    load_bundle,
    point_latest,
    read_manifest,
    save_bundle,
    sha256_file,
    write_bundle,
)
from movierec.errors import ArtifactError


@pytest.fixture
def run_copy(tiny_bundle_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny run (the session bundle must stay intact), with a `latest` link to it."""
    root = tmp_path / "models"
    root.mkdir()
    run = root / tiny_bundle_dir.name
    shutil.copytree(tiny_bundle_dir, run)
    point_latest(root, run.name)
    return run


def _edit_manifest(run: Path, **changes: object) -> None:
    raw = json.loads((run / MANIFEST).read_text())
    raw.update(changes)
    (run / MANIFEST).write_text(json.dumps(raw))


def _rewrite_file(run: Path, name: str, write) -> None:
    """Replace an artifact file and record its new checksum, as a (buggy) trainer would have."""
    write(run / name)
    raw = json.loads((run / MANIFEST).read_text())
    raw["files"][name] = FileRecord(
        sha256=sha256_file(run / name), bytes=(run / name).stat().st_size
    ).model_dump()
    (run / MANIFEST).write_text(json.dumps(raw))


def _entries(root: Path) -> set[str]:
    return {p.name for p in root.iterdir()}


def test_load_bundle_reads_a_trained_run(tiny_bundle_dir, tiny_model_root, tiny_ratings):
    bundle = load_bundle(tiny_bundle_dir)
    manifest = bundle.manifest
    assert manifest.schema_version == SCHEMA_VERSION
    assert manifest.model_kind == "bias"
    assert manifest.run_id == tiny_bundle_dir.name
    assert set(manifest.files) == set(REQUIRED_FILES)
    n_users, n_movies = len(bundle.user_ids), len(bundle.movie_ids)
    assert (n_users, n_movies) == (manifest.n_users, manifest.n_movies)
    # The tiny bundle is refitted on all ratings, so it knows every user and every rated movie.
    assert n_users == tiny_ratings.ratings["user_id"].nunique()
    assert n_movies == tiny_ratings.ratings["movie_id"].nunique()
    assert bundle.arrays["user_factors"].shape == (n_users, 8)
    assert bundle.arrays["movie_bias"].shape == (n_movies,)
    np.testing.assert_array_equal(bundle.catalogue["movie_id"].to_numpy(), bundle.movie_ids.ids)
    assert bundle.user_ratings.indptr[-1] == len(tiny_ratings.ratings)
    # `latest` is the same run, and list_runs sees exactly it.
    assert load_bundle(tiny_model_root / LATEST).path == tiny_bundle_dir.resolve()
    assert list_runs(tiny_model_root) == [tiny_bundle_dir.name]


def test_user_ratings_round_trip_the_training_ratings(tiny_bundle_dir, tiny_ratings):
    bundle = load_bundle(tiny_bundle_dir)
    frame = tiny_ratings.ratings
    user_id = int(frame["user_id"].iloc[0])
    u = bundle.user_ids.index(user_id)
    mine = frame[frame["user_id"] == user_id].sort_values("movie_id")
    np.testing.assert_array_equal(bundle.movie_ids.id_of(bundle.user_ratings.movies_of(u)), mine["movie_id"])
    np.testing.assert_array_equal(bundle.user_ratings.ratings_of(u), mine["rating"])


def test_user_ratings_from_pairs_groups_by_user():
    ur = UserRatings.from_pairs(
        np.array([2, 0, 2, 0]), np.array([5, 1, 3, 0]), np.array([1, 2, 3, 4]), n_users=4
    )
    np.testing.assert_array_equal(ur.indptr, [0, 2, 2, 4, 4])
    np.testing.assert_array_equal(ur.movies_of(0), [0, 1])
    np.testing.assert_array_equal(ur.ratings_of(0), [4, 2])
    np.testing.assert_array_equal(ur.movies_of(2), [3, 5])
    assert ur.movies_of(1).size == 0 and ur.movies_of(3).size == 0


@pytest.mark.parametrize("name", [SCORING_FILE, USER_IDS_FILE, MODEL_FILE])
def test_missing_file_is_an_artifact_error_naming_it(run_copy, name):
    (run_copy / name).unlink()
    with pytest.raises(ArtifactError, match=rf"{re.escape(name)} is missing"):
        load_bundle(run_copy)


def test_missing_manifest_is_an_artifact_error(run_copy):
    (run_copy / MANIFEST).unlink()
    with pytest.raises(ArtifactError, match=r"manifest\.json is missing"):
        load_bundle(run_copy)


def test_truncated_model_fails_its_checksum(run_copy):
    path = run_copy / MODEL_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ArtifactError, match=r"model\.keras does not match its checksum") as info:
        load_bundle(run_copy)
    assert "truncated or corrupt" in str(info.value)
    # Checks can be skipped on purpose (e.g. a trusted, huge artifact): then the truncated model is not read.
    load_bundle(run_copy, verify_checksums=False)


def test_future_schema_version_says_to_upgrade(run_copy):
    _edit_manifest(run_copy, schema_version=SCHEMA_VERSION + 1)
    with pytest.raises(ArtifactError, match="upgrade movierec"):
        load_bundle(run_copy)


@pytest.mark.parametrize("version", [0, 1, None])
def test_old_or_missing_schema_version_says_to_retrain(run_copy, version):
    # Schema 1 artifacts predate `scorer`, `evaluated_model` and `served_model`: refused, with what to do.
    _edit_manifest(run_copy, schema_version=version)
    with pytest.raises(ArtifactError, match=f"schema_version {version!r} .*; retrain the model"):
        load_bundle(run_copy)


def test_a_scorer_family_this_movierec_does_not_know_is_refused(run_copy):
    _edit_manifest(run_copy, scorer="quantum")
    with pytest.raises(ArtifactError, match="unknown scorer family 'quantum'"):
        load_bundle(run_copy)


def test_save_bundle_writes_every_file_that_load_bundle_reads_back(run_copy):
    import keras

    root = run_copy.parent
    source = load_bundle(run_copy)
    manifest = source.manifest.model_copy(update={"run_id": "saved-run", "files": {}})
    final = save_bundle(
        root,
        "saved-run",
        manifest,
        keras_model=keras.saving.load_model(run_copy / MODEL_FILE),
        arrays=source.arrays,
        user_ids=source.user_ids,
        movie_ids=source.movie_ids,
        catalogue=source.catalogue,
        user_ratings=source.user_ratings,
        update_latest=False,
    )
    saved = load_bundle(final)
    assert os.readlink(root / LATEST) == run_copy.name
    assert set(saved.manifest.files) == set(REQUIRED_FILES)
    assert saved.manifest.model_dump(exclude={"files", "run_id"}) == source.manifest.model_dump(
        exclude={"files", "run_id"}
    )
    for key, value in source.arrays.items():
        np.testing.assert_array_equal(saved.arrays[key], value)
    np.testing.assert_array_equal(saved.user_ids.ids, source.user_ids.ids)
    np.testing.assert_array_equal(saved.movie_ids.ids, source.movie_ids.ids)
    for field in ("indptr", "indices", "ratings"):
        np.testing.assert_array_equal(getattr(saved.user_ratings, field), getattr(source.user_ratings, field))
    assert saved.catalogue.equals(source.catalogue)


def test_save_bundle_refuses_a_catalogue_without_the_contract_columns(run_copy):
    root = run_copy.parent
    source = load_bundle(run_copy)
    with pytest.raises(ArtifactError, match="catalogue columns"):
        save_bundle(
            root,
            "bad-run",
            source.manifest,
            keras_model=None,
            arrays=source.arrays,
            user_ids=source.user_ids,
            movie_ids=source.movie_ids,
            catalogue=source.catalogue.drop(columns=["genres"]),
            user_ratings=source.user_ratings,
        )
    assert not (root / "bad-run").exists()


def test_manifest_that_is_not_json_is_an_artifact_error(run_copy):
    (run_copy / MANIFEST).write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_bundle(run_copy)


def test_id_map_and_embedding_size_mismatch_is_an_artifact_error(run_copy):
    # One user fewer in the id map than rows in the embedding; manifest counts and checksums agree with the
    # new file, so only the consistency check can catch it.
    ids = np.load(run_copy / USER_IDS_FILE)
    _rewrite_file(run_copy, USER_IDS_FILE, lambda path: np.save(path, ids[:-1]))
    _edit_manifest(run_copy, n_users=len(ids) - 1)
    with pytest.raises(
        ArtifactError, match=r"user_factors has shape .* expected \d+ rows to match the id map"
    ):
        load_bundle(run_copy)


def test_bias_array_size_mismatch_is_an_artifact_error(run_copy):
    with np.load(run_copy / SCORING_FILE) as npz:
        arrays = dict(npz)
    arrays["movie_bias"] = arrays["movie_bias"][:-2]
    _rewrite_file(run_copy, SCORING_FILE, lambda path: np.savez(path, **arrays))
    with pytest.raises(ArtifactError, match="movie_bias has shape"):
        load_bundle(run_copy)


def test_latest_pointing_nowhere_is_an_artifact_error(tmp_path):
    (tmp_path / LATEST).symlink_to("20990101-000000-bias-gone")
    with pytest.raises(ArtifactError, match="does not exist") as info:
        load_bundle(tmp_path / LATEST)
    assert "20990101-000000-bias-gone" in str(info.value)


def test_missing_directory_says_to_train(tmp_path):
    with pytest.raises(ArtifactError, match="train a model first"):
        load_bundle(tmp_path / "nothing-here")


def test_write_bundle_failure_leaves_no_trace_and_latest_unchanged(run_copy):
    root = run_copy.parent
    manifest = read_manifest(run_copy).model_copy(update={"run_id": "new-run"})
    before = _entries(root)

    def half_then_fail(directory: Path) -> None:
        shutil.copy(run_copy / MODEL_FILE, directory / MODEL_FILE)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_bundle(root, "new-run", half_then_fail, manifest)
    assert _entries(root) == before, "no final dir, no temporary dir"
    assert not any(name.startswith(TMP_PREFIX) for name in _entries(root))
    assert os.readlink(root / LATEST) == run_copy.name
    assert load_bundle(root / LATEST).manifest.run_id == run_copy.name


def test_write_bundle_missing_file_is_an_error_and_cleans_up(run_copy):
    root = run_copy.parent
    manifest = read_manifest(run_copy).model_copy(update={"run_id": "new-run"})
    before = _entries(root)
    with pytest.raises(ArtifactError, match="was not written"):
        write_bundle(root, "new-run", lambda directory: None, manifest)
    assert _entries(root) == before
    assert os.readlink(root / LATEST) == run_copy.name


def test_write_bundle_writes_checksums_and_moves_latest(run_copy):
    root = run_copy.parent
    manifest = read_manifest(run_copy).model_copy(update={"run_id": "new-run", "files": {}})

    def copy_files(directory: Path) -> None:
        for name in REQUIRED_FILES:
            shutil.copy(run_copy / name, directory / name)

    final = write_bundle(root, "new-run", copy_files, manifest)
    assert final == root / "new-run"
    assert os.readlink(root / LATEST) == "new-run"
    assert load_bundle(root / LATEST).manifest.files == read_manifest(run_copy).files
    assert set(list_runs(root)) == {run_copy.name, "new-run"}
    assert not any(name.startswith(TMP_PREFIX) for name in _entries(root))
    # Run ids are never reused.
    with pytest.raises(ArtifactError, match="already exists"):
        write_bundle(root, "new-run", copy_files, manifest)


def test_write_bundle_without_update_latest_leaves_latest(run_copy):
    root = run_copy.parent
    manifest = read_manifest(run_copy).model_copy(update={"run_id": "side-run"})

    def copy_files(directory: Path) -> None:
        for name in REQUIRED_FILES:
            shutil.copy(run_copy / name, directory / name)

    write_bundle(root, "side-run", copy_files, manifest, update_latest=False)
    assert os.readlink(root / LATEST) == run_copy.name
    load_bundle(root / "side-run")
