"""Where the ratings sit in each file: the column names of a single file, and each text layout's format.

A `TextSource` says how pandas' C parser reads one delimited ratings file: its separator, whether it has
a header, and which field holds which canonical column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from movierec.errors import DataError


@dataclass(frozen=True)
class ColumnNames:
    """Column names of a single ratings file (CSV or Parquet).

    Attributes:
        user: The user id column.
        movie: The movie id column.
        rating: The rating column.
        timestamp: The timestamp column, or None when the file has none (timestamps become -1).
    """

    user: str = "userId"
    movie: str = "movieId"
    rating: str = "rating"
    timestamp: str | None = "timestamp"


@dataclass(frozen=True)
class TextSource:
    """How to read one delimited ratings file with pandas' C parser."""

    path: Path
    sep: str
    header: bool
    names: list[str] | list[int]  # every column of the file, in order
    fields: dict[str, str | int]  # canonical column -> its name (or position) in `names`
    separator_fields: tuple[int, ...] = ()  # fields that must be empty ('::' read as two ':')

    @property
    def first_line(self) -> int:
        return 2 if self.header else 1

    @property
    def usecols(self) -> list[Any] | None:
        # Only narrow the read when the file has columns we do not need: with usecols, pandas ignores
        # surplus fields instead of flagging the line, so the exact-width read is the stricter one.
        wanted = set(self.fields.values()) | set(self.separator_fields)
        return [name for name in self.names if name in wanted] if len(wanted) < len(self.names) else None


def csv_source(path: Path, columns: ColumnNames) -> TextSource:
    try:
        header = list(pd.read_csv(path, nrows=0, index_col=False).columns)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; expected a header line and ratings") from None
    except (ValueError, OSError) as error:
        raise DataError(f"{path}: cannot read the header line: {error}") from error
    wanted = {"user_id": columns.user, "movie_id": columns.movie, "rating": columns.rating}
    if columns.timestamp is not None:
        wanted["timestamp"] = columns.timestamp
    missing = [name for name in wanted.values() if name not in header]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(map(repr, missing))}; the header has "
            f"{', '.join(map(repr, header))}. Name the file's columns (user, movie, rating, timestamp) "
            "to match its header, or set timestamp to None when there is none."
        )
    return TextSource(path=path, sep=",", header=True, names=header, fields=dict(wanted))


def dat_source(path: Path) -> TextSource:
    # '::' as a separator would need the python engine (regex separators), far too slow for ml-10m's
    # 10M lines. Splitting on ':' keeps the C parser and yields an empty field between each pair.
    return TextSource(
        path=path,
        sep=":",
        header=False,
        names=list(range(7)),
        fields={"user_id": 0, "movie_id": 2, "rating": 4, "timestamp": 6},
        separator_fields=(1, 3, 5),
    )


def tab_source(path: Path) -> TextSource:
    return TextSource(
        path=path,
        sep="\t",
        header=False,
        names=list(range(4)),
        fields={"user_id": 0, "movie_id": 1, "rating": 2, "timestamp": 3},
    )
