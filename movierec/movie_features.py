"""What is known about a movie without its ratings: its genres and release-year bin, defined once.

The trainer's side features (training/side_features.py) and the service's estimate for movies added after
training (movierec/new_movies.py) both read movies through these definitions, so a genre or a year means the
same to both: genres are MovieLens's '|'-separated names ("(no genres listed)" is none), the release year is
the "(1995)" at the end of a title, and years fall into the bins `YEAR_EDGES` cuts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

# Release-year bins: coarse enough that every bin holds many movies.
YEAR_EDGES = (1960, 1975, 1985, 1995, 2000, 2005, 2010)
N_YEAR_BINS = len(YEAR_EDGES) + 1
YEAR_IN_TITLE = r"\((\d{4})\)\s*$"
NO_GENRES = "(no genres listed)"
GENRE_SEPARATOR = "|"

_YEAR_IN_TITLE = re.compile(YEAR_IN_TITLE)


def split_genres(text: str) -> list[str]:
    """The genres of a MovieLens genres field ('' and "(no genres listed)" are none)."""
    if text in ("", NO_GENRES):
        return []
    return [g for g in text.split(GENRE_SEPARATOR) if g and g != NO_GENRES]


def join_genres(genres: Sequence[str]) -> str:
    """The MovieLens genres field of a list of genres (none: "(no genres listed)")."""
    return GENRE_SEPARATOR.join(genres) if genres else NO_GENRES


def title_year(title: str) -> int | None:
    """The release year at the end of a MovieLens title ("Heat (1995)"), None without one."""
    found = _YEAR_IN_TITLE.search(title)
    return None if found is None else int(found.group(1))


def split_title_year(title: str) -> tuple[str, int | None]:
    """A title without the "(1995)" at its end, and that year (the title as is and None without one; a title
    that is nothing but a year stays whole)."""
    found = _YEAR_IN_TITLE.search(title)
    if found is None:
        return title, None
    bare = title[: found.start()].rstrip()
    return (bare or title), int(found.group(1))


def display_title(title: str, year: int | None) -> str:
    """A title as MovieLens writes it, "Title (2024)": `year` joins a title that has no year of its own."""
    if year is None or title_year(title) is not None:
        return title
    return f"{title} ({int(year)})"


def year_one_hot(years: NDArray[np.floating]) -> NDArray[np.float64]:
    """One-hot release-year bins, (n, N_YEAR_BINS); a row of zeros where the year is unknown (NaN)."""
    years = np.asarray(years, dtype=np.float64)
    table = np.zeros((len(years), N_YEAR_BINS))
    known = ~np.isnan(years)
    table[np.flatnonzero(known), np.digitize(years[known], YEAR_EDGES)] = 1.0
    return table


def genre_one_hot(genres: Sequence[Sequence[str]], vocabulary: Sequence[str]) -> NDArray[np.float64]:
    """One-hot genres over `vocabulary`, (n, len(vocabulary)); genres outside it are left out."""
    column = {name: j for j, name in enumerate(vocabulary)}
    table = np.zeros((len(genres), len(vocabulary)))
    for row, names in enumerate(genres):
        for name in names:
            j = column.get(name)
            if j is not None:
                table[row, j] = 1.0
    return table
