"""Group commit (movierec/store/group_commit.py) on SQLite and PostgreSQL: writes that arrive together commit
in one transaction, durable when acknowledged; a bad write fails alone; waits and the queue are bounded; two
replicas writing the same users at once never deadlock or lose a version."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection
from store_helpers import BACKENDS, database_url

from movierec.store import RatingStore, StoreBusyError, upgrade_to_head
from movierec.store.group_commit import GroupCommitter, RatingPut


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_url(request.param, tmp_path) as value:
        upgrade_to_head(value)
        yield value


@pytest.fixture
def store(url: str) -> Iterator[RatingStore]:
    store = RatingStore(url)
    yield store
    store.close()


def _put(user: int, movie: int, rating: float) -> RatingPut:
    return RatingPut(user, movie, rating, datetime.now(UTC))


class Gate:
    """A write that holds the writer thread until released, so that the writes queued behind it form a group."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, _connection: Connection) -> str:
        self.entered.set()
        assert self.release.wait(10)
        return "gate"


def test_writes_that_arrive_together_commit_once_and_are_durable_when_acknowledged(
    store: RatingStore, url: str
) -> None:
    committer = GroupCommitter(store, busy_timeout_s=5)
    gate = Gate()
    held = committer.run(gate)
    assert gate.entered.wait(5)
    puts = [_put(user, movie, 3.0) for user in range(1, 6) for movie in range(1, 11)]
    puts.append(_put(2, 5, 4.5))  # the same pair again: the later write wins, as if committed one by one
    futures = [committer.put(put, put.movie_id) for put in puts]
    assert not any(future.done() for future in futures)  # nothing is acknowledged before its commit
    gate.release.set()
    assert held.result(5) == "gate"
    assert [future.result(5) for future in futures] == [put.movie_id for put in puts]
    assert committer.batches == 2  # the gate's transaction, then all 51 writes in one
    committer.close()

    other = RatingStore(url)  # another connection (another replica) sees every acknowledged write
    try:
        stored = {(u, m): r for u, m, r, _ in other.all_ratings()}
        assert len(stored) == 50 and stored[(2, 5)] == 4.5 and stored[(3, 5)] == 3.0
        assert {u: other.user_state(u).version for u in range(1, 6)} == {1: 10, 2: 11, 3: 10, 4: 10, 5: 10}
    finally:
        other.close()


def test_a_failing_write_fails_only_itself(store: RatingStore) -> None:
    committer = GroupCommitter(store, busy_timeout_s=5)
    gate = Gate()
    committer.run(gate)
    assert gate.entered.wait(5)
    first = committer.put(_put(1, 1, 4.0), "first")

    def broken(_connection: Connection) -> None:
        raise ValueError("this write is broken")

    bad = committer.run(broken, user_id=1)
    last = committer.put(_put(1, 2, 2.0), "last")
    gate.release.set()
    with pytest.raises(ValueError, match="broken"):
        bad.result(5)
    assert (first.result(5), last.result(5)) == ("first", "last")
    committer.close()
    assert {(u, m): r for u, m, r, _ in store.all_ratings()} == {(1, 1): 4.0, (1, 2): 2.0}


def test_writes_queued_past_the_busy_timeout_are_refused_not_run(store: RatingStore) -> None:
    committer = GroupCommitter(store, busy_timeout_s=0.3)
    gate = Gate()
    held = committer.run(gate, timeout_s=10)
    assert gate.entered.wait(5)
    late = committer.put(_put(1, 1, 4.0), None)
    time.sleep(0.5)
    gate.release.set()
    held.result(5)
    with pytest.raises(StoreBusyError, match=r"queued for 0\.3 s"):
        late.result(5)
    committer.close()
    assert store.all_ratings() == []


def test_a_full_queue_refuses_at_once(store: RatingStore) -> None:
    committer = GroupCommitter(store, busy_timeout_s=5, max_queued=2)
    gate = Gate()
    committer.run(gate)
    assert gate.entered.wait(5)
    queued = [committer.put(_put(1, m, 3.0), m) for m in (1, 2)]
    refused = committer.put(_put(1, 3, 3.0), 3)
    assert refused.done()
    with pytest.raises(StoreBusyError, match="2 writes of this process are queued"):
        refused.result(0)
    gate.release.set()
    assert [future.result(5) for future in queued] == [1, 2]
    committer.close()


def test_two_replicas_writing_the_same_users_at_once_lose_nothing(url: str) -> None:
    """Two stores on one database (two replicas), 32 threads each, overlapping users in random order:
    no deadlock, every write stored, every user's version bumped exactly once per write."""
    replicas = [RatingStore(url), RatingStore(url)]
    rng = random.Random(1)
    writes = [(rng.randrange(1, 21), rng.randrange(1, 31)) for _ in range(3_000)]
    errors: list[BaseException] = []

    def writer(replica: RatingStore, chunk: list[tuple[int, int]]) -> None:
        try:
            for user, movie in chunk:
                replica.put_rating(user, movie, 0.5 + (user + movie) % 10 * 0.5)
                if movie % 7 == 0:
                    replica.delete_rating(user, movie)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(replicas[i % 2], writes[i::64])) for i in range(64)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors[:3]
        per_user = Counter(u for u, m in writes) + Counter(u for u, m in writes if m % 7 == 0)
        assert {u: replicas[0].user_state(u).version for u in per_user} == dict(per_user)
        kept = {(u, m) for u, m in writes if m % 7}
        assert {(u, m) for u, m, _, _ in replicas[1].all_ratings()} == kept
    finally:
        for replica in replicas:
            replica.close()
