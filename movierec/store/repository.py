"""What the service and the trainer do with stored ratings.

Writes are upserts (`INSERT ... ON CONFLICT DO UPDATE` through the dialect's insert construct), so concurrent
writers of the same pair never lose or duplicate a row, and each write bumps the user's version in
`user_state`: the cheap single-row read other processes compare their cached user vectors with. They run in
one writer thread that commits the writes arriving together in one transaction (movierec/store/group_commit.py)
and acknowledges each after its commit. Reads are one short transaction per call. Database failures surface as
`StoreUnavailableError` (`StoreBusyError` when a lock outlasted the busy timeout).
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pandas as pd
from sqlalchemy import Connection, Engine, and_, bindparam, delete, func, or_, select, tuple_
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from movierec.data.progress import ROWS, ReadProgress
from movierec.errors import InvalidRequestError
from movierec.movie_features import display_title, join_genres, split_genres
from movierec.store.engine import DEFAULT_BUSY_TIMEOUT_MS, create_store_engine
from movierec.store.errors import StoreBusyError, StoreUnavailableError
from movierec.store.group_commit import GroupCommitter, RatingPut
from movierec.store.migrate import head_revision, upgrade_engine
from movierec.store.schema import AddedMovie, Movie, Rating, RemovedRating, UserState
from movierec.store.versions import UserVersion, VersionMirror

T = TypeVar("T")
# Most ids in one `IN (...)` list (SQLite's default variable limit is far above; PostgreSQL has none to speak of).
_IN_CHUNK = 500
# Rows per statement of a bulk import, and per fetch of a metered ratings read.
_BULK_CHUNK = 5_000
_FRAME_CHUNK = 500_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# Where `transaction` collects the user_state rows its bumps wrote (a key of the connection's `info`).
_BUMPED = "movierec.bumped_versions"

# How long a read on the event loop (`RatingStore.user_state` on SQLite) may wait for a lock (ms): a few
# milliseconds at most, so that a locked file never stalls the loop; past it the request is served from the
# trained model, as when the database is down.
INLINE_READ_BUSY_MS = 5


@dataclass(frozen=True)
class StoredRating:
    movie_id: int
    rating: float
    updated_at: datetime


@dataclass(frozen=True)
class UserStateRow:
    version: int
    forgotten_at: datetime | None


@dataclass(frozen=True)
class UserHistory:
    """What the store says about one user: their ratings, the pairs they removed, and whether they were forgotten.

    `version` was read before the rest, so a cached vector built from this is never newer than its version says.
    """

    version: int
    forgotten_at: datetime | None
    ratings: list[StoredRating]
    removed: list[tuple[int, datetime]]


@dataclass(frozen=True)
class AddedMovieRow:
    """A movie added to the catalogue through the API (`added_movies`)."""

    movie_id: int
    title: str
    genres: list[str]
    year: int | None
    added_at: datetime

    @property
    def display_title(self) -> str:
        """The title as the catalogue (and training) writes it: with its "(year)"."""
        return display_title(self.title, self.year)


@dataclass(frozen=True)
class MovieRating:
    """One rating a movie has received: by whom, how much, when."""

    user_id: int
    rating: float
    updated_at: datetime


@dataclass(frozen=True)
class Page:
    items: list[StoredRating]
    next_cursor: str | None


def utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything here is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Every string of this form names a position (so any cursor a schema allows is served, if only as a page).
CURSOR_PATTERN = r"^[0-9]{1,16}_[0-9]{1,16}$"


def encode_cursor(updated_at: datetime, movie_id: int) -> str:
    """The position after (updated_at, movie_id) in newest-first order; opaque to clients."""
    micros = (utc(updated_at) - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}_{movie_id}"


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The position a cursor stands for; InvalidRequestError for anything not of the cursors' form."""
    if not re.fullmatch(CURSOR_PATTERN, cursor):
        raise InvalidRequestError("cursor is not one this API returned; start again without it")
    micros, movie = cursor.split("_")
    return _EPOCH + timedelta(microseconds=int(micros)), int(movie)


