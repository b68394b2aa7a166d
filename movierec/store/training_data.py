"""Training data from the ratings database: the same `RatingsData` the file readers return.

`python -m training import-db` and the /users endpoints write one table: `ratings` holds each (user, movie)
pair's current rating. An imported MovieLens rating keeps its MovieLens timestamp as `updated_at`; a person's
rating through the API upserts the same row (so it replaces the imported one), a deleted one removes the row
and records the pair in `removed_ratings`, and forgetting a user deletes their rows and marks them in
`user_state`. The table is therefore already the union of the imported set and people's ratings; this read
also drops removed pairs and forgotten users' rows from before they were forgotten, so that a row written
around those writes (or by an older importer) cannot bring them back into a model.

The catalogue is the imported `movies` table plus the movies added through the API (`added_movies`).
Rows come in (user, movie) order, as in the MovieLens files, so a split with the same seed picks the same rows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sqlalchemy.engine import make_url

from movierec.data import DEFAULT_SCALES, RatingsData
from movierec.data.progress import ReadProgress
from movierec.errors import DataError
from movierec.store.engine import normalise_url
from movierec.store.repository import RatingStore

log = logging.getLogger(__name__)

DATABASE_LAYOUT = "database"
# What `RatingsData.ratings_path` names for a database read: the table (the manifest's `ratings_file`).
RATINGS_TABLE = Path("ratings")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class DatabaseRatings:
    """A database read: the training data, each row's `updated_at` and the newest of them (the data cutoff).

    `updated_at_us` (microseconds since the epoch, one per row of `data.ratings`) is finer than the ratings'
    whole-second `timestamp` column: a retrain compares it with the serving model's cutoff.
    """

    data: RatingsData
    updated_at_us: NDArray[np.int64]
    cutoff: datetime | None

    def subset(self, keep: NDArray[np.bool_]) -> DatabaseRatings:
        """The read restricted to the rows `keep` marks (a retrain's candidate data), with its own cutoff and
        fingerprint."""
        ratings = self.data.ratings.loc[keep].reset_index(drop=True)
        micros = self.updated_at_us[keep]
        if ratings.empty:
            raise DataError("no ratings left to train on")
        cutoff = _EPOCH + timedelta(microseconds=int(micros.max()))
        data = dataclasses.replace(
            self.data,
            ratings=ratings,
            fingerprint=fingerprint(ratings, micros),
            source={**self.data.source, "cutoff": cutoff_text(cutoff)},
        )
        return DatabaseRatings(data, micros, cutoff)


def fingerprint(ratings: pd.DataFrame, micros: NDArray[np.int64]) -> str:
    """SHA-256 of the rows read (ids, ratings and write times): two reads of the same rows hash the same."""
    digest = hashlib.sha256()
    for column in ("user_id", "movie_id", "rating"):
        digest.update(np.ascontiguousarray(ratings[column].to_numpy()).tobytes())
    digest.update(np.ascontiguousarray(micros).tobytes())
    return digest.hexdigest()


def redact(url: str) -> str:
    """The URL with its password masked, for the trainer's own messages and reports."""
    return make_url(url).render_as_string(hide_password=True)


def dialect_of(url: str) -> str:
    """The database as an artifact's manifest names it: its dialect alone ("sqlite", "postgresql"). The
    manifest is served by GET /model, which must not name a host, a user or a password."""
    return make_url(url).get_backend_name()


def cutoff_text(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def parse_cutoff(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def to_micros(value: datetime) -> int:
    return (value.astimezone(UTC) - _EPOCH) // timedelta(microseconds=1)


def infer_scale(ratings: NDArray[np.floating]) -> tuple[float, float]:
    """The rating scale the ratings imply: MovieLens's whole-star 1-5 when every rating is a whole star of at
    least 1 (ml-100k, ml-1m), its half-star 0.5-5 when they fit that, else the observed range."""
    low, high = float(ratings.min()), float(ratings.max())
    whole = DEFAULT_SCALES["dat"]
    half = DEFAULT_SCALES["csv"]
    if low >= whole[0] and high <= whole[1] and bool(np.all(ratings == np.round(ratings))):
        return whole
    if low >= half[0] and high <= half[1]:
        return half
    return (low, high) if low < high else (low - 0.5, high + 0.5)


def read_training_data(
    url: str, *, rating_scale: tuple[float, float] | None = None, progress: ReadProgress | None = None
) -> DatabaseRatings:
    """Every rating the database holds for training (see the module docstring), and the movie catalogue.

    Args:
        url: SQLAlchemy URL of the ratings database (`postgresql://` means psycopg 3).
        rating_scale: the inclusive scale to validate against; inferred from the ratings when None (a retrain
            passes the serving model's).
        progress: where the read of the ratings table reports its rows (movierec/data/progress.py); None:
            silent.

    Raises:
        DataError: the database holds no ratings, or ratings outside `rating_scale`.
        StoreUnavailableError: the database cannot be reached.
    """
    store = RatingStore(normalise_url(url))
    try:
        # Ratings first, then the removals and forget markers: a delete or forget that lands between the reads
        # is still honoured (its row may have been read, its marker is read after).
        frame = store.ratings_frame(progress)
        removed = store.removed_pairs()
        forgotten = store.forgotten_users()
        movies = store.catalogue_movies()
    finally:
        store.close()
    if frame.empty:
        raise DataError(
            f"{redact(url)} holds no ratings; load a MovieLens set first with "
            f"`python -m training import-db --data DIR --database URL`"
        )
    users = frame["user_id"].to_numpy(np.int64)
    movie_ids = frame["movie_id"].to_numpy(np.int64)
    updated = frame["updated_at"]
    since_epoch = (updated - pd.Timestamp(_EPOCH)) // pd.Timedelta(microseconds=1)
    micros: NDArray[np.int64] = np.asarray(since_epoch.to_numpy(np.int64), dtype=np.int64)
    keep = np.ones(len(frame), dtype=bool)
    if removed:
        pairs = pd.MultiIndex.from_arrays([users, movie_ids])
        keep &= ~pairs.isin(list(removed))
    if forgotten:
        # NaN (never forgotten) compares false: those rows stay.
        limits = pd.Series({user: float(to_micros(when)) for user, when in forgotten.items()})
        keep &= ~(micros <= pd.Series(users).map(limits).to_numpy(np.float64))
    dropped = int((~keep).sum())
    if dropped:
        log.info("left out %d ratings of removed pairs or forgotten users", dropped)
    ratings = pd.DataFrame(
        {
            "user_id": users[keep],
            "movie_id": movie_ids[keep],
            "rating": frame["rating"].to_numpy(np.float32)[keep],
            "timestamp": micros[keep] // 1_000_000,
        }
    )
    micros = np.asarray(micros[keep], dtype=np.int64)
    if ratings.empty:
        raise DataError(f"{redact(url)} holds no ratings left to train on (all removed or forgotten)")
    scale = rating_scale if rating_scale is not None else infer_scale(ratings["rating"].to_numpy())
    values = ratings["rating"].to_numpy()
    outside = (values < scale[0]) | (values > scale[1])
    if outside.any():
        raise DataError(
            f"{redact(url)}: {int(outside.sum())} ratings lie outside the rating scale {scale} "
            f"(e.g. user {int(ratings['user_id'][outside].iloc[0])}, rating {float(values[outside][0])})"
        )
    catalogue = pd.DataFrame(movies, columns=["movie_id", "title", "genres"]).astype(
        {"movie_id": "int64", "title": str, "genres": str}
    )
    if catalogue.empty:
        log.warning("%s has no movie catalogue: no titles or genre features", redact(url))
    cutoff = _EPOCH + timedelta(microseconds=int(micros.max()))
    data = RatingsData(
        ratings=ratings,
        movies=catalogue,
        ratings_path=RATINGS_TABLE,
        layout=DATABASE_LAYOUT,
        rating_scale=(float(scale[0]), float(scale[1])),
        dropped_rows=0,
        fingerprint=fingerprint(ratings, micros),
        source={
            "source": "database",
            "database": dialect_of(url),
            "cutoff": cutoff_text(cutoff),
            "n_left_out": dropped,
            "n_movies_catalogue": len(catalogue),
        },
    )
    return DatabaseRatings(data, micros, cutoff)
