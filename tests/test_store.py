"""movierec.store on SQLite and (when configured) PostgreSQL: migrations, upserts, pages, forget, concurrency."""

from __future__ import annotations

import itertools
import random
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect
from store_helpers import BACKENDS, database_url

from movierec.errors import InvalidRequestError
from movierec.store import RatingStore, head_revision, upgrade_to_head


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_url(request.param, tmp_path) as value:
        yield value


@pytest.fixture
def store(url: str) -> Iterator[RatingStore]:
    upgrade_to_head(url)
    store = RatingStore(url)
    yield store
    store.close()


def test_migrations_create_the_tables_and_are_idempotent(url: str) -> None:
    assert upgrade_to_head(url) == head_revision()
    assert upgrade_to_head(url) == head_revision()  # a second start-up changes nothing
    store = RatingStore(url)
    try:
        tables = set(inspect(store.engine).get_table_names())
        assert {"ratings", "removed_ratings", "user_state", "added_movies", "alembic_version"} <= tables
        assert store.ping() == head_revision()
    finally:
        store.close()


def test_put_replaces_and_pages_come_newest_first(store: RatingStore) -> None:
    for movie in range(1, 8):
        store.put_rating(5, movie, 3.0)
    store.put_rating(5, 2, 4.5)  # replaced: moves to the top, still one row
    store.put_rating(6, 1, 1.0)  # another user's rating never shows up
    seen, cursor = [], None
    while True:
        page = store.list_ratings(5, 3, cursor)
        seen += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [r.movie_id for r in seen] == [2, 7, 6, 5, 4, 3, 1]
    assert seen[0].rating == 4.5
    assert all(a.updated_at >= b.updated_at for a, b in itertools.pairwise(seen))
    assert store.user_state(5).version == 8
    assert store.count_ratings() == 8
    with pytest.raises(InvalidRequestError):
        store.list_ratings(5, 3, "not-a-cursor")


def test_delete_and_forget_record_what_training_must_leave_out(store: RatingStore) -> None:
    store.put_rating(9, 10, 4.0)
    store.put_rating(9, 11, 2.0)
    assert store.delete_rating(9, 10) is True
    assert store.delete_rating(9, 12) is False  # a training-only pair: nothing stored, still recorded
    history = store.user_history(9)
    assert history is not None
    assert [r.movie_id for r in history.ratings] == [11]
    assert sorted(m for m, _ in history.removed) == [10, 12]
    store.put_rating(9, 10, 5.0)  # rated again: no longer removed
    assert sorted(m for m, _ in store.user_history(9).removed) == [12]
    assert store.removed_pairs() == {(9, 12)}
    assert store.forget_user(9) == 2
    history = store.user_history(9)
    assert history.ratings == [] and history.removed == [] and history.forgotten_at is not None
    assert set(store.forgotten_users()) == {9}
    assert store.user_history(12345) is None and store.user_state(12345) is None


def test_64_concurrent_writers_leave_exactly_the_right_rows(store: RatingStore) -> None:
    """4,000 upserts over 600 repeated pairs from 64 threads: one row per pair, its value, exact versions."""
    rng = random.Random(0)
    pairs = [(u, m) for u in range(1, 31) for m in range(1, 21)]
    writes = [rng.choice(pairs) for _ in range(4_000)]

    def value(user: int, movie: int) -> float:
        return 0.5 + ((user * 7 + movie) % 10) * 0.5

    errors: list[BaseException] = []

    def writer(chunk: list[tuple[int, int]]) -> None:
        try:
            for user, movie in chunk:
                store.put_rating(user, movie, value(user, movie))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(writes[i::64],)) for i in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    rows = store.all_ratings()
    assert len(rows) == len(set(writes))
    assert {(u, m): r for u, m, r, _ in rows} == {(u, m): value(u, m) for u, m in set(writes)}
    # Every write bumped its user's version exactly once: no lost increments under contention.
    per_user = Counter(u for u, _ in writes)
    assert {u: store.user_state(u).version for u in per_user} == dict(per_user)


def test_import_db_loads_a_movielens_directory_and_respects_deletions(url: str, tiny_ratings) -> None:
    from training.__main__ import main
    from training.import_db import import_directory

    data = tiny_ratings.ratings_path.parent
    frame = tiny_ratings.ratings
    upgrade_to_head(url)
    store = RatingStore(url)
    try:
        first = frame.iloc[0]
        removed_pair = (int(first.user_id), int(first.movie_id))
        store.delete_rating(*removed_pair)
        forgotten = int(frame.user_id.iloc[-1])
        store.forget_user(forgotten)
        n_forgotten = int((frame.user_id == forgotten).sum())
        report = import_directory(data, url)
        assert report.imported == len(frame) - 1 - n_forgotten
        assert (report.skipped_removed, report.skipped_forgotten) == (1, n_forgotten)
        assert main(["import-db", "--data", str(data), "--database", url]) == 0  # again: same rows
        rows = store.all_ratings()
        assert len(rows) == report.imported
        assert removed_pair not in {(u, m) for u, m, _, _ in rows}
        assert forgotten not in {u for u, _, _, _ in rows}
        # Imported users keep their trained vectors: no version rows beyond the two API writes above.
        assert set(store.user_states(sorted(set(frame.user_id.tolist())))) == {removed_pair[0], forgotten}
    finally:
        store.close()