# `_USER_STATE` as plain SQL for the SQLite fast path (`RatingStore._sqlite_user_state`).
_SQLITE_USER_STATE = "SELECT version, forgotten_at FROM user_state WHERE user_id = ?"
# The per-request read, built once: constructing a select costs ~150 µs in SQLAlchemy, running this one ~40.
_USER_STATE = select(UserState.version, UserState.forgotten_at).where(UserState.user_id == bindparam("user"))
_USER_STATES = select(UserState.user_id, UserState.version, UserState.forgotten_at).where(
    UserState.user_id.in_(bindparam("users", expanding=True))
)
# A new movie's newest ratings (index ix_ratings_movie_updated), on every /predict of it: built once.
_MOVIE_RATINGS = (
    select(Rating.user_id, Rating.rating, Rating.updated_at)
    .where(Rating.movie_id == bindparam("movie"))
    .order_by(Rating.updated_at.desc(), Rating.user_id.desc())
    .limit(bindparam("limit"))
)
# Catalogue misses (ids the served model does not know) look here: one primary-key read, built once.
# A rating written again is no longer a removed one (executed for many pairs at once).
_UNREMOVE = delete(RemovedRating).where(
    RemovedRating.user_id == bindparam("user"), RemovedRating.movie_id == bindparam("movie")
)
_ADDED_MOVIES = select(
    AddedMovie.movie_id, AddedMovie.title, AddedMovie.genres, AddedMovie.year, AddedMovie.added_at
).where(AddedMovie.movie_id.in_(bindparam("movies", expanding=True)))


