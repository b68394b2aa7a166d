"""Which MovieLens layout a ratings source is in, and the file names and rating scale of each layout."""

from __future__ import annotations

from pathlib import Path

from movierec.errors import UnknownLayoutError

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
