"""`python -m training train --database URL`: the database as the source of truth, on SQLite and PostgreSQL.

Real Keras training on the tiny synthetic set: a model trained from the database equals one trained from the
same ratings as files; people's stored ratings replace imported ones, removed pairs and forgotten users stay
out (also after a re-import), and the manifest records the database and the data cutoff.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_train_config
from sqlalchemy import insert
from sqlalchemy.engine import make_url
from store_helpers import BACKENDS, database_url

from movierec.data import RatingsData
from movierec.errors import DataError
from movierec.store import RatingStore, upgrade_to_head
from movierec.store.schema import AddedMovie
from movierec.store.training_data import read_training_data


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_url(request.param, tmp_path) as value:
        yield value


def _import(data: RatingsData, url: str) -> None:
    from training.import_db import import_directory

    report = import_directory(data.ratings_path.parent, url)
    assert report.imported == len(data.ratings)
    assert report.movies == len(data.movies)


def test_a_database_read_is_the_imported_set_in_file_order(url: str, tiny_ratings: RatingsData) -> None:
    _import(tiny_ratings, url)
    read = read_training_data(url)
    data = read.data
    pd.testing.assert_frame_equal(data.ratings, tiny_ratings.ratings, check_dtype=True)
    pd.testing.assert_frame_equal(
        data.movies.sort_values("movie_id").reset_index(drop=True),
        tiny_ratings.movies.sort_values("movie_id").reset_index(drop=True),
    )
    assert data.rating_scale == tiny_ratings.rating_scale
    newest = datetime.fromtimestamp(int(tiny_ratings.ratings["timestamp"].max()), UTC)
    assert read.cutoff == newest
    assert data.source["source"] == "database"
    assert data.source["cutoff"] == newest.isoformat(timespec="microseconds")
    # Only the dialect: the manifest is served by GET /model, which names no host, user or password.
    assert data.source["database"] == make_url(url).get_backend_name()
    assert read_training_data(url).data.fingerprint == data.fingerprint  # same rows, same hash


def test_training_from_the_database_equals_training_from_the_files(
    url: str, tiny_ratings: RatingsData, tmp_path: Path
) -> None:
    from training.pipeline import train_run

    _import(tiny_ratings, url)
    # Side features on: the genres and years must come from the database's catalogue as from movies.csv.
    tiny = tiny_train_config()
    config = tiny.model_copy(update={"model": tiny.model.model_copy(update={"side_features": True})})
    from_files = train_run(tiny_ratings, config, tmp_path / "files", verbose=0)
    from_db = train_run(read_training_data(url).data, config, tmp_path / "db", verbose=0)
    a, b = from_files.manifest.metrics, from_db.manifest.metrics
    assert a["n_heldout"] == b["n_heldout"]
    assert b["rmse"] == pytest.approx(a["rmse"], abs=1e-4)
    assert b["ndcg@10"] == pytest.approx(a["ndcg@10"], abs=1e-4)
    catalogue = [pd.read_csv(r.run_dir / "catalogue.csv") for r in (from_files, from_db)]
    pd.testing.assert_frame_equal(catalogue[0], catalogue[1])
    data = json.loads((tmp_path / "db" / "latest" / "manifest.json").read_text())["data"]
    assert data["source"] == "database" and data["layout"] == "database"
    assert data["cutoff"].startswith(
        datetime.fromtimestamp(int(tiny_ratings.ratings["timestamp"].max()), UTC).isoformat()[:19]
    )


def test_stored_ratings_replace_imported_ones_and_forgotten_users_stay_out(
    url: str, tiny_ratings: RatingsData
) -> None:
    from training.import_db import import_directory

    _import(tiny_ratings, url)
    frame = tiny_ratings.ratings
    replaced = (int(frame.user_id.iloc[0]), int(frame.movie_id.iloc[0]))
    deleted = (int(frame.user_id.iloc[1]), int(frame.movie_id.iloc[1]))
    forgotten = int(frame.user_id.iloc[-1])
    n_forgotten = int((frame.user_id == forgotten).sum())
    store = RatingStore(url)
    try:
        store.put_rating(*replaced, 0.5 if frame.rating.iloc[0] != 0.5 else 5.0)
        store.delete_rating(*deleted)
        store.forget_user(forgotten)
        newcomer = store.put_rating(999_999, int(frame.movie_id.iloc[5]), 4.0)
        store.put_rating(forgotten, int(frame.movie_id.iloc[7]), 3.0)  # back after being forgotten: counts
    finally:
        store.close()
    for attempt in range(2):  # a re-import undoes none of it
        read = read_training_data(url)
        ratings = read.data.ratings
        by_pair = {
            (int(u), int(m)): float(r)
            for u, m, r in ratings[["user_id", "movie_id", "rating"]].itertuples(index=False)
        }
        assert by_pair[replaced] == (0.5 if frame.rating.iloc[0] != 0.5 else 5.0)
        assert deleted not in by_pair
        assert [m for (u, m) in by_pair if u == forgotten] == [int(frame.movie_id.iloc[7])]
        assert by_pair[(999_999, int(frame.movie_id.iloc[5]))] == 4.0
        assert len(ratings) == len(frame) - 1 - n_forgotten + 2
        assert read.cutoff is not None and read.cutoff >= newcomer.updated_at
        assert read.data.source["cutoff"] == read.cutoff.isoformat(timespec="microseconds")
        if attempt == 0:
            import_directory(tiny_ratings.ratings_path.parent, url)


def test_added_movies_join_the_catalogue_with_their_year(url: str) -> None:
    upgrade_to_head(url)
    store = RatingStore(url)
    try:
        store.put_movies_bulk([(1, "Old Film (1931)", "Drama"), (2, "Remade (1990)", "Comedy")])
        with store.engine.begin() as connection:
            now = datetime.now(UTC)
            connection.execute(
                insert(AddedMovie),
                [
                    {
                        "movie_id": 2,
                        "title": "Remade",
                        "genres": "Comedy|Romance",
                        "year": 2025,
                        "added_at": now,
                    },
                    {"movie_id": 3, "title": "No Year", "genres": "Horror", "year": None, "added_at": now},
                ],
            )
        store.put_rating(7, 1, 4.0)
        assert store.catalogue_movies() == [
            (1, "Old Film (1931)", "Drama"),
            (2, "Remade (2025)", "Comedy|Romance"),
            (3, "No Year", "Horror"),
        ]
    finally:
        store.close()
    read = read_training_data(url)
    assert read.data.movies["title"].tolist() == ["Old Film (1931)", "Remade (2025)", "No Year"]


def test_an_empty_database_and_off_scale_ratings_are_clear_errors(url: str) -> None:
    upgrade_to_head(url)
    with pytest.raises(DataError, match=r"holds no ratings.*import-db"):
        read_training_data(url)
    store = RatingStore(url)
    try:
        store.put_ratings_bulk([(1, 1, 4.0, datetime.now(UTC) - timedelta(days=1))])
    finally:
        store.close()
    with pytest.raises(DataError, match="outside the rating scale"):
        read_training_data(url, rating_scale=(0.5, 3.0))


def test_the_train_command_takes_a_database_instead_of_a_directory(
    url: str, tiny_ratings: RatingsData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from training.__main__ import main

    _import(tiny_ratings, url)
    root = tmp_path / "models"
    args = ["train", "--database", url, "--model", "bias", "--epochs", "2", "--factors", "4"]
    assert main([*args, "--output-dir", str(root), "--quiet", "--no-ranker", "--no-side-features"]) == 0
    out = capsys.readouterr().out
    assert "(database layout)" in out
    manifest = json.loads((root / "latest" / "manifest.json").read_text())
    assert manifest["data"]["source"] == "database"
    assert manifest["data"]["n_ratings"] == len(tiny_ratings.ratings)
    with pytest.raises(SystemExit) as both:
        main(["train", "--database", url, "--data", str(tiny_ratings.ratings_path.parent)])
    assert both.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert np.isfinite(manifest["metrics"]["rmse"])
