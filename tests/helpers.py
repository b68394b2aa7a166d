"""Synthetic MovieLens-like data with planted structure, shared by the test modules."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from movierec.data import RatingsData

GENRES = ("Action", "Comedy", "Drama", "Romance", "Sci-Fi", "Thriller", "Children", "Horror")
RATING_SCALE = (0.5, 5.0)
GLOBAL_MEAN = 3.5


def make_ratings(
    n_users: int = 60,
    n_movies: int = 80,
    n_ratings: int = 2500,
    seed: int = 0,
    *,
    directory: Path | None = None,
    n_factors: int = 3,
    noise: float = 0.4,
) -> RatingsData:
    """Ratings with planted biases and low-rank taste, written as a MovieLens csv layout.

    Each rating is `3.5 + b_u + b_i + p_u . q_i + noise`, rounded to half stars and clipped to 0.5-5. Users
    and movies are drawn with skewed activity / popularity, so some users rate many movies and some movies
    are rated often (what the fold-in and "most-rated" code paths need). Raw ids are not contiguous (users
    `1, 3, 5, ...`, movies `10, 17, 24, ...`) so that a confusion of id and index shows up. Rows are in
    (user, movie) order like the MovieLens files; timestamps are random, so a temporal split differs from a
    positional one.

    Args:
        n_users: number of users (every one rates at least one movie when n_ratings >= n_users).
        n_movies: number of movies in the catalogue (a few may go unrated).
        n_ratings: number of distinct (user, movie) pairs rated; at most n_users * n_movies.
        seed: seed of everything random here.
        directory: where to write `ratings.csv` and `movies.csv`; a temporary directory (removed at exit)
            when None. The files are real because the trainer fingerprints the ratings file.
        n_factors: rank of the planted taste structure.
        noise: standard deviation of the rating noise before rounding.

    Returns:
        A `RatingsData` equal to what `movierec.data.load_ratings(directory)` reads back.
    """
    if n_ratings > n_users * n_movies:
        raise ValueError("n_ratings exceeds the number of (user, movie) pairs")
    rng = np.random.default_rng(seed)
    user_bias = rng.normal(0.0, 0.3, n_users)
    movie_bias = rng.normal(0.0, 0.6, n_movies)
    user_vecs = rng.normal(0.0, 0.5, (n_users, n_factors))
    movie_vecs = rng.normal(0.0, 0.5, (n_movies, n_factors))
    # Skewed activity: the Gumbel top-k trick samples distinct cells with probability ~ weight, in O(cells).
    user_weight = rng.pareto(1.5, n_users) + 0.2
    movie_weight = rng.pareto(1.5, n_movies) + 0.2
    log_w = (np.log(user_weight)[:, None] + np.log(movie_weight)[None, :]).ravel()
    keys = log_w + rng.gumbel(size=log_w.size)
    cells = np.sort(np.argpartition(-keys, n_ratings - 1)[:n_ratings])
    u, m = np.divmod(cells, n_movies)
    raw = (
        GLOBAL_MEAN
        + user_bias[u]
        + movie_bias[m]
        + np.einsum("ij,ij->i", user_vecs[u], movie_vecs[m])
        + rng.normal(0.0, noise, n_ratings)
    )
    rating = np.clip(np.round(raw * 2) / 2, *RATING_SCALE).astype(np.float32)

    user_ids = 1 + 2 * np.arange(n_users, dtype=np.int64)
    movie_ids = 10 + 7 * np.arange(n_movies, dtype=np.int64)
    ratings = pd.DataFrame(
        {
            "user_id": user_ids[u],
            "movie_id": movie_ids[m],
            "rating": rating,
            "timestamp": rng.integers(1_000_000_000, 1_500_000_000, n_ratings, dtype=np.int64),
        }
    )
    genres = [
        "|".join(sorted({GENRES[j % len(GENRES)], GENRES[(j * 3 + 1) % len(GENRES)]}))
        for j in range(n_movies)
    ]
    genres[0] = "(no genres listed)"
    movies = pd.DataFrame(
        {
            "movie_id": movie_ids,
            # A comma in a title exercises csv quoting, as in "Godfather, The (1972)".
            "title": [f"Synthetic Movie {j}, The ({1950 + j % 70})" for j in range(n_movies)],
            "genres": genres,
        }
    )

    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="movierec-ratings-"))
        atexit.register(shutil.rmtree, directory, True)
    directory.mkdir(parents=True, exist_ok=True)
    ratings.rename(columns={"user_id": "userId", "movie_id": "movieId"}).to_csv(
        directory / "ratings.csv", index=False
    )
    movies.rename(columns={"movie_id": "movieId"}).to_csv(directory / "movies.csv", index=False)
    return RatingsData(
        ratings=ratings,
        movies=movies,
        ratings_path=directory / "ratings.csv",
        layout="csv",
        rating_scale=RATING_SCALE,
        dropped_rows=0,
    )


FIXTURE_SOURCES = Path(__file__).parent / "fixtures"
FIXTURE_SUFFIX = ".fixture"


@functools.cache
def layout_fixtures() -> Path:
    """A temporary copy of tests/fixtures with the MovieLens file names restored.

    The hand-written layout files are stored as `*.fixture` so that no file in the repository carries a
    MovieLens data file name; layout detection needs the real names, so tests read this copy (removed at exit).
    """
    root = Path(tempfile.mkdtemp(prefix="movierec-fixtures-"))
    atexit.register(shutil.rmtree, root, True)
    shutil.copytree(FIXTURE_SOURCES, root, dirs_exist_ok=True)
    for path in list(root.rglob(f"*{FIXTURE_SUFFIX}")):
        path.rename(path.with_name(path.name.removesuffix(FIXTURE_SUFFIX)))
    return root


REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_DATA_NAME = "ml-latest-small"
# Where ml-latest-small may be: the shared copy beside the checkout, and data/, where
# `python -m training download ml-latest-small` (and `make run`) put it.
REAL_DATA_RELATIVE = (Path("..") / "shared" / "data" / REAL_DATA_NAME, Path("data") / REAL_DATA_NAME)
REAL_DATA_HINT = f"run `python -m training download {REAL_DATA_NAME}` (it writes data/{REAL_DATA_NAME})"


def real_data_candidates(root: Path = REPO_ROOT) -> list[Path]:
    """The directories searched for the real ml-latest-small, first match wins."""
    return [(root / relative).resolve() for relative in REAL_DATA_RELATIVE]


def real_data_dir(root: Path = REPO_ROOT) -> Path | None:
    """The first candidate holding a ratings.csv, or None (the real-data tests then skip)."""
    return next((d for d in real_data_candidates(root) if (d / "ratings.csv").is_file()), None)


def real_data_skip_reason(root: Path = REPO_ROOT) -> str:
    searched = ", ".join(str(d) for d in real_data_candidates(root))
    return f"{REAL_DATA_NAME} is in none of {searched}; {REAL_DATA_HINT}"
