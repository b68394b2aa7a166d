"""`python -m training retrain`: the quality gate promotes a better candidate and keeps `latest` otherwise.

Real Keras training on small synthetic sets in a SQLite (and, when configured, PostgreSQL) database. The serving
model is trained from the database on an early slice of the ratings; the rest arrive later (written with their
later timestamps), so the serving model's manifest cutoff separates seen from new.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_train_config
from helpers import make_ratings
from store_helpers import BACKENDS, database_url

from movierec.artifacts import TMP_PREFIX, list_runs, load_bundle
from movierec.data import RatingsData
from movierec.store import RatingStore, upgrade_to_head
from movierec.store.training_data import read_training_data
from training.config import TrainConfig


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_url(request.param, tmp_path) as value:
        yield value


def _write(url: str, frame: pd.DataFrame, movies: pd.DataFrame | None = None) -> None:
    """Ratings (and the catalogue) into the store, each with its own timestamp as `updated_at`."""
    upgrade_to_head(url)
    store = RatingStore(url)
    try:
        store.put_ratings_bulk(
            (int(u), int(m), float(r), datetime.fromtimestamp(int(t), UTC))
            for u, m, r, t in frame[["user_id", "movie_id", "rating", "timestamp"]].itertuples(index=False)
        )
        if movies is not None:
            store.put_movies_bulk(
                zip(movies.movie_id.tolist(), movies.title.tolist(), movies.genres.tolist(), strict=True)
            )
    finally:
        store.close()


def _serve_early_slice(
    url: str, data: RatingsData, root: Path, fraction: float, config: TrainConfig
) -> tuple[pd.DataFrame, str]:
    """Train the serving model from the database holding the oldest `fraction` of ratings; return the rest."""
    from training.pipeline import train_run

    frame = data.ratings.sort_values("timestamp", kind="stable")
    n_early = int(len(frame) * fraction)
    early, late = frame.iloc[:n_early], frame.iloc[n_early:]
    _write(url, early.sort_values(["user_id", "movie_id"]), data.movies)
    result = train_run(read_training_data(url).data, config, root, verbose=0)
    return late, result.run_dir.name


def _latest_is_whole(root: Path) -> str:
    """`latest` resolves to a complete, checksum-valid run and no temporary directory is left."""
    target = (root / "latest").resolve()
    load_bundle(target)  # verifies every file's checksum
    assert not [p for p in root.iterdir() if p.name.startswith(TMP_PREFIX)]
    return target.name


def _config() -> TrainConfig:
    return tiny_train_config()


@pytest.mark.slow
def test_a_better_candidate_is_promoted_and_latest_moves(tmp_path: Path) -> None:
    from training.retrain import retrain

    data = make_ratings(150, 120, 7000, seed=3, directory=tmp_path / "data")
    with database_url("sqlite", tmp_path) as url:
        root = tmp_path / "models"
        late, serving_run = _serve_early_slice(url, data, root, 0.15, _config())
        _write(url, late)  # many new ratings arrive
        report = retrain(url, root, report_path=tmp_path / "report.json")
        assert report.decision == "promote", report.summary()
        assert report.n_new == len(late)
        # The newest 10 % of 7,000: the candidate learns from the older new ones.
        assert report.n_heldout == 700
        assert report.candidate["rmse"] < report.serving["rmse"]
        assert report.candidate["ndcg"] >= report.serving["ndcg"]
        # Users with new ratings are served folded in, as the API does.
        assert report.serving["users_fold_in"] > 0
        promoted = _latest_is_whole(root)
        assert promoted == report.promoted_run != serving_run
        manifest = json.loads((root / "latest" / "manifest.json").read_text())
        assert manifest["data"]["n_ratings"] == len(data.ratings)  # refitted on everything
        assert manifest["data"]["cutoff"] == read_training_data(url).data.source["cutoff"]
        saved = json.loads((tmp_path / "report.json").read_text())
        assert saved["decision"] == "promote" and saved["promoted_run"] == promoted
        # Straight after, nothing is new: too few to decide, latest stays.
        again = retrain(url, root)
        assert again.decision == "keep" and again.n_new == 0
        assert _latest_is_whole(root) == promoted
        assert len(list((root / "retrain-reports").glob("*.json"))) == 1


def test_a_worse_candidate_leaves_latest_where_it_was(tmp_path: Path) -> None:
    from training.retrain import retrain

    data = make_ratings(150, 120, 7000, seed=4, directory=tmp_path / "data")
    with database_url("sqlite", tmp_path) as url:
        root = tmp_path / "models"
        late, serving_run = _serve_early_slice(url, data, root, 0.85, _config())
        _write(url, late)
        crippled = TrainConfig.for_kind(
            "bias",
            epochs=1,
            batch_size=256,
            learning_rate=1e-5,
            ranker={"enabled": False},
            model_fields={"n_factors": 8, "side_features": False},
        )
        before = list_runs(root)
        report = retrain(url, root, candidate_config=crippled, report_path=tmp_path / "report.json")
        assert report.decision == "keep", report.summary()
        assert "worse" in report.reason and "RMSE" in report.reason
        assert report.candidate["rmse"] > report.serving["rmse"]
        assert _latest_is_whole(root) == serving_run
        assert list_runs(root) == before  # no new run directory: the candidate trained in a scratch directory
        assert json.loads((tmp_path / "report.json").read_text())["decision"] == "keep"


def test_too_few_new_ratings_keep_latest_and_exit_zero(
    url: str,
    tiny_model_root: Path,
    tiny_ratings: RatingsData,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A serving model trained from files has no cutoff: what is new is what it did not train on."""
    from training.__main__ import main
    from training.import_db import import_directory

    root = tmp_path / "models"
    shutil.copytree(tiny_model_root, root, symlinks=True)
    serving_run = _latest_is_whole(root)
    import_directory(tiny_ratings.ratings_path.parent, url)
    rng = np.random.default_rng(0)
    now = datetime.now(UTC)
    store = RatingStore(url)
    try:
        # 50 new ratings from 10 people: under the 200 ratings / 20 users needed.
        store.put_ratings_bulk(
            (100_001 + i % 10, int(m), 4.0, now - timedelta(seconds=i))
            for i, m in enumerate(rng.choice(tiny_ratings.movies.movie_id.to_numpy(), 50, replace=False))
        )
    finally:
        store.close()
    report_file = tmp_path / "report.json"
    assert main(["retrain", "--database", url, "--output-dir", str(root), "--report", str(report_file)]) == 0
    out = capsys.readouterr().out
    assert "KEEP: too few new ratings" in out
    report = json.loads(report_file.read_text())
    assert report["decision"] == "keep" and report["serving_cutoff"] is None
    assert (report["n_new"], report["n_heldout"], report["n_heldout_users"]) == (50, 50, 10)
    assert report["candidate"] is None  # nothing was trained
    assert _latest_is_whole(root) == serving_run


