"""Synthetic MovieLens-layout data: layout, sizes, no duplicate pairs, planted floor, skew, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from movierec.data import load_ratings
from training.synth import SynthSpec, write_synthetic

SPEC = SynthSpec(
    n_users=300, n_movies=400, n_ratings=20_000, n_factors=4, noise=0.5, seed=3, chunk_rows=4_000
)


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    write_synthetic(SPEC, out)
    return out


def test_synth_writes_the_movielens_csv_layout(synth_dir: Path) -> None:
    assert (synth_dir / "ratings.csv").read_text().splitlines()[0] == "userId,movieId,rating,timestamp"
    assert (synth_dir / "movies.csv").read_text().splitlines()[0] == "movieId,title,genres"
    data = load_ratings(synth_dir)
    assert data.layout == "csv"
    assert len(data.ratings) == SPEC.n_ratings
    assert data.ratings["user_id"].nunique() == SPEC.n_users
    assert len(data.movies) == SPEC.n_movies


def test_synth_ratings_are_half_stars_on_the_scale_sorted_without_duplicate_pairs(synth_dir: Path) -> None:
    frame = pd.read_csv(synth_dir / "ratings.csv")
    ratings = frame["rating"].to_numpy()
    assert ratings.min() >= 0.5 and ratings.max() <= 5.0
    assert np.all(ratings * 2 == np.round(ratings * 2))
    assert not frame.duplicated(["userId", "movieId"]).any()
    keys = frame["userId"].to_numpy() * (SPEC.n_movies + 1) + frame["movieId"].to_numpy()
    assert np.all(np.diff(keys) > 0), "rows are sorted by user, then movie, like the MovieLens files"
    assert frame["timestamp"].between(789_652_009, 1_574_327_703).all()


def test_synth_planted_floor_matches_the_noise_and_beats_the_global_mean(synth_dir: Path) -> None:
    planted = json.loads((synth_dir / "planted.json").read_text())
    floor = planted["planted_rmse_floor"]
    ratings = pd.read_csv(synth_dir / "ratings.csv")["rating"].to_numpy()
    global_mean_rmse = float(np.sqrt(np.mean((ratings - ratings.mean()) ** 2)))
    # Gaussian noise 0.5 plus half-star rounding (uniform, sd 0.144) and clipping: about sqrt(0.25 + 0.02).
    assert 0.4 < floor < 0.6
    assert floor < global_mean_rmse - 0.1, "the planted structure must explain a measurable share of variance"
    assert planted["n_ratings"] == SPEC.n_ratings


def test_synth_popularity_and_activity_are_skewed(synth_dir: Path) -> None:
    frame = pd.read_csv(synth_dir / "ratings.csv")
    per_movie = np.sort(frame["movieId"].value_counts().to_numpy())[::-1]
    top_tenth = per_movie[: len(per_movie) // 10].sum() / per_movie.sum()
    assert top_tenth > 0.2, "the most popular 10% of movies get well over 10% of ratings"
    per_user = frame["userId"].value_counts()
    assert per_user.min() >= min(SPEC.min_user_ratings, SPEC.n_ratings // SPEC.n_users)
    assert per_user.max() > 3 * per_user.median()


def test_synth_is_deterministic_for_a_seed(tmp_path: Path, synth_dir: Path) -> None:
    write_synthetic(SPEC, tmp_path)
    assert (tmp_path / "ratings.csv").read_bytes() == (synth_dir / "ratings.csv").read_bytes()
    assert (tmp_path / "movies.csv").read_bytes() == (synth_dir / "movies.csv").read_bytes()


def test_synth_refuses_more_ratings_than_users_can_hold() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        SynthSpec(n_users=2, n_movies=10, n_ratings=100)