class RatingStore:
    """People's own ratings in a SQL database (SQLite or PostgreSQL)."""

    def __init__(
        self, url: str, *, engine: Engine | None = None, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS
    ) -> None:
        self.url = url
        self.engine = (
            engine if engine is not None else create_store_engine(url, busy_timeout_ms=busy_timeout_ms)
        )
        self.busy_timeout_s = busy_timeout_ms / 1000
        # Every write of this process goes through one writer thread, in arrival order, committed in groups
        # (movierec/store/group_commit.py): SQLite's single write lock then only waits for other processes,
        # and a burst of writes costs one commit instead of one each.
        self._committer = GroupCommitter(self, busy_timeout_s=self.busy_timeout_s)
        self._insert: Callable[..., Any] = (
            postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        )
        self._migrated = False
        self._thread_local = threading.local()
        # PostgreSQL: every user's version held here (`start_version_mirror`), so reads need no round trip.
        self._mirror: VersionMirror | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def start_version_mirror(self, max_users: int) -> None:
        """PostgreSQL: follow `user_state` in this process (movierec/store/versions.py); SQLite: nothing to do."""
        if self.dialect == "postgresql" and self._mirror is None:
            self._mirror = VersionMirror(self._listener_connection, max_users=max_users)
            self._mirror.start()

    @property
    def version_mirror(self) -> VersionMirror | None:
        return self._mirror

    def _listener_connection(self) -> Any:
        """A psycopg connection of the store's database outside its pool (the mirror's, held for LISTEN), once
        the schema, and with it the trigger that announces changes, is in place."""
        self.ensure_migrated()
        with self._translate():
            pooled = self.engine.raw_connection()
        connection = pooled.driver_connection
        pooled.detach()  # the pool forgets it: the mirror holds it and closes it
        return connection

    def close(self) -> None:
        if self._mirror is not None:
            self._mirror.stop()
        self._committer.close()
        held = getattr(self._thread_local, "connection", None)
        if held is not None:
            self._thread_local.connection = None
            with suppress(Exception):
                held.close()
        self.engine.dispose()

    # ---- plumbing ---------------------------------------------------------------------------------------

    @contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except sa_exc.TimeoutError as exc:  # no pooled connection came free within the busy timeout
            raise StoreBusyError(f"the ratings database is busy: {self._reason(exc)}") from exc
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
            if _is_lock_wait(exc):
                raise StoreBusyError(f"the ratings database is busy: {self._reason(exc)}") from exc
            raise StoreUnavailableError(f"the ratings database is unavailable: {self._reason(exc)}") from exc
        except sa_exc.DBAPIError as exc:
            if exc.connection_invalidated:
                raise StoreUnavailableError("the ratings database connection was lost") from exc
            raise

    def _read(self, work: Callable[[Connection], T]) -> T:
        self.ensure_migrated()
        with self._translate(), self.engine.connect() as connection:
            return work(connection)

    def _write(self, work: Callable[[Connection], T], *, user_id: int = -1) -> T:
        """Run `work` in the writer thread's next group transaction and wait for its commit."""
        return self._committer.run(work, user_id=user_id).result()

    @contextmanager
    def transaction(self, deadline: float) -> Iterator[Connection]:
        """One transaction of the writer thread; waits for locks held elsewhere end at `deadline` (monotonic)."""
        self.ensure_migrated()
        left_ms = max(1, int((deadline - time.monotonic()) * 1000))
        committed: list[tuple[int, UserVersion]] = []
        with self._translate(), self.engine.begin() as connection:
            if self.dialect == "sqlite":
                connection.exec_driver_sql(f"PRAGMA busy_timeout = {left_ms}")  # microseconds, no I/O
            else:
                connection.exec_driver_sql(f"SET LOCAL lock_timeout = {left_ms}")
            connection.info[_BUMPED] = committed
            try:
                yield connection
            finally:
                del connection.info[_BUMPED]
        if self._mirror is not None:
            # Committed: this process's next read sees the versions before the writes are acknowledged.
            self._mirror.apply(committed)

    def ensure_migrated(self) -> None:
        """Run the migrations once per process (at start-up, or at the first use after an outage)."""
        if not self._migrated:
            with self._translate():
                upgrade_engine(self.engine)
            self._migrated = True

    def ping(self) -> str:
        """The schema revision of a reachable, migrated database; StoreUnavailableError otherwise."""
        self.ensure_migrated()
        with self._translate(), self.engine.connect() as connection:
            connection.execute(select(1)).scalar_one()
        return head_revision()

    def _bump(self, connection: Connection, user_id: int, *, forgotten_at: datetime | None = None) -> None:
        values: dict[str, Any] = {"user_id": user_id, "version": 1}
        updates: dict[str, Any] = {"version": UserState.version + 1}
        if forgotten_at is not None:
            values["forgotten_at"] = forgotten_at
            updates["forgotten_at"] = forgotten_at
        statement = self._insert(UserState).values(**values)
        self._record_bumps(
            connection,
            connection.execute(
                self._returning_versions(
                    statement.on_conflict_do_update(index_elements=["user_id"], set_=updates)
                )
            ),
        )

    def _returning_versions(self, statement: Any) -> Any:
        """With the version mirror on, a bump returns the rows it wrote (for `transaction` to push at commit)."""
        if self._mirror is None:
            return statement
        return statement.returning(UserState.user_id, UserState.version, UserState.forgotten_at)

    def _record_bumps(self, connection: Connection, result: Any) -> None:
        if self._mirror is not None and _BUMPED in connection.info:
            connection.info[_BUMPED].extend(
                (int(user), UserVersion(int(version), _maybe_utc(forgotten)))
                for user, version, forgotten in result
            )

    # ---- writes -----------------------------------------------------------------------------------------

    def put_rating(self, user_id: int, movie_id: int, rating: float) -> StoredRating:
        """Create or replace one rating (idempotent) and bump the user's version; returns after the commit."""
        return self.put_rating_later(user_id, movie_id, rating).result()

    def put_rating_later(self, user_id: int, movie_id: int, rating: float) -> Future[StoredRating]:
        """`put_rating` without blocking: a future (await it with `asyncio.wrap_future`) resolved at commit."""
        put = RatingPut(user_id, movie_id, rating, datetime.now(UTC))
        return self._committer.put(put, StoredRating(movie_id, rating, put.updated_at))

    def put_ratings(self, connection: Connection, puts: list[RatingPut]) -> None:
        """The rating upserts of one group transaction as three multi-row statements (for the writer thread).

        Users' versions are bumped first, in user order, by the number of their writes: writes of one user
        queue on that row, and every process locks rows in the same order, so none deadlock.
        """
        counts = Counter(put.user_id for put in puts)
        bump = self._insert(UserState)
        self._record_bumps(
            connection,
            connection.execute(
                self._returning_versions(
                    bump.on_conflict_do_update(
                        index_elements=["user_id"],
                        set_={"version": UserState.version + bump.excluded.version},
                    )
                ),
                [{"user_id": user, "version": n} for user, n in sorted(counts.items())],
            ),
        )
        # The last write of a pair wins, as if the writes had committed one by one.
        latest = {(put.user_id, put.movie_id): put for put in puts}
        upsert = self._insert(Rating)
        connection.execute(
            upsert.on_conflict_do_update(
                index_elements=["user_id", "movie_id"],
                set_={"rating": upsert.excluded.rating, "updated_at": upsert.excluded.updated_at},
            ),
            [
                {"user_id": u, "movie_id": m, "rating": put.rating, "updated_at": put.updated_at}
                for (u, m), put in sorted(latest.items())
            ],
        )
        connection.execute(_UNREMOVE, [{"user": u, "movie": m} for u, m in sorted(latest)])

    def delete_rating(self, user_id: int, movie_id: int) -> bool:
        """Remove one rating, also the model's training rating of that pair; True when a stored one existed."""
        now = datetime.now(UTC)

        def work(connection: Connection) -> bool:
            self._bump(connection, user_id)
            deleted = connection.execute(
                delete(Rating).where(Rating.user_id == user_id, Rating.movie_id == movie_id)
            ).rowcount
            statement = self._insert(RemovedRating).values(user_id=user_id, movie_id=movie_id, removed_at=now)
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["user_id", "movie_id"], set_={"removed_at": now}
                )
            )
            return bool(deleted)

        return self._write(work, user_id=user_id)

    def forget_user(self, user_id: int) -> int:
        """Delete everything stored for a user and mark them forgotten (future training drops their history).

        Returns how many stored ratings were deleted.
        """
        now = datetime.now(UTC)

        def work(connection: Connection) -> int:
            self._bump(connection, user_id, forgotten_at=now)
            deleted = connection.execute(delete(Rating).where(Rating.user_id == user_id)).rowcount
            connection.execute(delete(RemovedRating).where(RemovedRating.user_id == user_id))
            return int(deleted)

        return self._write(work, user_id=user_id)

    def put_ratings_bulk(
        self, rows: Iterable[tuple[int, int, float, datetime]], progress: ReadProgress | None = None
    ) -> int:
        """Upsert many (user, movie, rating, updated_at) rows: the MovieLens import.

        Versions are not bumped: imported ratings are what a model trains on, so serving keeps each user's
        trained vector until they write through the API (or a retrain learns from the database). A row only
        replaces an older one: importing a set again never undoes a person's newer rating of the same pair.
        `progress` (movierec/data/progress.py) is told the rows written, one statement of rows at a time.
        """
        pending = rows if isinstance(rows, Sequence) else list(rows)
        if not pending:
            return 0

        def work(connection: Connection) -> int:
            statement = self._insert(Rating)
            upsert = statement.on_conflict_do_update(
                index_elements=["user_id", "movie_id"],
                set_={"rating": statement.excluded.rating, "updated_at": statement.excluded.updated_at},
                where=Rating.updated_at < statement.excluded.updated_at,
            )
            meter = (
                progress(f"writing ratings to {self._shown_url}", len(pending), ROWS) if progress else None
            )
            try:
                for start in range(0, len(pending), _BULK_CHUNK):
                    # One statement's parameters at a time, not a dict per row of the whole set at once.
                    batch = [
                        {"user_id": u, "movie_id": m, "rating": r, "updated_at": t}
                        for u, m, r, t in pending[start : start + _BULK_CHUNK]
                    ]
                    connection.execute(upsert, batch)
                    if meter is not None:
                        meter.update(len(batch))
            finally:
                if meter is not None:
                    meter.close()
            return len(pending)

        return self._write(work)

    @property
    def _shown_url(self) -> str:
        """The database as progress lines name it (password masked)."""
        return self.engine.url.render_as_string(hide_password=True)

    def _reason(self, exc: BaseException) -> str:
        """The driver's first line, without the SQL statement SQLAlchemy appends and without the server's
        host, port, user or password: these messages reach the service's log, which must not name them."""
        reason = _first_line(exc)
        url = self.engine.url
        for secret, shown in ((url.password, "***"), (url.host, "<host>"), (url.username, "<user>")):
            if secret and len(str(secret)) > 1:
                reason = reason.replace(str(secret), shown)
        if url.port:
            reason = reason.replace(f"port {url.port}", "port <port>")
        return reason

    def put_movies_bulk(self, rows: Iterable[tuple[int, str, str]]) -> int:
        """Upsert the imported catalogue: (movie_id, title, genres) rows, titles and genres cut to 500 chars."""
        batch = [{"movie_id": m, "title": t[:500], "genres": g[:500]} for m, t, g in rows]
        if not batch:
            return 0

        def work(connection: Connection) -> int:
            statement = self._insert(Movie)
            upsert = statement.on_conflict_do_update(
                index_elements=["movie_id"],
                set_={"title": statement.excluded.title, "genres": statement.excluded.genres},
            )
            for start in range(0, len(batch), 5_000):
                connection.execute(upsert, batch[start : start + 5_000])
            return len(batch)

        return self._write(work)

    def put_movie(self, movie_id: int, title: str, genres: Sequence[str], year: int | None) -> AddedMovieRow:
        """Add a movie to the catalogue, or replace its title, genres and year (idempotent; `added_at` stays
        the first write's). Training from the database picks it up (`catalogue_movies`)."""
        now = datetime.now(UTC)

        def work(connection: Connection) -> AddedMovieRow:
            statement = self._insert(AddedMovie).values(
                movie_id=movie_id, title=title, genres=join_genres(genres), year=year, added_at=now
            )
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["movie_id"],
                    set_={
                        "title": statement.excluded.title,
                        "genres": statement.excluded.genres,
                        "year": statement.excluded.year,
                    },
                )
            )
            return _added_row(connection.execute(_ADDED_MOVIES, {"movies": [movie_id]}).one())

        return self._write(work)

    # ---- reads ------------------------------------------------------------------------------------------

    def added_movie(self, movie_id: int) -> AddedMovieRow | None:
        """A movie added through the API, None when there is none of that id (one primary-key read)."""

        def work(connection: Connection) -> AddedMovieRow | None:
            row = connection.execute(_ADDED_MOVIES, {"movies": [movie_id]}).first()
            return None if row is None else _added_row(row)

        return self._read(work)

    def added_movies(self, movie_ids: Sequence[int]) -> dict[int, AddedMovieRow]:
        """`added_movie` of many ids (a /predict batch's catalogue misses), in chunks of ids."""

        def work(connection: Connection) -> dict[int, AddedMovieRow]:
            found: dict[int, AddedMovieRow] = {}
            for start in range(0, len(movie_ids), _IN_CHUNK):
                chunk = list(movie_ids[start : start + _IN_CHUNK])
                for row in connection.execute(_ADDED_MOVIES, {"movies": chunk}):
                    found[int(row[0])] = _added_row(row)
            return found

        return self._read(work) if movie_ids else {}

    def movie_ratings(self, movie_id: int, limit: int) -> list[MovieRating]:
        """The newest `limit` ratings a movie has received (imported or stored; removed and forgotten ones are
        gone from the table), newest first."""

        def work(connection: Connection) -> list[MovieRating]:
            rows = connection.execute(_MOVIE_RATINGS, {"movie": movie_id, "limit": limit})
            return [MovieRating(int(u), float(r), utc(t)) for u, r, t in rows]

        return self._read(work)

    def movie_rating_summary(self, movie_id: int) -> tuple[int, float | None]:
        """How many ratings a movie has received and their mean (None without any)."""

        def work(connection: Connection) -> tuple[int, float | None]:
            count, mean = connection.execute(
                select(func.count(), func.avg(Rating.rating)).where(Rating.movie_id == movie_id)
            ).one()
            return int(count), None if mean is None else float(mean)

        return self._read(work)

    def user_state(self, user_id: int, *, from_database: bool = False) -> UserStateRow | None:
        """The user's version and forget marker: what every personalised request compares its caches with.

        SQLite: one primary-key read of the file. PostgreSQL: from the version mirror while it follows
        (`start_version_mirror`; another process's write is seen when its announcement arrives), else, or with
        `from_database`, one primary-key read.
        """
        if self.dialect == "sqlite":
            return self._sqlite_user_state(user_id)
        if not from_database:
            mirrored = self.mirrored_user_states([user_id])
            if mirrored is not None:
                return mirrored.get(user_id)

        def work(connection: Connection) -> UserStateRow | None:
            row = connection.execute(_USER_STATE, {"user": user_id}).first()
            return None if row is None else UserStateRow(int(row[0]), _maybe_utc(row[1]))

        return self._read(work)

    def _sqlite_user_state(self, user_id: int) -> UserStateRow | None:
        """`user_state` on SQLite through a DBAPI connection this thread keeps: 4 µs against 34 through a
        pooled SQLAlchemy statement (measured), on every /predict and /recommend. In WAL mode each statement
        of an autocommit connection sees every committed write, so holding it costs no freshness."""
        self.ensure_migrated()
        held = getattr(self._thread_local, "connection", None)
        try:
            if held is None:
                held = self.engine.raw_connection()
                # Only this read uses the held connection, and it may run on the event loop: wait a few ms.
                inline: Any = held.driver_connection
                inline.execute(f"PRAGMA busy_timeout = {INLINE_READ_BUSY_MS}")
                self._thread_local.connection = held
            driver: Any = held.driver_connection  # the sqlite3.Connection
            row = driver.execute(_SQLITE_USER_STATE, (user_id,)).fetchone()
        except Exception as exc:  # sqlite3.Error and pool errors alike: drop the connection, say unavailable
            self._thread_local.connection = None
            if held is not None:
                with suppress(Exception):
                    held.invalidate()
            if _is_lock_wait(exc):
                raise StoreBusyError(f"the ratings database is busy: {self._reason(exc)}") from exc
            raise StoreUnavailableError(f"the ratings database is unavailable: {self._reason(exc)}") from exc
        if row is None:
            return None
        forgotten = None if row[1] is None else utc(datetime.fromisoformat(str(row[1])))
        return UserStateRow(int(row[0]), forgotten)

    def mirrored_user_states(self, user_ids: Sequence[int]) -> dict[int, UserStateRow] | None:
        """`user_states` from the version mirror, with no I/O (safe on the event loop); None while no mirror
        follows (SQLite, or PostgreSQL connecting or reconnecting): then ask the database."""
        mirror = self._mirror
        if mirror is None or not mirror.following:
            return None
        rows = {user: mirror.get(user) for user in user_ids}
        return {u: UserStateRow(r.version, r.forgotten_at) for u, r in rows.items() if r is not None}

    def user_states(self, user_ids: Sequence[int]) -> dict[int, UserStateRow]:
        """`user_state` of many users (a /predict batch), in chunks of ids (or from the version mirror)."""
        mirrored = self.mirrored_user_states(user_ids)
        if mirrored is not None:
            return mirrored

        def work(connection: Connection) -> dict[int, UserStateRow]:
            found: dict[int, UserStateRow] = {}
            for start in range(0, len(user_ids), _IN_CHUNK):
                chunk = list(user_ids[start : start + _IN_CHUNK])
                rows = connection.execute(_USER_STATES, {"users": chunk})
                for user, version, forgotten in rows:
                    found[int(user)] = UserStateRow(int(version), _maybe_utc(forgotten))
            return found

        return self._read(work) if user_ids else {}

    def user_history(self, user_id: int) -> UserHistory | None:
        """Version (read first), ratings and removed pairs of one user; None for a user who never wrote."""

        def work(connection: Connection) -> UserHistory | None:
            state = connection.execute(_USER_STATE, {"user": user_id}).first()
            if state is None:
                return None
            ratings = connection.execute(
                select(Rating.movie_id, Rating.rating, Rating.updated_at)
                .where(Rating.user_id == user_id)
                .order_by(Rating.updated_at.desc(), Rating.movie_id.desc())
            )
            removed = connection.execute(
                select(RemovedRating.movie_id, RemovedRating.removed_at).where(
                    RemovedRating.user_id == user_id
                )
            )
            return UserHistory(
                int(state[0]),
                _maybe_utc(state[1]),
                [StoredRating(int(m), float(r), utc(t)) for m, r, t in ratings],
                [(int(m), utc(t)) for m, t in removed],
            )

        return self._read(work)

    def list_ratings(self, user_id: int, limit: int, cursor: str | None = None) -> Page:
        """One page of a user's stored ratings, newest first, and the cursor of the next page (None at the end)."""
        after = decode_cursor(cursor) if cursor else None

        def work(connection: Connection) -> Page:
            query = select(Rating.movie_id, Rating.rating, Rating.updated_at).where(Rating.user_id == user_id)
            if after is not None:
                when, movie = after
                query = query.where(
                    or_(
                        Rating.updated_at < when,
                        and_(Rating.updated_at == when, Rating.movie_id < movie),
                    )
                )
            rows = connection.execute(
                query.order_by(Rating.updated_at.desc(), Rating.movie_id.desc()).limit(limit + 1)
            ).all()
            items = [StoredRating(int(m), float(r), utc(t)) for m, r, t in rows[:limit]]
            more = len(rows) > limit
            return Page(items, encode_cursor(items[-1].updated_at, items[-1].movie_id) if more else None)

        return self._read(work)

    def count_ratings(self) -> int:
        return self._read(lambda c: int(c.execute(select(func.count()).select_from(Rating)).scalar_one()))

    def all_ratings(self) -> list[tuple[int, int, float, datetime]]:
        """Every stored (user, movie, rating, updated_at): what training merges with a ratings directory."""

        def work(connection: Connection) -> list[tuple[int, int, float, datetime]]:
            rows = connection.execute(
                select(Rating.user_id, Rating.movie_id, Rating.rating, Rating.updated_at).order_by(
                    Rating.user_id, Rating.movie_id
                )
            )
            return [(int(u), int(m), float(r), utc(t)) for u, m, r, t in rows]

        return self._read(work)

    def ratings_frame(self, progress: ReadProgress | None = None) -> pd.DataFrame:
        """Every stored rating as columns (user_id, movie_id, rating, updated_at in UTC), in (user, movie)
        order: the columnar read training from the database uses (no Python object per row).

        With `progress` (movierec/data/progress.py) the rows come in chunks, each reported, against a count
        read first; without it in one fetch, as before.
        """

        def work(connection: Connection) -> pd.DataFrame:
            query = select(Rating.user_id, Rating.movie_id, Rating.rating, Rating.updated_at).order_by(
                Rating.user_id, Rating.movie_id
            )
            if progress is None:
                return pd.read_sql(query, connection)
            total = int(connection.execute(select(func.count()).select_from(Rating)).scalar_one())
            meter = progress(f"reading ratings from {self._shown_url}", total, ROWS)
            try:
                parts = []
                # A server-side cursor where there is one (PostgreSQL): rows arrive as they are counted.
                streamed = connection.execution_options(stream_results=True)
                for part in pd.read_sql(query, streamed, chunksize=_FRAME_CHUNK):
                    parts.append(part)
                    meter.update(len(part))
            finally:
                meter.close()
            return pd.concat(parts, ignore_index=True) if parts else pd.read_sql(query, connection)

        frame = self._read(work)
        frame["updated_at"] = pd.to_datetime(frame["updated_at"], utc=True)
        return frame

    def catalogue_movies(self) -> list[tuple[int, str, str]]:
        """(movie_id, title, genres) of the imported catalogue and of movies added through the API.

        An added movie's year joins its title as MovieLens writes it ("Title (2024)"), where the trainer's
        release-decade features read it; an added movie wins over an imported one of the same id.
        """

        def work(connection: Connection) -> list[tuple[int, str, str]]:
            found = {
                int(m): (str(t), str(g))
                for m, t, g in connection.execute(select(Movie.movie_id, Movie.title, Movie.genres))
            }
            added = connection.execute(
                select(AddedMovie.movie_id, AddedMovie.title, AddedMovie.genres, AddedMovie.year)
            )
            for movie, name, genres, year in added:
                found[int(movie)] = (display_title(str(name), year), str(genres))
            return [(movie, title, genres) for movie, (title, genres) in sorted(found.items())]

        return self._read(work)

    def forgotten_users(self) -> dict[int, datetime]:
        """Users who asked to be forgotten, and when: training drops their history from before that."""

        def work(connection: Connection) -> dict[int, datetime]:
            rows = connection.execute(
                select(UserState.user_id, UserState.forgotten_at).where(UserState.forgotten_at.is_not(None))
            )
            return {int(u): utc(t) for u, t in rows if t is not None}

        return self._read(work)

    def removed_pairs(self) -> set[tuple[int, int]]:
        """(user, movie) pairs people removed: training leaves them out."""
        return self._read(
            lambda c: {
                (int(u), int(m)) for u, m in c.execute(select(RemovedRating.user_id, RemovedRating.movie_id))
            }
        )

    def ratings_exist(self, pairs: Sequence[tuple[int, int]]) -> set[tuple[int, int]]:
        """Which of `pairs` have a stored rating (tests and the importer)."""

        def work(connection: Connection) -> set[tuple[int, int]]:
            found: set[tuple[int, int]] = set()
            for start in range(0, len(pairs), _IN_CHUNK):
                chunk = list(pairs[start : start + _IN_CHUNK])
                rows = connection.execute(
                    select(Rating.user_id, Rating.movie_id).where(
                        tuple_(Rating.user_id, Rating.movie_id).in_(chunk)
                    )
                )
                found.update((int(u), int(m)) for u, m in rows)
            return found

        return self._read(work) if pairs else set()


def _added_row(row: Any) -> AddedMovieRow:
    movie, title, genres, year, added_at = row
    return AddedMovieRow(int(movie), str(title), split_genres(str(genres)), _maybe_int(year), utc(added_at))


def _maybe_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _maybe_utc(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


# SQLSTATEs of PostgreSQL's lock waits given up: lock_not_available (lock_timeout) and deadlock_detected.
_PG_LOCK_STATES = {"55P03", "40P01"}


def _is_lock_wait(exc: BaseException) -> bool:
    """Whether a driver error means "a lock held elsewhere outlasted the busy timeout", not "unreachable"."""
    original = getattr(exc, "orig", None) or exc
    if getattr(original, "sqlstate", None) in _PG_LOCK_STATES:
        return True
    name = getattr(original, "sqlite_errorname", "")  # Python 3.11+: SQLITE_BUSY, SQLITE_LOCKED, ...
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in str(original)


def _first_line(exc: BaseException) -> str:
    """The driver's first line, without the SQL statement SQLAlchemy appends."""
    original = getattr(exc, "orig", None) or exc
    return str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
