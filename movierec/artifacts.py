"""The artifact contract between trainer and service: one directory per training run.

```
models/<run-id>/
  manifest.json       schema version, kind, scorer family, config, data fingerprint, metrics (and which model
                      they describe: `evaluated_model`), which model is served (`served_model`), file checksums
  model.keras         the trained Keras model (loads with keras.saving.load_model, any backend)
  scoring.npz         the model's weights as plain arrays + fallback baselines (what the service scores with)
  user_ids.npy        raw user ids in embedding-row order
  movie_ids.npy       raw movie ids in embedding-row order
  catalogue.csv       movie_id, title, genres, n_ratings, mean_rating in embedding-row order
  user_ratings.npz    each user's rated movies as CSR arrays (indptr, indices, ratings)
models/latest -> <run-id>
```
A run is written under a temporary name and renamed into place only when complete; `latest` is then replaced
atomically (symlink + rename), so readers see either the old run or the new one, never a half-written one.

This module owns the format: the trainer hands `save_bundle` the model and its arrays, the service gets them
back from `load_bundle`; file names and array keys appear nowhere else.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, ValidationError

from movierec.errors import ArtifactError
from movierec.hashing import sha256_file
from movierec.ids import IdMap
from movierec.model_config import BIAS_KINDS
from movierec.ranking import ranker_array_problems
from movierec.scoring import scorer_family

__all__ = ["sha256_file"]  # re-exported: tests and tools checksum artifact files through this module

# 2: `scorer`, `evaluated_model` and `served_model` joined the manifest.
SCHEMA_VERSION = 2
LATEST = "latest"
MANIFEST = "manifest.json"
MODEL_FILE = "model.keras"
SCORING_FILE = "scoring.npz"
USER_IDS_FILE = "user_ids.npy"
MOVIE_IDS_FILE = "movie_ids.npy"
CATALOGUE_FILE = "catalogue.csv"
USER_RATINGS_FILE = "user_ratings.npz"
REQUIRED_FILES = (MODEL_FILE, SCORING_FILE, USER_IDS_FILE, MOVIE_IDS_FILE, CATALOGUE_FILE, USER_RATINGS_FILE)
CATALOGUE_COLUMNS = ["movie_id", "title", "genres", "n_ratings", "mean_rating"]
TMP_PREFIX = ".tmp-"


class FileRecord(BaseModel):
    """Checksum of one artifact file, verified at load time."""

    sha256: str
    bytes: int


class Manifest(BaseModel):
    """`manifest.json`: everything needed to know how an artifact was made and how well it does."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    schema_version: int
    run_id: str
    model_kind: str
    created_at: str
    libraries: dict[str, str]
    config: dict[str, Any]
    data: dict[str, Any]
    metrics: dict[str, Any]
    head: dict[str, Any]
    n_users: int
    n_movies: int
    # The scorer family that serves the arrays ("factor" or "mlp"), from the trainer's kind registry.
    scorer: str
    # The model `metrics` describe, e.g. {"fitted_on": "train split", "n_ratings", "epochs", "scored_on":
    # "held-out split", "n_heldout"}; and the model in this directory, {"fitted_on": "all ratings (refit)" or
    # "train split (no refit)", "n_ratings", "epochs"}. They differ after a refit: the served model's own
    # held-out error is unknown (it has seen every rating).
    evaluated_model: dict[str, Any]
    served_model: dict[str, Any]
    refit: dict[str, Any] | None = None
    # The top-N ranker fitted next to the rating model (training/ranker.py), None when the run had none:
    # {"kind": "ease_lowrank", "l2", "rank", "like_threshold", "like_temperature", "chosen_on", "validation"
    # (NDCG@10 per L2 candidate), ...}. Its arrays (`ranker_factors`, `ranker_scale`, `ranker_diag`,
    # `ranker_prior`) are in scoring.npz.
    ranker: dict[str, Any] | None = None
    files: dict[str, FileRecord] = {}


@dataclass(frozen=True)
class UserRatings:
    """Each user's rated movies in CSR form: movies of user u are `indices[indptr[u]:indptr[u + 1]]`."""

    indptr: NDArray[np.int64]
    indices: NDArray[np.int32]
    ratings: NDArray[np.float32]

    @classmethod
    def from_pairs(
        cls, user_idx: NDArray[Any], movie_idx: NDArray[Any], ratings: NDArray[Any], n_users: int
    ) -> UserRatings:
        order = np.lexsort((movie_idx, user_idx))
        counts = np.bincount(np.asarray(user_idx, dtype=np.int64), minlength=n_users)
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return cls(
            indptr,
            np.asarray(movie_idx, dtype=np.int32)[order],
            np.asarray(ratings, dtype=np.float32)[order],
        )

    def movies_of(self, user_index: int) -> NDArray[np.int32]:
        return self.indices[self.indptr[user_index] : self.indptr[user_index + 1]]

    def ratings_of(self, user_index: int) -> NDArray[np.float32]:
        return self.ratings[self.indptr[user_index] : self.indptr[user_index + 1]]


