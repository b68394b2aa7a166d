"""IdMap: raw MovieLens ids <-> contiguous embedding indices.

An index never leaves the core: HTTP payloads and artifacts' human-facing files speak raw ids.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

UNKNOWN_INDEX = -1


class IdMap:
    """Bijection between raw ids (int64) and indices 0..n-1.

    Raw ids are kept sorted, so lookup is a vectorised binary search (no Python dict per request)
    and two maps built from the same id set are identical whatever the row order.
    """

    def __init__(self, ids: NDArray[np.int64]) -> None:
        # A private copy: freezing the caller's array (e.g. a DataFrame column's buffer) would be a side effect.
        ids = np.array(ids, dtype=np.int64, copy=True)
        if ids.ndim != 1:
            raise ValueError("IdMap ids must be one-dimensional")
        if ids.size > 1 and not np.all(ids[1:] > ids[:-1]):
            raise ValueError("IdMap ids must be strictly increasing (sorted, unique)")
        self._ids = ids
        self._ids.setflags(write=False)

    @classmethod
    def from_values(cls, values: ArrayLike) -> IdMap:
        """Build a map from every distinct value (e.g. a ratings column)."""
        return cls(np.unique(np.asarray(values, dtype=np.int64)))

    @property
    def ids(self) -> NDArray[np.int64]:
        """Raw ids in index order (read-only)."""
        return self._ids

    def __len__(self) -> int:
        return int(self._ids.size)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and np.array_equal(self._ids, other._ids)

    def __hash__(self) -> int:
        return hash(self._ids.tobytes())

    def index_of(self, raw_ids: ArrayLike) -> NDArray[np.int64]:
        """Indices of raw ids; `UNKNOWN_INDEX` (-1) where an id is not in the map."""
        raw = np.asarray(raw_ids, dtype=np.int64)
        if self._ids.size == 0:
            return np.full(raw.shape, UNKNOWN_INDEX, dtype=np.int64)
        pos = np.searchsorted(self._ids, raw)
        pos_clipped = np.minimum(pos, self._ids.size - 1)
        found = self._ids[pos_clipped] == raw
        return np.where(found, pos_clipped, UNKNOWN_INDEX).astype(np.int64)

    def index(self, raw_id: int) -> int | None:
        """Index of one raw id, or None when unknown (a dict lookup: the per-request path)."""
        return self._lookup.get(int(raw_id))

    @cached_property
    def _lookup(self) -> dict[int, int]:
        # Built on first use: the service looks single ids up per request; the trainer never needs it.
        return dict(zip(self._ids.tolist(), range(self._ids.size), strict=True))

    def id_of(self, indices: ArrayLike) -> NDArray[np.int64]:
        """Raw ids of indices.

        Raises:
            IndexError: an index is negative (e.g. `UNKNOWN_INDEX`, which numpy would wrap to the last id) or
                out of range.
        """
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and int(idx.min()) < 0:
            raise IndexError(f"index {int(idx.min())} is negative: unknown ids have no raw id")
        return self._ids[idx]

    def save(self, path: Path) -> None:
        """Write the raw ids in index order as a `.npy` file."""
        np.save(path, self._ids, allow_pickle=False)

    @classmethod
    def load(cls, path: Path) -> IdMap:
        """Read a map written by `save`."""
        return cls(np.load(path, allow_pickle=False))
