"""Reading ratings files: the typed first read, the validating text reads (pyarrow, pandas), Parquet.

Reading is built for the big sets (ml-25m, ml-32m: 25-32M rows): the first attempt is a typed read
with pandas' C parser; only when that fails, or finds a problem, is the file read again as text, in
chunks, to classify every bad row and give its exact line number. Clean files never pay for the second
read; a bad one pays a few times the first read's time, in bounded memory.

Given a `ReadProgress` (movierec/data/progress.py), each read goes through a `CountingReader` that reports
the bytes and rows read; without one the parsers open the path themselves, as before.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from movierec.data.progress import BYTES, CountingReader, ReadProgress, open_counted, rows_text
from movierec.data.sources import ColumnNames, TextSource
from movierec.data.validation import Checked, apply, check, concat, finish, mark_duplicates
from movierec.errors import DataError

logger = logging.getLogger(__name__)

_CHUNK_ROWS = 1_000_000
_SKIPPED_LINE_RE = re.compile(r"Skipping line (\d+)")


def _labels(source: TextSource) -> dict[str, str]:
    """Column names as the user sees them in the file (header names, or field roles), for messages."""
    roles = {"user_id": "user", "movie_id": "movie", "rating": "rating", "timestamp": "timestamp"}
    return {
        column: name if isinstance(name, str) else roles[column] for column, name in source.fields.items()
    }


@contextmanager
def _opened(
    source: TextSource, progress: ReadProgress | None, doing: str
) -> Iterator[tuple[Path | CountingReader, CountingReader | None]]:
    """What a parser reads: the path itself without progress, else a `CountingReader` (closed on leaving)."""
    if progress is None:
        yield source.path, None
        return
    with open_counted(
        source.path, f"{doing} {source.path.name}", progress, header_lines=1 if source.header else 0
    ) as counted:
        yield counted, counted


def load_text(
    source: TextSource,
    scale: tuple[float, float],
    drop_invalid: bool,
    progress: ReadProgress | None = None,
) -> tuple[pd.DataFrame, int]:
    labels = _labels(source)
    typed = _read_typed(source, progress)
    if typed is not None:
        checked = check(typed, scale, labels)
        mark_duplicates(checked, labels)
        if not checked.bad().any():
            return finish(checked), 0
    # Something is wrong: read again as text, where every bad value survives to be classified
    # and every row keeps its exact line number (blank lines included).
    checked, lines, wide = _read_text(source, scale, labels, progress)
    first_seen = mark_duplicates(checked, labels)
    if not wide and not checked.bad().any():
        # e.g. lines of bare separators, which the typed read rejects and the text read skips
        return finish(checked), 0
    return apply(
        checked,
        path=source.path,
        lines=lines,
        unit="line",
        wide=wide,
        first_seen=first_seen,
        scale=scale,
        drop_invalid=drop_invalid,
    )


def _read_typed(source: TextSource, progress: ReadProgress | None = None) -> pd.DataFrame | None:
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
            with _opened(source, progress, "reading") as (target, counted):
                frame = pd.read_csv(
                    target,
                    sep=source.sep,
                    header=0 if source.header else None,
                    names=source.names,
                    usecols=source.usecols,
                    dtype=dtypes,
                    index_col=False,
                    engine="c",
                )
                if counted is not None:
                    counted.finish(len(frame))
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
    source: TextSource,
    scale: tuple[float, float],
    labels: dict[str, str],
    progress: ReadProgress | None = None,
) -> tuple[Checked, NDArray[np.int64], list[int]]:
    """The validating read: every field as text, with exact line numbers.

    pyarrow's reader is several times faster than pandas' text read on the big sets (its text of
    ml-25m's needed columns takes about 1 GB); pandas, in chunks, covers files pyarrow refuses
    (invalid UTF-8, ...) and installs without pyarrow, which is not a core dependency.

    Returns:
        The checked rows, the file line of each, and the lines skipped for a wrong number of fields.
    """
    read = _read_text_arrow(source, scale, labels, progress)
    return read if read is not None else _read_text_pandas(source, scale, labels, progress)


def _read_text_arrow(
    source: TextSource,
    scale: tuple[float, float],
    labels: dict[str, str],
    progress: ReadProgress | None = None,
) -> tuple[Checked, NDArray[np.int64], list[int]] | None:
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
            with _opened(source, progress, "checking every line of") as (target, counted):
                table = pa_csv.read_csv(
                    target,
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
                if counted is not None:
                    counted.finish(table.num_rows)
        except (pa.ArrowException, ValueError, OSError):
            return None
        # Threaded reads do not number the rows they skip; only then is a slower, numbered read needed.
        if None not in skipped:
            break
    else:
        return None
    renamed = {str(name): name for name in source.names}
    parts: list[Checked] = []
    empties: list[NDArray[np.bool_]] = []
    for start in range(0, table.num_rows, _CHUNK_ROWS):
        frame = table.slice(start, _CHUNK_ROWS).to_pandas().rename(columns=renamed)
        checked, empty = _check_chunk(frame, source, scale, labels)
        parts.append(checked)
        empties.append(empty)
    return _assemble(parts, empties, sorted(number for number in skipped if number is not None), source)


def _read_text_pandas(
    source: TextSource,
    scale: tuple[float, float],
    labels: dict[str, str],
    progress: ReadProgress | None = None,
) -> tuple[Checked, NDArray[np.int64], list[int]]:
    parts: list[Checked] = []
    empties: list[NDArray[np.bool_]] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        try:
            with _opened(source, progress, "checking every line of") as (target, counted):
                reader = pd.read_csv(
                    target,
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
                if counted is not None:
                    counted.finish(sum(len(empty) for empty in empties))
        except pd.errors.EmptyDataError:
            pass
        except (ValueError, OSError) as error:
            raise DataError(f"{source.path}: cannot read the file: {error}") from error
    _raise_on_wide_first_row(caught, source)
    wide = [int(number) for warning in caught for number in _SKIPPED_LINE_RE.findall(str(warning.message))]
    return _assemble(parts, empties, sorted(wide), source)


def _check_chunk(
    frame: pd.DataFrame, source: TextSource, scale: tuple[float, float], labels: dict[str, str]
) -> tuple[Checked, NDArray[np.bool_]]:
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
    return check(table.loc[~empty].reset_index(drop=True), scale, labels, malformed), empty


def _assemble(
    parts: list[Checked], empties: list[NDArray[np.bool_]], wide: list[int], source: TextSource
) -> tuple[Checked, NDArray[np.int64], list[int]]:
    """Join checked chunks and number their rows by file line, around skipped and empty lines."""
    all_empty = np.concatenate(empties) if empties else np.zeros(0, dtype=bool)
    lines = np.arange(source.first_line, source.first_line + len(all_empty) + len(wide), dtype=np.int64)
    if wide:
        lines = np.delete(lines, np.asarray(wide) - source.first_line)
    if all_empty.any():
        logger.debug("%s: skipped %d empty lines", source.path, int(all_empty.sum()))
    return concat(parts), lines[~all_empty], wide


def _raise_on_wide_first_row(caught: list[warnings.WarningMessage], source: TextSource) -> None:
    if any("Length of header or names does not match" in str(warning.message) for warning in caught):
        # The first row set the field count, so later rows cannot be checked against the header.
        raise DataError(
            f"{source.path}: line {source.first_line} has more fields than "
            f"{'the header' if source.header else 'the format'} ({len(source.names)}). "
            "Fix the file; such a line cannot be dropped with --drop-invalid."
        )


def load_parquet(
    path: Path,
    columns: ColumnNames,
    scale: tuple[float, float],
    drop_invalid: bool,
    progress: ReadProgress | None = None,
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
        if progress is not None:
            # Columnar and compressed, it reads in one go (about a second at ml-25m's size): one last line.
            meter = progress(f"reading {path.name}", path.stat().st_size, BYTES)
            meter.set_postfix_str(rows_text(len(frame)), refresh=False)
            meter.update(path.stat().st_size)
            meter.close()
    except DataError:
        raise
    except Exception as error:  # pyarrow raises its own hierarchy (ArrowInvalid, ...) for corrupt files
        raise DataError(f"{path}: cannot read the Parquet file: {error}") from error
    table = pd.DataFrame({column: frame[name].reset_index(drop=True) for column, name in fields.items()})
    labels = dict(fields)
    checked = check(table, scale, labels)
    first_seen = mark_duplicates(checked, labels)
    if not checked.bad().any():
        return finish(checked), 0
    return apply(
        checked,
        path=path,
        lines=np.arange(1, len(table) + 1, dtype=np.int64),
        unit="row",
        wide=[],
        first_seen=first_seen,
        scale=scale,
        drop_invalid=drop_invalid,
    )
