"""Load and validate explicit ratings from every published MovieLens layout, or from one file.

`load_ratings` returns the ratings in file order with fixed column names and dtypes, plus the movie
catalogue when the source has one. A file with bad rows either fails with a message that names the
lines to fix, or, with ``drop_invalid=True``, loses exactly those rows and says so in a warning.

Reading is built for the big sets (ml-25m, ml-32m: 25-32M rows): the first attempt is a typed read
with pandas' C parser; only when that fails, or finds a problem, is the file read again as text, in
chunks, to classify every bad row and give its exact line number. Clean files never pay for the second
read; a bad one pays a few times the first read's time, in bounded memory.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import warnings
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from movierec.errors import DataError, UnknownLayoutError

logger = logging.getLogger(__name__)

RATINGS_COLUMNS = ("user_id", "movie_id", "rating", "timestamp")
MOVIES_COLUMNS = ("movie_id", "title", "genres")
NO_GENRES = "(no genres listed)"
NO_TIMESTAMP = -1

# layout -> (ratings file, movies file, data sets that ship it)
LAYOUTS: dict[str, tuple[str, str, str]] = {
    "csv": ("ratings.csv", "movies.csv", "ml-latest, ml-latest-small, ml-20m, ml-25m, ml-32m"),
    "dat": ("ratings.dat", "movies.dat", "ml-1m, ml-10m"),
    "100k": ("u.data", "u.item", "ml-100k"),
}
SINGLE_FILE_SUFFIXES = (".csv", ".parquet")

# ml-1m rates in whole stars (1-5) but ml-10m, which shares the .dat layout, has half stars; the
# layout cannot tell them apart, so .dat gets the superset (0.5, 5.0), which accepts every valid file
# of both. Pass rating_scale=(1, 5) to hold ml-1m to its own scale.
DEFAULT_SCALES: dict[str, tuple[float, float]] = {
    "csv": (0.5, 5.0),
    "dat": (0.5, 5.0),
    "100k": (1.0, 5.0),
    "file": (0.5, 5.0),
}

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

_MAX_EXAMPLES = 5
_CHUNK_ROWS = 1_000_000
# Problem key -> how a report names it, in report order ("fields": lines the parser had to skip).
_PROBLEMS = {
    "fields": "the wrong number of fields",
    "missing": "a missing value",
    "separator": "a malformed '::' separator",
    "id": "a user or movie id that is not an integer",
    "non_numeric": "a non-numeric rating",
    "non_finite": "a non-finite rating (NaN or infinity)",
    "scale": "a rating outside the scale [{low:g}, {high:g}]",
    "timestamp": "a timestamp that is not an integer",
    "duplicate": "a duplicate (user, movie) pair (every occurrence after the first)",
}
# Patterns for text that is already stripped. They avoid \d and \s on purpose: pandas hands patterns
# with those to Python's re, row by row, instead of pyarrow's vectorised RE2 (20x slower on 25M rows).
# Up to 18 digits always fits in int64; longer ids are not worth the overflow corner cases.
_INTEGER_RE = "[+-]?[0-9]{1,18}"
_NUMBER_RE = "[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]{1,3})?"
_NON_FINITE_RE = "[+-]?(nan|inf|infinity)"  # matched against lower-cased text
_SKIPPED_LINE_RE = re.compile(r"Skipping line (\d+)")


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
        layout: ``"csv"``, ``"dat"``, ``"100k"`` or ``"file"`` (a single ratings file).
        rating_scale: The inclusive (min, max) rating the data was validated against.
        dropped_rows: Rows removed by ``drop_invalid`` (0 otherwise).
    """

    ratings: pd.DataFrame
    movies: pd.DataFrame
    ratings_path: Path
    layout: str
    rating_scale: tuple[float, float]
    dropped_rows: int


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
class _TextSource:
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


