"""Load and validate explicit ratings from every published MovieLens layout, or from one file.

`load_ratings` returns the ratings in file order with fixed column names and dtypes, plus the movie
catalogue when the source has one. A file with bad rows either fails with a message that names the
lines to fix, or, with ``drop_invalid=True``, loses exactly those rows and says so in a warning.

The package's files, in the order they depend on each other:

- ``layouts``: which MovieLens layout a path holds (``detect_layout``), its file names and rating scale.
- ``sources``: where the ratings sit in each file (``ColumnNames``, the delimited-text descriptions).
- ``validation``: the checks on parsed ratings, and the error report or the drop of bad rows.
- ``progress``: the optional hook a long read reports its bytes and rows to (the trainer draws it).
- ``readers``: the reads of a ratings file: typed first, then as text to find the bad lines; Parquet.
- ``movies``: the movie catalogue of each layout, with one genre vocabulary.
- ``ratings``: ``load_ratings`` and the ``RatingsData`` it returns.
"""

from __future__ import annotations

from movierec.data.layouts import DEFAULT_SCALES, LAYOUTS, SINGLE_FILE_SUFFIXES, detect_layout
from movierec.data.movies import GENRES_100K, MOVIES_COLUMNS, NO_GENRES
from movierec.data.ratings import RATINGS_COLUMNS, RatingsData, load_ratings, rating_step_of
from movierec.data.sources import ColumnNames
from movierec.data.validation import NO_TIMESTAMP

__all__ = [
    "DEFAULT_SCALES",
    "GENRES_100K",
    "LAYOUTS",
    "MOVIES_COLUMNS",
    "NO_GENRES",
    "NO_TIMESTAMP",
    "RATINGS_COLUMNS",
    "SINGLE_FILE_SUFFIXES",
    "ColumnNames",
    "RatingsData",
    "detect_layout",
    "load_ratings",
    "rating_step_of",
]
