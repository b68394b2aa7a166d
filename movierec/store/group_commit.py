"""Group commit: one writer thread per store commits, in one transaction, the writes that arrived together.

A rating write is three small statements and a commit. Run one transaction per request from many threads and
the commits (an fsync each on SQLite, a WAL flush each on PostgreSQL) and the contention for SQLite's single
write lock dominate: at 16 concurrent writers p99 passed a second. Here callers hand their write to a FIFO
queue and wait on a future; the writer thread takes everything queued (up to `max_batch`), runs it in one
transaction and resolves the futures only after the commit, so every acknowledged write is durable. Rating
upserts of one batch become three multi-row statements (`WriteBatch.put_ratings`); other writes run one by
one in the same transaction. When a batch fails for a reason that is not the database's state (busy or
unreachable), each of its writes is retried in a transaction of its own, so one bad write fails only itself.

Writes are ordered by user inside a batch (stable, so one user's writes keep their order): every process
takes PostgreSQL's row locks in the same order, and two replicas' batches cannot deadlock.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection

from movierec.store.errors import StoreBusyError, StoreUnavailableError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Most writes one transaction takes: large enough that a burst of 64 clients commits once, small enough that
# the first write of a batch never waits long for the last.
DEFAULT_MAX_BATCH = 256
# Most writes waiting at once; past it a write is refused at once (503 database_busy) instead of queueing on.
DEFAULT_MAX_QUEUED = 4096


@dataclass(frozen=True, slots=True)
class RatingPut:
    """One person's rating of one movie, as written (the time is the request's, taken when it arrived)."""

    user_id: int
    movie_id: int
    rating: float
    updated_at: datetime


class WriteBatch(Protocol):
    """What the writer needs from the store: a transaction bounded by a deadline, and the bulk rating upsert."""

    def transaction(self, deadline: float) -> AbstractContextManager[Connection]: ...

    def put_ratings(self, connection: Connection, puts: list[RatingPut]) -> None: ...


@dataclass(slots=True)
class _Write:
    user_key: int  # the user whose rows the write locks (-1: none), the batch's sort key
    deadline: float  # time.monotonic() past which it is refused rather than started
    put: RatingPut | None = None
    work: Callable[[Connection], Any] | None = None
    result: Any = None  # a put's answer, known before it runs
    future: Future[Any] = field(default_factory=Future)


_STOP = object()


class GroupCommitter:
    """A single writer thread, started at the first write, that commits queued writes in groups."""

    def __init__(
        self,
        store: WriteBatch,
        *,
        busy_timeout_s: float,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> None:
        self._store = store
        self._busy_timeout_s = busy_timeout_s
        self._max_batch = max_batch
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queued)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self.batches = 0  # transactions committed, for tests and /metrics-minded readers
        self.writes = 0

    # ---- callers ------------------------------------------------------------------------------------------

    def put(self, put: RatingPut, result: T) -> Future[T]:
        """Queue a rating upsert; once it is committed the future resolves to `result`."""
        return self._submit(_Write(put.user_id, self._deadline(), put=put, result=result))

    def run(
        self, work: Callable[[Connection], Any], *, user_id: int = -1, timeout_s: float | None = None
    ) -> Future[Any]:
        """Queue `work(connection)` to run inside a group transaction; the future holds its result after commit.

        `timeout_s` bounds the wait in the queue (default: the busy timeout); the trainer's bulk imports pass
        their own, longer one.
        """
        return self._submit(_Write(user_id, self._deadline(timeout_s), work=work))

    def close(self) -> None:
        """Stop the writer after what is queued; anything submitted later fails as unavailable."""
        with self._start_lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout=self._busy_timeout_s + 5)

    def _deadline(self, timeout_s: float | None = None) -> float:
        return time.monotonic() + (self._busy_timeout_s if timeout_s is None else timeout_s)

    def _submit(self, write: _Write) -> Future[Any]:
        self._ensure_started()
        try:
            self._queue.put_nowait(write)
        except queue.Full:
            write.future.set_exception(
                StoreBusyError(
                    f"the ratings database is busy: {self._queue.maxsize} writes of this process are queued"
                )
            )
        return write.future

    def _ensure_started(self) -> None:
        with self._start_lock:
            if self._closed:
                raise StoreUnavailableError("the ratings store is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="movierec-group-commit", daemon=True)
                self._thread.start()

    # ---- the writer thread -----------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._commit_batch(batch)
            if stop:
                return

    def _commit_batch(self, batch: list[_Write]) -> None:
        now = time.monotonic()
        live: list[_Write] = []
        for write in batch:
            if not write.future.set_running_or_notify_cancel():
                continue  # its caller gave up before it started
            if write.deadline <= now:
                write.future.set_exception(
                    StoreBusyError(
                        f"the ratings database is busy: this process's writes queued for "
                        f"{self._busy_timeout_s:g} s"
                    )
                )
            else:
                live.append(write)
        if not live:
            return
        live.sort(key=lambda write: write.user_key)  # stable: one user's writes keep their order
        try:
            results = self._transact(live)
        except StoreUnavailableError as exc:  # busy or unreachable: the same for every write of the batch
            for write in live:
                write.future.set_exception(exc)
            return
        except Exception as exc:
            if len(live) == 1:
                live[0].future.set_exception(exc)
                return
            log.info("a group of %d writes failed; retrying each in its own transaction", len(live))
            for write in live:
                try:
                    (result,) = self._transact([write])
                except Exception as exc:
                    write.future.set_exception(exc)
                else:
                    write.future.set_result(result)
            return
        for write, result in zip(live, results, strict=True):
            write.future.set_result(result)

    def _transact(self, writes: list[_Write]) -> list[Any]:
        """Run `writes` in one transaction, consecutive rating puts as one bulk upsert; results after commit."""
        results: list[Any] = []
        with self._store.transaction(min(write.deadline for write in writes)) as connection:
            for group in _runs(writes):
                if group[0].put is not None:
                    self._store.put_ratings(connection, [write.put for write in group if write.put])
                    results.extend(write.result for write in group)
                else:
                    for write in group:
                        assert write.work is not None
                        results.append(write.work(connection))
        self.batches += 1
        self.writes += len(writes)
        return results


def _runs(writes: list[_Write]) -> Iterator[list[_Write]]:
    """Consecutive writes split where they change between rating puts and other work."""
    group: list[_Write] = []
    for write in writes:
        if group and (write.put is None) != (group[0].put is None):
            yield group
            group = []
        group.append(write)
    if group:
        yield group