def detect_layout(path: Path) -> str:
    """Name the layout of a ratings source.

    Args:
        path: A MovieLens directory, or a single ``.csv`` / ``.parquet`` ratings file.

    Returns:
        ``"csv"``, ``"dat"`` or ``"100k"`` for a directory (checked in that order), ``"file"`` for a file.

    Raises:
        UnknownLayoutError: The path does not exist, is a file of another type, or is a directory
            without a complete layout. The message lists the file names looked for.
    """
    path = Path(path)
    looked_for = "; ".join(f"{r} + {m} ({sets})" for r, m, sets in LAYOUTS.values())
    if path.is_file():
        if path.suffix.lower() in SINGLE_FILE_SUFFIXES:
            return "file"
        hint = ""
        if any(path.name in (r, m) for r, m, _ in LAYOUTS.values()):
            hint = f" {path.name} is part of a MovieLens layout: pass its directory {path.parent} instead."
        raise UnknownLayoutError(
            f"{path}: unsupported ratings file; a single file must be one of "
            f"{', '.join(SINGLE_FILE_SUFFIXES)}.{hint}"
        )
    if not path.is_dir():
        raise UnknownLayoutError(
            f"{path} does not exist; pass a MovieLens directory (with {looked_for}) or a single "
            f"ratings file ({', '.join(SINGLE_FILE_SUFFIXES)})"
        )
    for layout, (ratings_name, movies_name, _) in LAYOUTS.items():
        if (path / ratings_name).is_file() and (path / movies_name).is_file():
            return layout
    raise UnknownLayoutError(
        f"{path} holds no recognisable MovieLens layout; looked for {looked_for}.{_hint(path)}"
    )


def _hint(directory: Path) -> str:
    """Say what is nearly right about a directory that holds no layout."""
    for ratings_name, movies_name, _ in LAYOUTS.values():
        present = [name for name in (ratings_name, movies_name) if (directory / name).is_file()]
        if len(present) == 1:
            if present[0] == ratings_name:
                single = (
                    f", or pass {directory / ratings_name} itself" if ratings_name == "ratings.csv" else ""
                )
                return f" Found {ratings_name} but not {movies_name}: add it{single}."
            return f" Found {movies_name} but not {ratings_name}."
    nested = sorted(
        child.name
        for child in directory.iterdir()
        if child.is_dir()
        and any((child / r).is_file() and (child / m).is_file() for r, m, _ in LAYOUTS.values())
    )
    if nested:
        return f" Did you mean {directory / nested[0]}?"
    return ""


