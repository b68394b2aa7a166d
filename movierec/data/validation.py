"""Checks on parsed ratings: every row-local problem, then duplicate (user, movie) pairs.

A clean table becomes the output frame (`finish`); a table with bad rows becomes either a `DataError`
that names each problem with example lines, or, with ``drop_invalid``, the frame without them (`apply`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from movierec.errors import DataError

logger = logging.getLogger(__name__)

NO_TIMESTAMP = -1

MAX_EXAMPLES = 5
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
INTEGER_RE = "[+-]?[0-9]{1,18}"
_NUMBER_RE = "[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]{1,3})?"
_NON_FINITE_RE = "[+-]?(nan|inf|infinity)"  # matched against lower-cased text


@dataclass
class Checked:
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
    whole = text.str.fullmatch(INTEGER_RE).to_numpy(dtype=bool, na_value=False)
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


def check(
    table: pd.DataFrame,
    scale: tuple[float, float],
    labels: dict[str, str],
    malformed: NDArray[np.bool_] | None = None,
) -> Checked:
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
        for position in np.flatnonzero(mask)[:MAX_EXAMPLES]:
            row = table.iloc[int(position)]
            shown[int(position)] = ", ".join(f"{labels[c]}={_show(row[c])}" for c in labels)
    return Checked(users=users, movies=movies, ratings=ratings, stamps=stamps, masks=masks, shown=shown)


def concat(parts: list[Checked]) -> Checked:
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return Checked(users=empty, movies=empty, ratings=np.zeros(0), stamps=empty, masks={})
    if len(parts) == 1:
        return parts[0]
    shown: dict[int, str] = {}
    offset = 0
    for part in parts:
        shown.update({offset + position: text for position, text in part.shown.items()})
        offset += len(part.users)
    return Checked(
        users=np.concatenate([part.users for part in parts]),
        movies=np.concatenate([part.movies for part in parts]),
        ratings=np.concatenate([part.ratings for part in parts]),
        stamps=np.concatenate([part.stamps for part in parts]),
        masks={key: np.concatenate([part.masks[key] for part in parts]) for key in parts[0].masks},
        shown=shown,
    )


def mark_duplicates(checked: Checked, labels: dict[str, str]) -> dict[int, int]:
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
    for position in np.flatnonzero(duplicate)[:MAX_EXAMPLES]:
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


def apply(
    checked: Checked,
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
            shown = ", ".join(str(line) for line in wide[:MAX_EXAMPLES])
            more = f" and {len(wide) - MAX_EXAMPLES} more" if len(wide) > MAX_EXAMPLES else ""
            plural = "s" if len(wide) > 1 else ""
            parts.append(
                f"  - {_rows(len(wide))} with {descriptions['fields']}: {unit}{plural} {shown}{more}"
            )
        for key, description in descriptions.items():
            if key == "fields" or not counts.get(key):
                continue
            parts.append(f"  - {_rows(counts[key])} with {description}:")
            for position in np.flatnonzero(checked.masks[key])[:MAX_EXAMPLES]:
                note = ""
                if key == "duplicate" and int(position) in first_seen:
                    note = f" (first seen on {unit} {lines[first_seen[int(position)]]})"
                parts.append(f"      {unit} {lines[int(position)]}: {checked.shown[int(position)]}{note}")
            if counts[key] > MAX_EXAMPLES:
                parts.append(f"      ... and {counts[key] - MAX_EXAMPLES} more")
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
    return finish(checked, keep), n_bad


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def _show(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)) or value == "":
        return "<missing>"
    return str(value)


def finish(checked: Checked, keep: NDArray[np.bool_] | None = None) -> pd.DataFrame:
    """The output frame: canonical columns and dtypes, kept rows in file order, RangeIndex."""
    columns: dict[str, NDArray[Any]] = {
        "user_id": checked.users,
        "movie_id": checked.movies,
        "rating": checked.ratings.astype(np.float32),
        "timestamp": checked.stamps,
    }
    return pd.DataFrame({name: values if keep is None else values[keep] for name, values in columns.items()})
