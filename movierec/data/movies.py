"""The movie catalogue: reading movies.csv, movies.dat and u.item, with one genre vocabulary for all."""

from __future__ import annotations

import logging
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd

from movierec.data.validation import INTEGER_RE, MAX_EXAMPLES
from movierec.errors import DataError

logger = logging.getLogger(__name__)

MOVIES_COLUMNS = ("movie_id", "title", "genres")
NO_GENRES = "(no genres listed)"

# The 19 genre flag columns of ml-100k's u.item, in file order.
GENRES_100K = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
# ml-100k and ml-1m spell it "Children's" where the csv sets say "Children", and ml-100k flags "unknown"
# where the csv sets say "(no genres listed)". One vocabulary for all layouts keeps genre filters and
# genre features independent of where the data came from.
_GENRE_ALIASES = {"Children's": "Children", "unknown": ""}


def empty_movies() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "movie_id": pd.Series(dtype="int64"),
            "title": pd.Series(dtype=str),
            "genres": pd.Series(dtype=str),
        }
    )


def _decode(path: Path) -> str:
    """Text of a movies file: UTF-8 where valid, else latin-1.

    ml-100k and ml-1m titles are latin-1, the csv sets are UTF-8, and a latin-1 file with accents is
    practically never valid UTF-8, so trying UTF-8 first reads both without mojibake.
    """
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read the movies file: {error}") from error
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def read_movies_csv(path: Path, drop_invalid: bool) -> pd.DataFrame:
    try:
        # keep_default_na=False: titles such as "NA" or "None" are titles, not missing values.
        frame = pd.read_csv(StringIO(_decode(path)), dtype=str, keep_default_na=False, index_col=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the movies file is empty; expected a movieId,title,genres header") from None
    except ValueError as error:
        raise DataError(f"{path}: cannot read the movies file: {error}") from error
    missing = [name for name in ("movieId", "title", "genres") if name not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(map(repr, missing))} in the movies file; expected "
            f"movieId,title,genres, found {', '.join(map(repr, frame.columns))}"
        )
    return _movies_frame(
        frame["movieId"].fillna("").tolist(),
        frame["title"].fillna("").tolist(),
        frame["genres"].fillna("").tolist(),
        lines=list(range(2, len(frame) + 2)),
        path=path,
        drop_invalid=drop_invalid,
    )


def read_movies_dat(path: Path, drop_invalid: bool) -> pd.DataFrame:
    ids: list[str] = []
    titles: list[str] = []
    genres: list[str] = []
    lines: list[int] = []
    for number, line in enumerate(_decode(path).splitlines(), start=1):
        if not line.strip():
            continue
        movie_id, _, rest = line.partition("::")
        # Split the genres off the right so that a title containing '::' stays whole.
        title, separator, genre_text = rest.rpartition("::")
        if not separator:
            title, genre_text = rest, ""
        ids.append(movie_id)
        titles.append(title)
        genres.append(genre_text)
        lines.append(number)
    return _movies_frame(ids, titles, genres, lines=lines, path=path, drop_invalid=drop_invalid)


def read_movies_100k(path: Path, drop_invalid: bool) -> pd.DataFrame:
    ids: list[str] = []
    titles: list[str] = []
    genres: list[str] = []
    lines: list[int] = []
    n_flags = len(GENRES_100K)
    for number, line in enumerate(_decode(path).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("|")
        # id|title|release date|video release date|IMDb URL|19 flags; a '|' in a title would add fields
        # in the middle, so take the flags from the right and the title as whatever sits before the dates.
        if len(fields) < 5 + n_flags:
            ids.append("")  # reported as a bad line below
            titles.append(line)
            genres.append("")
            lines.append(number)
            continue
        flags = fields[-n_flags:]
        names = [genre for genre, flag in zip(GENRES_100K, flags, strict=True) if flag.strip() == "1"]
        ids.append(fields[0])
        titles.append("|".join(fields[1 : -(n_flags + 3)]))
        genres.append("|".join(names))
        lines.append(number)
    return _movies_frame(ids, titles, genres, lines=lines, path=path, drop_invalid=drop_invalid)


def _movies_frame(
    ids: list[str], titles: list[str], genres: list[str], *, lines: list[int], path: Path, drop_invalid: bool
) -> pd.DataFrame:
    id_text = pd.Series(ids, dtype=str).str.strip()
    whole = id_text.str.fullmatch(INTEGER_RE).to_numpy(dtype=bool, na_value=False)
    if not whole.all():
        bad = np.flatnonzero(~whole)
        shown = ", ".join(f"line {lines[i]} ({ids[i]!r})" for i in bad[:MAX_EXAMPLES])
        if not drop_invalid:
            raise DataError(
                f"{path}: {len(bad)} movies with a missing or non-integer movie id or too few fields: "
                f"{shown}. Fix the file, or pass --drop-invalid to drop these movies."
            )
        logger.warning("dropped %d movies without an integer movie id from %s: %s", len(bad), path, shown)
    movie_ids = pd.to_numeric(id_text.where(pd.Series(whole), "0").str.strip()).to_numpy(dtype=np.int64)
    frame = pd.DataFrame(
        {
            "movie_id": movie_ids[whole],
            "title": pd.Series(titles, dtype=str)[whole].str.strip().to_numpy(),
            "genres": [_normalise_genres(text) for text, ok in zip(genres, whole, strict=True) if ok],
        }
    )
    repeated = frame["movie_id"].duplicated()
    if repeated.any():
        # The catalogue needs one row per movie; the first is the one MovieLens would show.
        logger.warning(
            "%s lists %d movie ids more than once (e.g. %s); kept the first of each",
            path,
            int(repeated.sum()),
            ", ".join(str(movie) for movie in frame.loc[repeated, "movie_id"].head(MAX_EXAMPLES)),
        )
        frame = frame.loc[~repeated]
    frame = frame.reset_index(drop=True)
    frame["title"] = frame["title"].astype(str)
    frame["genres"] = frame["genres"].astype(str)
    return frame


def _normalise_genres(text: str) -> str:
    names = [_GENRE_ALIASES.get(name.strip(), name.strip()) for name in text.split("|")]
    names = [name for name in names if name]
    return "|".join(names) if names else NO_GENRES