def test_retrain_without_a_serving_model_is_an_error(url: str, tmp_path: Path, capsys) -> None:
    from training.__main__ import main

    upgrade_to_head(url)
    assert main(["retrain", "--database", url, "--output-dir", str(tmp_path / "empty")]) == 2
    assert "holds no model to compare with" in capsys.readouterr().err


def test_retrain_and_import_db_take_the_database_from_the_service_variable(
    url: str, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compose passes the URL (and its password) in the environment, never on a command line."""
    from training.__main__ import main

    upgrade_to_head(url)
    monkeypatch.setenv("MOVIEREC_DATABASE_URL", url)
    assert main(["retrain", "--output-dir", str(tmp_path / "empty")]) == 2
    assert "holds no model to compare with" in capsys.readouterr().err  # it reached the database
    monkeypatch.delenv("MOVIEREC_DATABASE_URL")
    with pytest.raises(SystemExit) as exit_info:
        main(["retrain", "--output-dir", str(tmp_path / "empty")])
    assert exit_info.value.code == 2
    assert "pass --database URL or set $MOVIEREC_DATABASE_URL" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["import-db", "--data", str(tmp_path)])
    assert "pass --database URL or set $MOVIEREC_DATABASE_URL" in capsys.readouterr().err


@pytest.mark.slow
def test_latest_moved_by_someone_else_during_a_retrain_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manual `train` that moves `latest` while a retrain runs wins: the retrain saves its run, unserved."""
    import training.retrain as retrain_module
    from training.pipeline import train_run

    data = make_ratings(150, 120, 7000, seed=3, directory=tmp_path / "data")
    with database_url("sqlite", tmp_path) as url:
        root = tmp_path / "models"
        late, serving_run = _serve_early_slice(url, data, root, 0.15, _config())
        _write(url, late)
        manual: list[str] = []

        def train_then_someone_moves_latest(*args, **kwargs):  # the real pipeline, then a concurrent writer
            result = train_run(*args, **kwargs)
            if kwargs.get("update_latest") is False and Path(args[2]) == root and not manual:
                manual.append(train_run(data, _config(), root, verbose=0).run_dir.name)
            return result

        monkeypatch.setattr(retrain_module, "train_run", train_then_someone_moves_latest)
        report = retrain_module.retrain(url, root)
        assert report.decision == "keep", report.summary()
        assert "latest moved" in report.reason
        assert _latest_is_whole(root) == manual[0] != serving_run
        assert len(list_runs(root)) == 3  # serving, the manual run and the retrain's unserved refit


def test_a_second_retrain_on_the_same_model_root_is_refused(
    url: str, tiny_model_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import fcntl

    from training.__main__ import main

    root = tmp_path / "models"
    shutil.copytree(tiny_model_root, root, symlinks=True)
    upgrade_to_head(url)
    with open(root / ".retrain.lock", "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert main(["retrain", "--database", url, "--output-dir", str(root)]) == 2
    assert "another retrain is running" in capsys.readouterr().err


@pytest.mark.slow
def test_retrain_on_real_data_promotes_a_model_that_learned_the_newer_ratings(tmp_path: Path) -> None:
    """ml-latest-small: serving trained on the oldest 80 % from the database, the newest 20 % arrive later."""
    from helpers import REAL_DATA_HINT, real_data_dir

    from movierec.data import load_ratings
    from training.__main__ import main

    source = real_data_dir()
    if source is None:
        pytest.skip(f"ml-latest-small not found: {REAL_DATA_HINT}")
    data = load_ratings(source)
    config = TrainConfig.for_kind("bias", epochs=5)
    with database_url("sqlite", tmp_path) as url:
        root = tmp_path / "models"
        late, serving_run = _serve_early_slice(url, data, root, 0.8, config)
        _write(url, late)
        report_file = tmp_path / "report.json"
        assert (
            main(["retrain", "--database", url, "--output-dir", str(root), "--report", str(report_file)]) == 0
        )
        report = json.loads(report_file.read_text())
        assert report["decision"] == "promote", report["reason"]
        assert report["n_new"] == len(late) and report["n_heldout"] == 10_001
        assert report["candidate"]["rmse"] < report["serving"]["rmse"]
        assert report["candidate"]["ndcg"] >= report["serving"]["ndcg"]
        assert _latest_is_whole(root) == report["promoted_run"] != serving_run
