"""`python -m training import-db`: load a MovieLens directory into the ratings database.

The database can then be the source of truth: the service's /users endpoints write to the same tables. Pairs
people deleted through the API and the history of people who asked to be forgotten are not imported again.
Imported rows take their MovieLens timestamp as `updated_at`; importing twice leaves the same rows (upserts), and
an imported row never replaces a newer one (a person's rating of the same pair stays). The set's movie catalogue
goes into the `movies` table: training from the database reads titles and genres (its side features) there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from movierec.data import load_ratings
from movierec.data.progress import ReadProgress
from movierec.store import RatingStore, normalise_url, upgrade_to_head


@dataclass(frozen=True)
class ImportReport:
    imported: int
    skipped_removed: int
    skipped_forgotten: int
    users: int
    revision: str
    movies: int = 0

    def __str__(self) -> str:
        return (
            f"imported {self.imported} ratings of {self.users} users and {self.movies} movies "
            f"(schema {self.revision}); left out "
            f"{self.skipped_removed} removed pairs and {self.skipped_forgotten} ratings of forgotten users"
        )


def import_directory(data: Path, url: str, *, progress: ReadProgress | None = None) -> ImportReport:
    """Validate the ratings under `data` (any MovieLens layout) and upsert them into the database at `url`.

    `progress` (the CLI passes `training.progress.reading_progress()`) is told the file's read and the rows
    written.
    """
    loaded = load_ratings(data, progress=progress)
    revision = upgrade_to_head(url)
    store = RatingStore(normalise_url(url))
    try:
        removed = store.removed_pairs()
        forgotten = store.forgotten_users()
        frame = loaded.ratings
        users = frame["user_id"].to_numpy(np.int64)
        movies = frame["movie_id"].to_numpy(np.int64)
        ratings = frame["rating"].to_numpy(np.float64)
        stamps = frame["timestamp"].to_numpy(np.int64)
        now = datetime.now(UTC)
        rows = []
        skipped_removed = skipped_forgotten = 0
        for user, movie, rating, stamp in zip(
            users.tolist(), movies.tolist(), ratings.tolist(), stamps.tolist(), strict=True
        ):
            when = datetime.fromtimestamp(stamp, UTC) if stamp >= 0 else now
            if (user, movie) in removed:
                skipped_removed += 1
            elif user in forgotten and when <= forgotten[user]:
                skipped_forgotten += 1
            else:
                rows.append((user, movie, rating, when))
        imported = store.put_ratings_bulk(rows, progress)
        catalogue = loaded.movies
        n_movies = store.put_movies_bulk(
            zip(
                catalogue["movie_id"].astype("int64").tolist(),
                catalogue["title"].astype(str).tolist(),
                catalogue["genres"].astype(str).tolist(),
                strict=True,
            )
        )
        return ImportReport(
            imported, skipped_removed, skipped_forgotten, len({r[0] for r in rows}), revision, n_movies
        )
    finally:
        store.close()
