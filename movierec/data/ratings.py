"""`load_ratings`: detect the layout, read and validate the ratings and the catalogue, return them."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movierec.data.layouts import DEFAULT_SCALES, LAYOUTS, detect_layout
from movierec.data.movies import empty_movies, read_movies_100k, read_movies_csv, read_movies_dat
from movierec.data.progress import ReadProgress
from movierec.data.readers import load_parquet, load_text
from movierec.data.sources import ColumnNames, csv_source, dat_source, tab_source
from movierec.errors import DataError

logger = logging.getLogger(__name__)

RATINGS_COLUMNS = ("user_id", "movie_id", "rating", "timestamp")


def rating_step_of(ratings: Any) -> float | None:
    """The step of a set of ratings: 1.0 when all are whole stars, 0.5 for half stars, None for neither (or
    none at all). The trainer records it in the manifest; the service holds stored ratings to it."""
    values = np.asarray(ratings, dtype=np.float64)
    if values.size == 0:
        return None
    for step in (1.0, 0.5):
        scaled = values / step
        if np.allclose(scaled, np.round(scaled), atol=1e-6):
            return step
    return None


@dataclass(frozen=True)
class RatingsData:
    """Validated ratings and, where the source has one, the movie catalogue.

    Attributes:
        ratings: Columns ``user_id`` (int64), ``movie_id`` (int64), ``rating`` (float32) and
            ``timestamp`` (int64, -1 when the source has none); rows in file order, RangeIndex.
        movies: Columns ``movie_id`` (int64), ``title`` (str) and ``genres`` (str, '|'-separated as in
            the MovieLens csv files); 0 rows with the same columns when there is no movies file.
            Movies rated but absent here are allowed: the catalogue decides how to show them.
        ratings_path: The file the ratings were read from (the data fingerprint hashes it).
        layout: ``"csv"``, ``"dat"``, ``"100k"`` or ``"file"`` (a single ratings file); ``"database"`` for
            ``movierec.store.training_data.read_training_data`` (``ratings_path`` then names the table).
        rating_scale: The inclusive (min, max) rating the data was validated against.
        dropped_rows: Rows removed by ``drop_invalid`` (0 otherwise).
        fingerprint: The data's SHA-256 when it did not come from a file (a database read hashes the rows
            it read); None: the trainer hashes ``ratings_path``.
        source: Extra provenance for the manifest's ``data`` section (a database read: the URL without
            password and the data cutoff, so that a retrain can tell which ratings are new).
    """

    ratings: pd.DataFrame
    movies: pd.DataFrame
    ratings_path: Path
    layout: str
    rating_scale: tuple[float, float]
    dropped_rows: int
    fingerprint: str | None = None
    source: dict[str, Any] = field(default_factory=dict)


def load_ratings(
    path: str | Path,
    *,
    drop_invalid: bool = False,
    rating_scale: tuple[float, float] | None = None,
    columns: ColumnNames | None = None,
    movies_path: str | Path | None = None,
    progress: ReadProgress | None = None,
) -> RatingsData:
    """Read and validate ratings from a MovieLens directory or a single ratings file.

    Every row is checked for missing values, non-integer ids or timestamps, non-numeric or
    non-finite ratings, ratings outside the scale, a wrong number of fields, and duplicate
    (user, movie) pairs, where every occurrence after the first is the duplicate.

    Args:
        path: A directory in the csv, dat or 100k layout (see ``detect_layout``), or a ``.csv`` /
            ``.parquet`` ratings file.
        drop_invalid: Drop bad rows (logging a warning that counts them per problem) instead of raising.
        rating_scale: Inclusive (min, max) valid rating; defaults to the layout's scale
            (``DEFAULT_SCALES``).
        columns: Column names of a single ratings file; defaults to the MovieLens csv names.
            Only for a single file.
        movies_path: A movies csv (movieId, title, genres) to go with a single ratings file.
            Only for a single file; without it the catalogue is empty.
        progress: Where the ratings file's reads report bytes and rows (``movierec.data.progress``; the
            trainer passes ``training.progress.reading_progress()``); None reads silently, unmetered.

    Returns:
        The validated ratings, in file order, and the movie catalogue.

    Raises:
        DataError: The data cannot be read or has bad rows (and ``drop_invalid`` is off). The message
            names the file, each problem with its count and up to 5 example lines, and what to do.
        UnknownLayoutError: ``path`` is neither a known layout nor a supported file.
        ValueError: ``rating_scale`` is not an increasing pair of finite numbers, or ``columns`` or
            ``movies_path`` was given for a directory.
    """
    started = time.perf_counter()
    path = Path(path)
    layout = detect_layout(path)
    if layout != "file" and (columns is not None or movies_path is not None):
        raise ValueError(
            f"columns and movies_path apply to a single ratings file; {path} is a directory in the "
            f"{layout} layout, whose files have fixed columns"
        )
    scale = _check_scale(rating_scale if rating_scale is not None else DEFAULT_SCALES[layout])

    if layout == "file":
        ratings_path = path
        names = columns or ColumnNames()
        if path.suffix.lower() == ".parquet":
            ratings, dropped = load_parquet(path, names, scale, drop_invalid, progress)
        else:
            ratings, dropped = load_text(csv_source(path, names), scale, drop_invalid, progress)
        movies = (
            read_movies_csv(Path(movies_path), drop_invalid) if movies_path is not None else empty_movies()
        )
    else:
        ratings_path = path / LAYOUTS[layout][0]
        movies_file = path / LAYOUTS[layout][1]
        if layout == "csv":
            ratings, dropped = load_text(
                csv_source(ratings_path, ColumnNames()), scale, drop_invalid, progress
            )
            movies = read_movies_csv(movies_file, drop_invalid)
        elif layout == "dat":
            ratings, dropped = load_text(dat_source(ratings_path), scale, drop_invalid, progress)
            movies = read_movies_dat(movies_file, drop_invalid)
        else:
            ratings, dropped = load_text(tab_source(ratings_path), scale, drop_invalid, progress)
            movies = read_movies_100k(movies_file, drop_invalid)

    if ratings.empty:
        raise DataError(f"{ratings_path}: the file holds no ratings")
    logger.info(
        "loaded %d ratings and %d movies from %s (%s layout) in %.1f s",
        len(ratings),
        len(movies),
        ratings_path,
        layout,
        time.perf_counter() - started,
    )
    return RatingsData(
        ratings=ratings,
        movies=movies,
        ratings_path=ratings_path,
        layout=layout,
        rating_scale=scale,
        dropped_rows=dropped,
    )


def _check_scale(scale: tuple[float, float]) -> tuple[float, float]:
    try:
        low, high = (float(value) for value in scale)
    except (TypeError, ValueError):
        raise ValueError(f"rating_scale must be a (min, max) pair of numbers, got {scale!r}") from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"rating_scale must be finite with min < max, got {scale!r}")
    return low, high