@dataclass(frozen=True)
class Bundle:
    """A loaded artifact directory."""

    path: Path
    manifest: Manifest
    user_ids: IdMap
    movie_ids: IdMap
    catalogue: pd.DataFrame
    arrays: dict[str, NDArray[Any]]
    user_ratings: UserRatings


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_bundle(
    output_root: Path,
    run_id: str,
    manifest: Manifest,
    *,
    keras_model: Any,
    arrays: dict[str, NDArray[Any]],
    user_ids: IdMap,
    movie_ids: IdMap,
    catalogue: pd.DataFrame,
    user_ratings: UserRatings,
    update_latest: bool = True,
) -> Path:
    """Write a trained model as a run directory, atomically (see `write_bundle`), and return the directory.

    Args:
        output_root: the model root (e.g. `models/`).
        run_id: final directory name; must not exist yet.
        manifest: the manifest; its `files` checksums are filled in here.
        keras_model: the trained Keras model (saved as `model.keras`).
        arrays: the scoring arrays, fallback baselines included (`scoring.npz`).
        user_ids, movie_ids: the id maps in embedding-row order.
        catalogue: one row per movie index with `CATALOGUE_COLUMNS`.
        user_ratings: the served ratings in CSR form (what "already rated" and fold-in read).
        update_latest: replace `output_root/latest` once the run is in place.
    """
    if list(catalogue.columns) != CATALOGUE_COLUMNS:
        raise ArtifactError(f"catalogue columns are {list(catalogue.columns)}, expected {CATALOGUE_COLUMNS}")

    def write_files(directory: Path) -> None:
        keras_model.save(directory / MODEL_FILE)
        np.savez(directory / SCORING_FILE, **arrays)  # type: ignore[arg-type]
        user_ids.save(directory / USER_IDS_FILE)
        movie_ids.save(directory / MOVIE_IDS_FILE)
        catalogue.to_csv(directory / CATALOGUE_FILE, index=False)
        np.savez(
            directory / USER_RATINGS_FILE,
            indptr=user_ratings.indptr,
            indices=user_ratings.indices,
            ratings=user_ratings.ratings,
        )

    return write_bundle(output_root, run_id, write_files, manifest, update_latest=update_latest)