def load_ratings(
    path: str | Path,
    *,
    drop_invalid: bool = False,
    rating_scale: tuple[float, float] | None = None,
    columns: ColumnNames | None = None,
    movies_path: str | Path | None = None,
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
            ratings, dropped = _load_parquet(path, names, scale, drop_invalid)
        else:
            ratings, dropped = _load_text(_csv_source(path, names), scale, drop_invalid)
        movies = (
            _read_movies_csv(Path(movies_path), drop_invalid) if movies_path is not None else _empty_movies()
        )
    else:
        ratings_path = path / LAYOUTS[layout][0]
        movies_file = path / LAYOUTS[layout][1]
        if layout == "csv":
            ratings, dropped = _load_text(_csv_source(ratings_path, ColumnNames()), scale, drop_invalid)
            movies = _read_movies_csv(movies_file, drop_invalid)
        elif layout == "dat":
            ratings, dropped = _load_text(_dat_source(ratings_path), scale, drop_invalid)
            movies = _read_movies_dat(movies_file, drop_invalid)
        else:
            ratings, dropped = _load_text(_tab_source(ratings_path), scale, drop_invalid)
            movies = _read_movies_100k(movies_file, drop_invalid)

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


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks so that big files never sit in memory.

    Args:
        path: The file to hash.

    Returns:
        The lower-case hex digest.
    """
    with Path(path).open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _check_scale(scale: tuple[float, float]) -> tuple[float, float]:
    try:
        low, high = (float(value) for value in scale)
    except (TypeError, ValueError):
        raise ValueError(f"rating_scale must be a (min, max) pair of numbers, got {scale!r}") from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"rating_scale must be finite with min < max, got {scale!r}")
    return low, high


# --- sources -------------------------------------------------------------------------------------


def _csv_source(path: Path, columns: ColumnNames) -> _TextSource:
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
    return _TextSource(path=path, sep=",", header=True, names=header, fields=dict(wanted))


def _dat_source(path: Path) -> _TextSource:
    # '::' as a separator would need the python engine (regex separators), far too slow for ml-10m's
    # 10M lines. Splitting on ':' keeps the C parser and yields an empty field between each pair.
    return _TextSource(
        path=path,
        sep=":",
        header=False,
        names=list(range(7)),
        fields={"user_id": 0, "movie_id": 2, "rating": 4, "timestamp": 6},
        separator_fields=(1, 3, 5),
    )


def _tab_source(path: Path) -> _TextSource:
    return _TextSource(
        path=path,
        sep="\t",
        header=False,
        names=list(range(4)),
        fields={"user_id": 0, "movie_id": 1, "rating": 2, "timestamp": 3},
    )


def _labels(source: _TextSource) -> dict[str, str]:
    """Column names as the user sees them in the file (header names, or field roles), for messages."""
    roles = {"user_id": "user", "movie_id": "movie", "rating": "rating", "timestamp": "timestamp"}
    return {
        column: name if isinstance(name, str) else roles[column] for column, name in source.fields.items()
    }


# --- ratings -------------------------------------------------------------------------------------


@dataclass
class _Checked:
    """Parsed ratings and what is wrong with each row, for a whole file or one chunk of it."""

    users: NDArray[np.int64]
    movies: NDArray[np.int64]
    ratings: NDArray[np.float64]
    stamps: NDArray[np.int64]
    masks: dict[str, NDArray[np.bool_]]  # problem key (see _PROBLEMS) -> rows that have it
    # Row position -> the row as the file has it, kept only for the rows a report may quote, so that
    # checked chunks are joined without their text (tens of bytes a field).
    shown: dict[int, str] = field(default_factory=dict)

    def bad(self) -> NDArray[np.bool_]:
        bad = np.zeros(len(self.users), dtype=bool)
        for mask in self.masks.values():
            bad |= mask
        return bad


def _load_text(
    source: _TextSource, scale: tuple[float, float], drop_invalid: bool
) -> tuple[pd.DataFrame, int]:
    labels = _labels(source)
    typed = _read_typed(source)
    if typed is not None:
        checked = _check(typed, scale, labels)
        _mark_duplicates(checked, labels)
        if not checked.bad().any():
            return _finish(checked), 0
    # Something is wrong: read again as text, where every bad value survives to be classified
    # and every row keeps its exact line number (blank lines included).
    checked, lines, wide = _read_text(source, scale, labels)
    first_seen = _mark_duplicates(checked, labels)
    if not wide and not checked.bad().any():
        # e.g. lines of bare separators, which the typed read rejects and the text read skips
        return _finish(checked), 0
    return _apply(
        checked,
        path=source.path,
        lines=lines,
        unit="line",
        wide=wide,
        first_seen=first_seen,
        scale=scale,
        drop_invalid=drop_invalid,
    )


def _read_typed(source: _TextSource) -> pd.DataFrame | None:
    """The fast read: typed columns, C parser. None when the file does not parse cleanly."""
    dtypes: dict[Any, str] = {
        source.fields["user_id"]: "int64",
        source.fields["movie_id"]: "int64",
        source.fields["rating"]: "float64",
    }
    if "timestamp" in source.fields:
        dtypes[source.fields["timestamp"]] = "int64"
    for position in source.separator_fields:
        # Empty in a well-formed file; float32 keeps the NaNs cheap and fails on stray text.
        dtypes[position] = "float32"
    try:
        with warnings.catch_warnings():
            # A first row wider than the header makes pandas drop its surplus fields with only a warning.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                source.path,
                sep=source.sep,
                header=0 if source.header else None,
                names=source.names,
                usecols=source.usecols,
                dtype=dtypes,
                index_col=False,
                engine="c",
            )
    except (ValueError, OverflowError, TypeError, pd.errors.ParserWarning):
        return None
    except OSError as error:
        raise DataError(f"{source.path}: cannot read the file: {error}") from error
    if source.separator_fields and frame[list(source.separator_fields)].notna().to_numpy().any():
        return None
    table = pd.DataFrame({column: frame[name] for column, name in source.fields.items()})
    if table["rating"].isna().any():
        # NaN here may be an empty field or a literal "NaN"; only the text read can tell which.
        return None
    return table


def _read_text(
    source: _TextSource, scale: tuple[float, float], labels: dict[str, str]
) -> tuple[_Checked, NDArray[np.int64], list[int]]:
    """The validating read: every field as text, with exact line numbers.

    pyarrow's reader is several times faster than pandas' text read on the big sets (its text of
    ml-25m's needed columns takes about 1 GB); pandas, in chunks, covers files pyarrow refuses
    (invalid UTF-8, ...) and installs without pyarrow, which is not a core dependency.

    Returns:
        The checked rows, the file line of each, and the lines skipped for a wrong number of fields.
    """
    read = _read_text_arrow(source, scale, labels)
    return read if read is not None else _read_text_pandas(source, scale, labels)


def _read_text_arrow(
    source: _TextSource, scale: tuple[float, float], labels: dict[str, str]
) -> tuple[_Checked, NDArray[np.int64], list[int]] | None:
    try:
        import pyarrow as pa
        from pyarrow import csv as pa_csv
    except ImportError:
        return None
    names = [str(name) for name in source.names]
    wanted = [str(name) for name in (*source.fields.values(), *source.separator_fields)]
    for use_threads in (True, False):
        skipped: list[int | None] = []

        def skip(row: Any, skipped: list[int | None] = skipped) -> str:
            skipped.append(row.number)
            return "skip"

        try:
            table = pa_csv.read_csv(
                source.path,
                read_options=pa_csv.ReadOptions(
                    use_threads=use_threads, skip_rows=1 if source.header else 0, column_names=names
                ),
                parse_options=pa_csv.ParseOptions(
                    delimiter=source.sep, ignore_empty_lines=False, invalid_row_handler=skip
                ),
                convert_options=pa_csv.ConvertOptions(
                    column_types=dict.fromkeys(wanted, pa.string()),
                    include_columns=wanted,
                    strings_can_be_null=False,
                ),
            )
        except (pa.ArrowException, ValueError, OSError):
            return None
        # Threaded reads do not number the rows they skip; only then is a slower, numbered read needed.
        if None not in skipped:
            break
    else:
        return None
    renamed = {str(name): name for name in source.names}
    parts: list[_Checked] = []
    empties: list[NDArray[np.bool_]] = []
    for start in range(0, table.num_rows, _CHUNK_ROWS):
        frame = table.slice(start, _CHUNK_ROWS).to_pandas().rename(columns=renamed)
        checked, empty = _check_chunk(frame, source, scale, labels)
        parts.append(checked)
        empties.append(empty)
    return _assemble(parts, empties, sorted(number for number in skipped if number is not None), source)


def _read_text_pandas(
    source: _TextSource, scale: tuple[float, float], labels: dict[str, str]
) -> tuple[_Checked, NDArray[np.int64], list[int]]:
    parts: list[_Checked] = []
    empties: list[NDArray[np.bool_]] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        try:
            reader = pd.read_csv(
                source.path,
                sep=source.sep,
                header=0 if source.header else None,
                names=source.names,
                usecols=source.usecols,
                dtype=str,
                na_filter=False,
                skip_blank_lines=False,
                index_col=False,
                on_bad_lines="warn",
                engine="c",
                encoding_errors="replace",
                # Chunks bound the memory that text costs (tens of bytes a field) on the big sets.
                chunksize=_CHUNK_ROWS,
            )
            with reader:
                for frame in reader:
                    _raise_on_wide_first_row(caught, source)
                    checked, empty = _check_chunk(frame, source, scale, labels)
                    parts.append(checked)
                    empties.append(empty)
        except pd.errors.EmptyDataError:
            pass
        except (ValueError, OSError) as error:
            raise DataError(f"{source.path}: cannot read the file: {error}") from error
    _raise_on_wide_first_row(caught, source)
    wide = [int(number) for warning in caught for number in _SKIPPED_LINE_RE.findall(str(warning.message))]
    return _assemble(parts, empties, sorted(wide), source)


def _check_chunk(
    frame: pd.DataFrame, source: _TextSource, scale: tuple[float, float], labels: dict[str, str]
) -> tuple[_Checked, NDArray[np.bool_]]:
    """Check one chunk of a text read; also returns which of its rows were empty lines (and skipped)."""
    # Rows cut short by pandas' parser hold NaN rather than "".
    table = pd.DataFrame({column: frame[name].fillna("") for column, name in source.fields.items()})
    separators = frame[list(source.separator_fields)].fillna("")
    # A line with no values carries no rating; the typed read skips blank lines alike.
    empty = np.asarray(
        (table == "").to_numpy(dtype=bool).all(axis=1) & (separators == "").to_numpy(dtype=bool).all(axis=1),
        dtype=bool,
    )
    malformed = None
    if source.separator_fields:
        malformed = np.asarray((separators != "").to_numpy(dtype=bool).any(axis=1), dtype=bool)[~empty]
    return _check(table.loc[~empty].reset_index(drop=True), scale, labels, malformed), empty


def _assemble(
    parts: list[_Checked], empties: list[NDArray[np.bool_]], wide: list[int], source: _TextSource
) -> tuple[_Checked, NDArray[np.int64], list[int]]:
    """Join checked chunks and number their rows by file line, around skipped and empty lines."""
    all_empty = np.concatenate(empties) if empties else np.zeros(0, dtype=bool)
    lines = np.arange(source.first_line, source.first_line + len(all_empty) + len(wide), dtype=np.int64)
    if wide:
        lines = np.delete(lines, np.asarray(wide) - source.first_line)
    if all_empty.any():
        logger.debug("%s: skipped %d empty lines", source.path, int(all_empty.sum()))
    return _concat(parts), lines[~all_empty], wide


def _raise_on_wide_first_row(caught: list[warnings.WarningMessage], source: _TextSource) -> None:
    if any("Length of header or names does not match" in str(warning.message) for warning in caught):
        # The first row set the field count, so later rows cannot be checked against the header.
        raise DataError(
            f"{source.path}: line {source.first_line} has more fields than "
            f"{'the header' if source.header else 'the format'} ({len(source.names)}). "
            "Fix the file; such a line cannot be dropped with --drop-invalid."
        )


def _load_parquet(
    path: Path, columns: ColumnNames, scale: tuple[float, float], drop_invalid: bool
) -> tuple[pd.DataFrame, int]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(
            f"{path}: reading Parquet needs pyarrow (pip install 'movierec[train-base]')"
        ) from None
    fields: dict[str, str] = {"user_id": columns.user, "movie_id": columns.movie, "rating": columns.rating}
    if columns.timestamp is not None:
        fields["timestamp"] = columns.timestamp
    try:
        available = list(pq.read_schema(path).names)
        missing = [name for name in fields.values() if name not in available]
        if missing:
            raise DataError(
                f"{path}: missing column(s) {', '.join(map(repr, missing))}; the file has "
                f"{', '.join(map(repr, available))}. Name the file's columns to match."
            )
        frame = pd.read_parquet(path, columns=list(dict.fromkeys(fields.values())))
    except DataError:
        raise
    except Exception as error:  # pyarrow raises its own hierarchy (ArrowInvalid, ...) for corrupt files
        raise DataError(f"{path}: cannot read the Parquet file: {error}") from error
    table = pd.DataFrame({column: frame[name].reset_index(drop=True) for column, name in fields.items()})
    labels = dict(fields)
    checked = _check(table, scale, labels)
    first_seen = _mark_duplicates(checked, labels)
    if not checked.bad().any():
        return _finish(checked), 0
    return _apply(
        checked,
        path=path,
        lines=np.arange(1, len(table) + 1, dtype=np.int64),
        unit="row",
        wide=[],
        first_seen=first_seen,
        scale=scale,
        drop_invalid=drop_invalid,
    )


def _parse_integers(series: pd.Series) -> tuple[NDArray[np.int64], NDArray[np.bool_], NDArray[np.bool_]]:
    """Integers out of a typed or text column.

    Returns:
        The values (0 where unusable), the mask of missing values, and the mask of non-integers.
    """
    n = len(series)
    if pd.api.types.is_integer_dtype(series.dtype):
        missing = series.isna().to_numpy()
        return series.fillna(0).to_numpy(dtype=np.int64), missing, np.zeros(n, dtype=bool)
    if pd.api.types.is_float_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(values)
        with np.errstate(invalid="ignore"):
            whole = np.isfinite(values) & (np.floor(values) == values) & (np.abs(values) < 2.0**63)
        invalid = ~missing & ~whole
        return np.where(whole, values, 0).astype(np.int64), missing, invalid
    text = _text(series)
    clean = _cast_all(text, "int64")
    if clean is not None:
        return clean.astype(np.int64), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    missing = (text == "").to_numpy(dtype=bool)
    whole = text.str.fullmatch(_INTEGER_RE).to_numpy(dtype=bool, na_value=False)
    invalid = ~missing & ~whole
    values = _to_numbers(text.where(whole, "0").str.lstrip("+"), "int64")
    return values.astype(np.int64), missing, invalid


def _parse_ratings(
    series: pd.Series,
) -> tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_], NDArray[np.bool_]]:
    """Ratings out of a typed or text column.

    Returns:
        The values, and the masks of missing, non-numeric and non-finite (NaN, inf) ratings.
    """
    n = len(series)
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        # A typed source stores an absent rating as NaN; count it as missing, not as a NaN rating.
        missing = np.isnan(values)
        return values, missing, np.zeros(n, dtype=bool), np.isinf(values)
    text = _text(series)
    clean = _cast_all(text, "float64")
    if clean is not None:
        values = clean.astype(np.float64)
        return values, np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), ~np.isfinite(values)
    missing = (text == "").to_numpy(dtype=bool)
    number = text.str.fullmatch(_NUMBER_RE).to_numpy(dtype=bool, na_value=False)
    literal = text.str.lower().str.fullmatch(_NON_FINITE_RE).to_numpy(dtype=bool, na_value=False)
    readable = number | literal
    values = _to_numbers(text.where(readable, "nan").str.lstrip("+"), "float64").astype(np.float64)
    non_numeric = ~missing & ~readable
    non_finite = readable & ~np.isfinite(values)
    return values, missing, non_numeric, non_finite


def _text(series: pd.Series) -> pd.Series:
    """A column as stripped text, "" where missing."""
    return series.astype(str).where(series.notna(), "").str.strip()


def _cast_all(text: pd.Series, dtype: str) -> NDArray[Any] | None:
    """Cast a whole text column at once, or None if any value (or pyarrow itself) is missing.

    In a file with a few bad rows most columns are clean; one cast settles those without the
    pattern matching that finds the bad values.
    """
    try:
        import pyarrow as pa
        import pyarrow.compute as pc

        cast = pc.cast(pa.array(text), pa.int64() if dtype == "int64" else pa.float64())
    except (ImportError, ValueError, TypeError):  # pyarrow.ArrowInvalid is a ValueError
        return None
    return np.asarray(cast.to_numpy(zero_copy_only=False))


def _to_numbers(text: pd.Series, dtype: str) -> NDArray[Any]:
    """Convert text that the caller has checked to be well-formed numbers.

    pyarrow's cast is some 60x faster than ``pd.to_numeric`` on millions of strings; pandas is the
    fallback where pyarrow is absent (it is not a core dependency) or refuses a value.
    """
    values = _cast_all(text, dtype)
    return values if values is not None else pd.to_numeric(text, errors="coerce").to_numpy(dtype=dtype)


def _check(
    table: pd.DataFrame,
    scale: tuple[float, float],
    labels: dict[str, str],
    malformed: NDArray[np.bool_] | None = None,
) -> _Checked:
    """Parse a table (typed or text) and flag every row-local problem; duplicates come later."""
    users, users_missing, users_invalid = _parse_integers(table["user_id"])
    movies, movies_missing, movies_invalid = _parse_integers(table["movie_id"])
    ratings, ratings_missing, non_numeric, non_finite = _parse_ratings(table["rating"])
    missing = users_missing | movies_missing | ratings_missing
    masks: dict[str, NDArray[np.bool_]] = {}
    if "timestamp" in table:
        stamps, stamps_missing, stamps_invalid = _parse_integers(table["timestamp"])
        missing = missing | stamps_missing
        masks["timestamp"] = stamps_invalid
    else:
        stamps = np.full(len(table), NO_TIMESTAMP, dtype=np.int64)
    masks["missing"] = missing
    if malformed is not None:
        masks["separator"] = malformed
    masks["id"] = users_invalid | movies_invalid
    masks["non_numeric"] = non_numeric
    masks["non_finite"] = non_finite
    low, high = scale
    with np.errstate(invalid="ignore"):
        masks["scale"] = np.isfinite(ratings) & ((ratings < low) | (ratings > high))
    shown: dict[int, str] = {}
    for mask in masks.values():
        for position in np.flatnonzero(mask)[:_MAX_EXAMPLES]:
            row = table.iloc[int(position)]
            shown[int(position)] = ", ".join(f"{labels[c]}={_show(row[c])}" for c in labels)
    return _Checked(users=users, movies=movies, ratings=ratings, stamps=stamps, masks=masks, shown=shown)


def _concat(parts: list[_Checked]) -> _Checked:
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return _Checked(users=empty, movies=empty, ratings=np.zeros(0), stamps=empty, masks={})
    if len(parts) == 1:
        return parts[0]
    shown: dict[int, str] = {}
    offset = 0
    for part in parts:
        shown.update({offset + position: text for position, text in part.shown.items()})
        offset += len(part.users)
    return _Checked(
        users=np.concatenate([part.users for part in parts]),
        movies=np.concatenate([part.movies for part in parts]),
        ratings=np.concatenate([part.ratings for part in parts]),
        stamps=np.concatenate([part.stamps for part in parts]),
        masks={key: np.concatenate([part.masks[key] for part in parts]) for key in parts[0].masks},
        shown=shown,
    )


def _mark_duplicates(checked: _Checked, labels: dict[str, str]) -> dict[int, int]:
    """Flag every repeat of a (user, movie) pair among otherwise valid rows.

    Judging only valid rows means that dropping a bad first occurrence keeps the valid one after it.

    Returns:
        For the first few duplicates, the position of the pair's first occurrence.
    """
    users, movies = checked.users, checked.movies
    duplicate = np.zeros(len(users), dtype=bool)
    positions = np.flatnonzero(~checked.bad())
    checked.masks["duplicate"] = duplicate
    if len(positions) < 2:
        return {}
    u, m = users[positions], movies[positions]
    u_span = int(u.max()) - int(u.min()) + 1
    m_span = int(m.max()) - int(m.min()) + 1
    if u_span * m_span < 2**62:
        # One int64 key per pair. MovieLens files are sorted by (user, movie), so a strictly increasing
        # key proves there are no duplicates in one pass; otherwise a sort does; only when there are
        # some does a stable argsort find them, keeping the first occurrence first within each run.
        # All of this beats hashing 25M pairs several times over.
        key = (u - u.min()) * np.int64(m_span) + (m - m.min())
        if bool((key[1:] > key[:-1]).all()):
            return {}
        ordered = np.sort(key)
        if not bool((ordered[1:] == ordered[:-1]).any()):
            return {}
        order = np.argsort(key, kind="stable")
        ordered = key[order]
        repeated = np.zeros(len(key), dtype=bool)
        repeated[order[1:][ordered[1:] == ordered[:-1]]] = True
    else:
        repeated = pd.DataFrame({"u": u, "m": m}).duplicated().to_numpy()
    duplicate[positions] = repeated
    first_seen: dict[int, int] = {}
    for position in np.flatnonzero(duplicate)[:_MAX_EXAMPLES]:
        same = (u == users[position]) & (m == movies[position])
        first_seen[int(position)] = int(positions[np.argmax(same)])
        values = {
            "user_id": users[position],
            "movie_id": movies[position],
            "rating": checked.ratings[position],
            "timestamp": checked.stamps[position],
        }
        checked.shown[int(position)] = ", ".join(f"{labels[c]}={values[c]}" for c in labels)
    return first_seen


def _apply(
    checked: _Checked,
    *,
    path: Path,
    lines: NDArray[np.int64],
    unit: str,
    wide: list[int],
    first_seen: dict[int, int],
    scale: tuple[float, float],
    drop_invalid: bool,
) -> tuple[pd.DataFrame, int]:
    """Raise on bad rows, or drop them and say so."""
    descriptions = {key: text.format(low=scale[0], high=scale[1]) for key, text in _PROBLEMS.items()}
    bad = checked.bad()
    n_bad = int(bad.sum()) + len(wide)
    total = len(bad) + len(wide)
    counts = {key: int(mask.sum()) for key, mask in checked.masks.items()} | {"fields": len(wide)}
    if not drop_invalid:
        parts: list[str] = []
        if wide:
            shown = ", ".join(str(line) for line in wide[:_MAX_EXAMPLES])
            more = f" and {len(wide) - _MAX_EXAMPLES} more" if len(wide) > _MAX_EXAMPLES else ""
            plural = "s" if len(wide) > 1 else ""
            parts.append(
                f"  - {_rows(len(wide))} with {descriptions['fields']}: {unit}{plural} {shown}{more}"
            )
        for key, description in descriptions.items():
            if key == "fields" or not counts.get(key):
                continue
            parts.append(f"  - {_rows(counts[key])} with {description}:")
            for position in np.flatnonzero(checked.masks[key])[:_MAX_EXAMPLES]:
                note = ""
                if key == "duplicate" and int(position) in first_seen:
                    note = f" (first seen on {unit} {lines[first_seen[int(position)]]})"
                parts.append(f"      {unit} {lines[int(position)]}: {checked.shown[int(position)]}{note}")
            if counts[key] > _MAX_EXAMPLES:
                parts.append(f"      ... and {counts[key] - _MAX_EXAMPLES} more")
        report = "\n".join(parts)
        raise DataError(
            f"{path}: {n_bad} of {total} rows failed validation:\n{report}\n"
            "Fix the file, or pass --drop-invalid to drop these rows (a warning reports what was dropped)."
        )
    summary = "; ".join(
        f"{counts[key]} with {description}" for key, description in descriptions.items() if counts.get(key)
    )
    logger.warning("dropped %d of %d rows from %s: %s", n_bad, total, path, summary)
    keep = ~bad
    if not keep.any():
        raise DataError(f"{path}: no valid ratings left after dropping {n_bad} invalid rows")
    return _finish(checked, keep), n_bad


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def _show(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)) or value == "":
        return "<missing>"
    return str(value)


def _finish(checked: _Checked, keep: NDArray[np.bool_] | None = None) -> pd.DataFrame:
    """The output frame: canonical columns and dtypes, kept rows in file order, RangeIndex."""
    columns: dict[str, NDArray[Any]] = {
        "user_id": checked.users,
        "movie_id": checked.movies,
        "rating": checked.ratings.astype(np.float32),
        "timestamp": checked.stamps,
    }
    return pd.DataFrame({name: values if keep is None else values[keep] for name, values in columns.items()})


# --- movies --------------------------------------------------------------------------------------


def _empty_movies() -> pd.DataFrame:
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


def _read_movies_csv(path: Path, drop_invalid: bool) -> pd.DataFrame:
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


def _read_movies_dat(path: Path, drop_invalid: bool) -> pd.DataFrame:
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


def _read_movies_100k(path: Path, drop_invalid: bool) -> pd.DataFrame:
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
    whole = id_text.str.fullmatch(_INTEGER_RE).to_numpy(dtype=bool, na_value=False)
    if not whole.all():
        bad = np.flatnonzero(~whole)
        shown = ", ".join(f"line {lines[i]} ({ids[i]!r})" for i in bad[:_MAX_EXAMPLES])
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
            ", ".join(str(movie) for movie in frame.loc[repeated, "movie_id"].head(_MAX_EXAMPLES)),
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
