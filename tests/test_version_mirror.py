"""PostgreSQL's version mirror (movierec/store/versions.py): every user's version in the process, never stale for
long, never wrong: what a list compares its caches with, without a round trip."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from app.main import create_app
from app.settings import Settings
from movierec.artifacts import load_bundle
from movierec.store import RatingStore
from movierec.store.versions import APPLICATION_NAME, UserVersion, parse_announcement
from tests.store_helpers import database_url

KEY = "mirror-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    with database_url("postgresql", tmp_path) as url:
        yield url


def _wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _following(url: str, max_users: int = 1000) -> RatingStore:
    store = RatingStore(url)
    store.ensure_migrated()
    store.start_version_mirror(max_users)
    mirror = store.version_mirror
    assert mirror is not None
    _wait_for(lambda: mirror.following)
    return store


def test_the_announcement_payload_is_read_back() -> None:
    assert parse_announcement("7 3 ") == (7, UserVersion(3, None))
    user, row = parse_announcement("7 4 1765152000.25")
    assert (user, row.version) == (7, 4) and row.forgotten_at is not None
    assert row.forgotten_at.timestamp() == 1765152000.25


def test_own_writes_are_seen_at_once_and_other_processes_writes_when_announced(url: str) -> None:
    store, other = _following(url), RatingStore(url)
    mirror = store.version_mirror
    assert mirror is not None
    try:
        store.put_rating(1, 10, 4.0)
        # Pushed by the writer before the acknowledgement: no announcement needed for this process's reads.
        assert store.mirrored_user_states([1]) == {1: store.user_state(1, from_database=True)}
        assert store.user_state(1) is not None and store.user_state(1).version == 1  # type: ignore[union-attr]
        assert store.user_state(2) is None  # never wrote: answered by the mirror too

        other.put_rating(2, 10, 3.0)  # another replica
        other.put_rating(1, 11, 5.0)
        _wait_for(lambda: store.mirrored_user_states([1, 2]) == other.user_states([1, 2]))
        other.forget_user(2)
        _wait_for(lambda: store.user_state(2) == other.user_state(2, from_database=True))
        forgotten = store.user_state(2)
        assert forgotten is not None and forgotten.forgotten_at is not None
        assert mirror.announcements >= 3
    finally:
        store.close()
        other.close()


def test_a_lost_listener_connection_reads_from_the_database_then_follows_again(url: str) -> None:
    store, other = _following(url), RatingStore(url)
    mirror = store.version_mirror
    assert mirror is not None
    admin = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        store.put_rating(1, 10, 4.0)
        with psycopg.connect(admin, autocommit=True) as connection:  # the listener's session dies
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND datname = current_database()",
                [APPLICATION_NAME],
            )
        _wait_for(lambda: not mirror.following)
        other.put_rating(3, 10, 2.0)  # while nobody follows: reads go to the database and see it
        assert store.user_state(3) is not None
        _wait_for(lambda: mirror.following)  # reconnected, reloaded
        assert store.mirrored_user_states([1, 3]) == other.user_states([1, 3])
        assert mirror.reconnects >= 1
    finally:
        store.close()
        other.close()


def test_past_its_bound_the_mirror_stops_and_reads_go_to_the_database(url: str) -> None:
    store = _following(url, max_users=2)
    mirror = store.version_mirror
    assert mirror is not None
    try:
        for user in (1, 2, 3):
            store.put_rating(user, 10, 4.0)
        assert not mirror.following and len(mirror) == 0
        assert store.mirrored_user_states([3]) is None
        assert store.user_state(3) is not None and store.user_state(3).version == 1  # type: ignore[union-attr]
        # A process starting on a table already past the bound counts it and never loads it.
        late = RatingStore(url)
        late.start_version_mirror(2)
        late_mirror = late.version_mirror
        assert late_mirror is not None and late_mirror._thread is not None
        late_mirror._thread.join(timeout=10)  # the listener gave up and ended
        assert not late_mirror._thread.is_alive() and not late_mirror.following and len(late_mirror) == 0
        late.close()
    finally:
        store.close()


def test_a_write_through_another_replica_reaches_this_replicas_lists(tiny_bundle_dir: Path, url: str) -> None:
    def replica() -> TestClient:
        return TestClient(
            create_app(Settings(model_dir=tiny_bundle_dir, api_key=KEY, database_url=url, device="cpu"))
        )

    bundle = load_bundle(tiny_bundle_dir)
    user, movie = int(bundle.user_ids.ids[0]), int(bundle.movie_ids.ids[3])
    with replica() as reader, replica() as writer:
        store: RatingStore = reader.app.state.store  # type: ignore[attr-defined]
        mirror = store.version_mirror
        assert mirror is not None
        _wait_for(lambda: mirror.following)
        assert reader.get(f"/recommend/{user}?k=5").json()["user_vector"] == "trained"
        assert (
            writer.put(f"/users/{user}/ratings/{movie}", json={"rating": 5}, headers=AUTH).status_code == 200
        )
        _wait_for(lambda: reader.get(f"/recommend/{user}?k=5").json()["user_vector"] == "fold_in")
        assert reader.get(f"/recommend/{user}?k=5").json() == writer.get(f"/recommend/{user}?k=5").json()
        assert "movierec_version_mirror_users 1.0" in reader.get("/metrics").text
