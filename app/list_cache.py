"""Finished `GET /recommend/{user_id}` answers, kept per process: frontends ask for the same list again and again.

A list is a pure function of the served run, the user's stored-ratings version and the query (k, the filters,
`exclude_rated`): the same three give the same bytes. So the cache is keyed by exactly those, and holds the
serialized response body; a hit costs the version read every personalised request makes anyway (one
primary-key row, app/user_vectors.py) and a dictionary lookup, no scoring and no JSON encoding.

Nothing is invalidated by hand, and nothing stale can be served:
- a write (PUT, DELETE, forget) bumps the user's version in the database, through whichever process: the next
  request reads the new version, misses, and scores afresh;
- a model swap changes the run id; entries of the previous run are dropped at the first request for the new one,
  and late answers of the old run (requests in flight across the swap) are not stored;
- a request whose version could not be read (database down) is served from the model and never stored.
The cache is an LRU bounded in bytes (`MOVIEREC_LIST_CACHE_MB`, 0 turns it off) and reported in /metrics.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

# Bytes an entry costs beyond its body: the key tuple, the OrderedDict node and the bytes object's header.
ENTRY_OVERHEAD_BYTES = 400


@dataclass(frozen=True)
class ListKey:
    """What a list depends on besides the run: the user, their stored-ratings version (-1: none) and the query."""

    user_id: int
    version: int
    k: int
    exclude_rated: bool
    genres: tuple[str, ...] | None  # sorted, de-duplicated: the order of a filter carries no meaning
    min_ratings: int

    @staticmethod
    def of(
        user_id: int, version: int, k: int, exclude_rated: bool, genres: list[str] | None, min_ratings: int
    ) -> ListKey:
        return ListKey(
            user_id,
            version,
            k,
            exclude_rated,
            None if not genres else tuple(sorted(set(genres))),
            min_ratings,
        )


class ListCache:
    """A thread-safe LRU of response bodies for one served run at a time, at most `max_bytes` in all."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._run_id = ""
        self._entries: OrderedDict[ListKey, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        """Bytes held, bodies plus the per-entry overhead: what `max_bytes` bounds."""
        return self._bytes

    def get(self, run_id: str, key: ListKey) -> bytes | None:
        with self._lock:
            if run_id != self._run_id:
                self._clear_for(run_id)  # another run serves now: what the old one answered is of no use
            body = self._entries.get(key)
            if body is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return body

    def put(self, run_id: str, key: ListKey, body: bytes) -> None:
        size = len(body) + ENTRY_OVERHEAD_BYTES
        with self._lock:
            if run_id != self._run_id or size > self.max_bytes:
                return  # an answer of a run no longer served, or one that could never fit
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._bytes -= len(previous) + ENTRY_OVERHEAD_BYTES
            self._entries[key] = body
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= len(evicted) + ENTRY_OVERHEAD_BYTES

    def _clear_for(self, run_id: str) -> None:
        self._run_id = run_id
        self._entries.clear()
        self._bytes = 0