def write_bundle(
    output_root: Path,
    run_id: str,
    write_files: Callable[[Path], None],
    manifest: Manifest,
    *,
    update_latest: bool = True,
) -> Path:
    """Write a run directory atomically and (optionally) point `latest` at it: the machinery under `save_bundle`.

    Args:
        output_root: the model root (e.g. `models/`).
        run_id: final directory name; must not exist yet.
        write_files: writes every file but the manifest into the directory it is given.
        manifest: the manifest; its `files` checksums are filled in here.
        update_latest: replace `output_root/latest` once the run is in place.

    Returns:
        The final run directory.
    """
    output_root.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(output_root)
    final = output_root / run_id
    if final.exists():
        raise ArtifactError(f"{final} already exists; run ids are never reused")
    tmp = output_root / f"{TMP_PREFIX}{run_id}-{os.getpid()}"
    try:
        tmp.mkdir()
        write_files(tmp)
        files = {}
        for name in REQUIRED_FILES:
            path = tmp / name
            if not path.is_file():
                raise ArtifactError(f"internal error: {name} was not written")
            files[name] = FileRecord(sha256=sha256_file(path), bytes=path.stat().st_size)
        manifest = manifest.model_copy(update={"files": files})
        (tmp / MANIFEST).write_text(json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n")
        for path in tmp.iterdir():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(tmp)
        tmp.rename(final)
        _fsync_dir(output_root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if update_latest:
        point_latest(output_root, run_id)
    return final


def remove_stale_temporaries(output_root: Path) -> list[Path]:
    """Delete `.tmp-*` run directories left by writers that died (their pid no longer exists)."""
    removed = []
    for path in output_root.glob(f"{TMP_PREFIX}*"):
        pid_text = path.name.rsplit("-", 1)[-1]
        if not path.is_dir() or path.is_symlink() or not pid_text.isdigit() or _pid_alive(int(pid_text)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def point_latest(output_root: Path, run_id: str) -> None:
    """Atomically make `output_root/latest` a relative symlink to `run_id`."""
    link = output_root / LATEST
    tmp_link = output_root / f"{TMP_PREFIX}{LATEST}-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp_link.unlink()
    tmp_link.symlink_to(run_id)
    os.replace(tmp_link, link)
    _fsync_dir(output_root)


def list_runs(output_root: Path) -> list[str]:
    """Completed run ids under a model root (temporary and `latest` entries excluded), oldest first."""
    if not output_root.is_dir():
        return []
    return sorted(
        p.name
        for p in output_root.iterdir()
        if p.is_dir()
        and not p.is_symlink()
        and not p.name.startswith(TMP_PREFIX)
        and (p / MANIFEST).is_file()
    )


def read_manifest(path: Path) -> Manifest:
    """Parse and version-check `manifest.json` of an artifact directory."""
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise ArtifactError(f"{manifest_path} is missing: {path} is not a complete artifact directory")
    try:
        raw = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(
            f"{manifest_path} is not valid JSON ({exc}); retrain or restore the artifact"
        ) from exc
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version != SCHEMA_VERSION:
        hint = (
            "upgrade movierec"
            if isinstance(version, int) and version > SCHEMA_VERSION
            else "retrain the model"
        )
        raise ArtifactError(
            f"{manifest_path} has schema_version {version!r} but this movierec reads version {SCHEMA_VERSION}; {hint}"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise ArtifactError(f"{manifest_path} does not match the manifest schema: {exc}") from exc


def load_bundle(path: str | Path, *, verify_checksums: bool = True) -> Bundle:
    """Load and validate an artifact directory (or the `latest` link to one).

    Checks the schema version, that every file exists and matches its recorded checksum, and that id maps,
    arrays, catalogue and ratings agree in size. Raises `ArtifactError` saying what is wrong and what to do.
    """
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise ArtifactError(
            f"{path} is a link to {os.readlink(path)}, which does not exist; retrain or re-point it"
        )
    if not path.is_dir():
        raise ArtifactError(
            f"artifact directory {path} does not exist; train a model first (python -m training train ...)"
        )
    path = path.resolve()
    manifest = read_manifest(path)
    for name in REQUIRED_FILES:
        file_path = path / name
        if not file_path.is_file():
            raise ArtifactError(f"{file_path} is missing; the artifact is incomplete, retrain the model")
        record = manifest.files.get(name)
        if verify_checksums and record is None:
            raise ArtifactError(
                f"the manifest of {path.name} records no checksum for {name}; retrain the model"
            )
        if verify_checksums and record is not None:
            size = file_path.stat().st_size
            if size != record.bytes or sha256_file(file_path) != record.sha256:
                raise ArtifactError(
                    f"{file_path} does not match its checksum in the manifest ({size} bytes, expected "
                    f"{record.bytes}): the file is truncated or corrupt; retrain or restore the artifact"
                )
    try:
        user_ids = IdMap.load(path / USER_IDS_FILE)
        movie_ids = IdMap.load(path / MOVIE_IDS_FILE)
        with np.load(path / SCORING_FILE, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        with np.load(path / USER_RATINGS_FILE, allow_pickle=False) as npz:
            user_ratings = UserRatings(npz["indptr"], npz["indices"], npz["ratings"])
        catalogue = pd.read_csv(
            path / CATALOGUE_FILE,
            dtype={"movie_id": "int64", "title": "string", "genres": "string", "n_ratings": "int64"},
            keep_default_na=False,
        )
    except (OSError, ValueError, KeyError) as exc:
        raise ArtifactError(
            f"cannot read artifact files in {path}: {exc}; retrain or restore the artifact"
        ) from exc
    _check_consistency(path, manifest, user_ids, movie_ids, catalogue, arrays, user_ratings)
    return Bundle(path, manifest, user_ids, movie_ids, catalogue, arrays, user_ratings)


def _check_consistency(
    path: Path,
    manifest: Manifest,
    user_ids: IdMap,
    movie_ids: IdMap,
    catalogue: pd.DataFrame,
    arrays: dict[str, NDArray[Any]],
    user_ratings: UserRatings,
) -> None:
    problems: list[str] = []
    if len(user_ids) != manifest.n_users or len(movie_ids) != manifest.n_movies:
        problems.append(
            f"id maps hold {len(user_ids)} users / {len(movie_ids)} movies, manifest says "
            f"{manifest.n_users} / {manifest.n_movies}"
        )
    # The scorer family that will serve the arrays states what it needs (factor rows, bias and layer shapes).
    problems.extend(scorer_family(manifest.scorer).array_problems(arrays, len(user_ids), len(movie_ids)))
    # A factor scorer reads absent biases as zero, so a kind that learned biases must have exported them.
    if manifest.model_kind in BIAS_KINDS:
        for name in ("user_bias", "movie_bias"):
            if name not in arrays:
                problems.append(f"a {manifest.model_kind!r} model needs {name}, which scoring.npz lacks")
    if manifest.ranker is not None:
        problems.extend(ranker_array_problems(manifest.ranker, arrays, len(movie_ids)))
    if list(catalogue.columns) != CATALOGUE_COLUMNS:
        problems.append(f"catalogue columns are {list(catalogue.columns)}, expected {CATALOGUE_COLUMNS}")
    elif not np.array_equal(catalogue["movie_id"].to_numpy(), movie_ids.ids):
        problems.append("catalogue movie ids do not match the movie id map")
    if user_ratings.indptr.shape != (len(user_ids) + 1,) or (
        user_ratings.indices.size and int(user_ratings.indices.max()) >= len(movie_ids)
    ):
        problems.append("user_ratings does not match the id maps")
    if problems:
        raise ArtifactError(
            f"artifact {path} is inconsistent: " + "; ".join(problems) + "; retrain the model"
        )
