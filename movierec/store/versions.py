"""PostgreSQL: every user's version held in this process, so that a list needs no round trip to the database.

Each personalised request compares the user's version with what it cached (app/user_vectors.py,
app/list_cache.py). On SQLite that read is a few µs inline; on PostgreSQL it is a network round trip in a worker
thread, which held `/recommend` under a fifth of its SQLite throughput (bench/results/ratings.md). So a listener
thread keeps a mirror of `user_state` instead: it LISTENs on the channel the table's trigger announces every
change on (migration 0004), then loads the table, and applies each announcement as it arrives. A version only
grows, so announcements and loads may arrive in any order: the larger version wins.

What a read sees:
- a write through this process: at once (the writer pushes the committed versions before it acknowledges);
- a write through another process: when its announcement arrives, at its commit plus the notification's
  delivery (a millisecond or less on a local network);
- while the listener is not following (connecting, reconnecting after the database went away, or past
  `max_users`), reads go to the database, exactly as without the mirror.
Memory: one entry per user who ever wrote, at most `max_users`; beyond, the mirror stops and reads go to the
database.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

CHANNEL = "movierec_user_state"
APPLICATION_NAME = "movierec-version-mirror"
# How long the listener waits for announcements before looking at `stop` (s): what a stop may take.
WAIT_S = 0.5
# How often a quiet listener checks that its connection still answers (s), and waits before reconnecting.
HEARTBEAT_S = 5.0
RECONNECT_S = 1.0


@dataclass(frozen=True)
class UserVersion:
    """One `user_state` row as the mirror holds it (see `movierec.store.repository.UserStateRow`)."""

    version: int
    forgotten_at: datetime | None


def parse_announcement(payload: str) -> tuple[int, UserVersion]:
    """The trigger's "user_id version forgotten_epoch" payload (the epoch empty when not forgotten)."""
    user, version, forgotten = payload.split(" ")
    when = None if not forgotten else datetime.fromtimestamp(float(forgotten), UTC)
    return int(user), UserVersion(int(version), when)


class VersionMirror:
    """`user_state` kept in this process by one listener thread (see the module docstring).

    `connect` opens a DBAPI (psycopg 3) connection of the store's database, used for LISTEN and the load.
    """

    def __init__(self, connect: Callable[[], Any], *, max_users: int) -> None:
        self._connect = connect
        self.max_users = max_users
        self._rows: dict[int, UserVersion] = {}
        self._lock = threading.Lock()
        self._following = False
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.announcements = 0
        self.reconnects = 0

    @property
    def following(self) -> bool:
        """True while every committed change reaches the mirror: reads may then be answered from it."""
        return self._following

    def __len__(self) -> int:
        return len(self._rows)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._listen, name="movierec-version-mirror", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._following = False
        if self._thread is not None:
            self._thread.join(timeout=WAIT_S + 1)

    def get(self, user_id: int) -> UserVersion | None:
        """The user's row (None: they never wrote). Only meaningful while `following`."""
        return self._rows.get(user_id)

    def apply(self, rows: Iterable[tuple[int, UserVersion]]) -> None:
        """Take committed rows (a load, announcements, or this process's own writes): the larger version wins."""
        with self._lock:
            if self._stopped.is_set():
                return  # given up or stopped: nothing is held any more (the listener may still be waking)
            for user, row in rows:
                held = self._rows.get(user)
                if held is None or row.version > held.version:
                    self._rows[user] = row
            if len(self._rows) > self.max_users:
                self._give_up(f"more than {self.max_users} users wrote")

    def _give_up(self, why: str) -> None:
        log.warning(
            "version mirror stopped, reading versions from the database: %s (MOVIEREC_VERSION_MIRROR_MAX_USERS)",
            why,
        )
        self._following = False
        self._rows = {}
        self._stopped.set()

    def _listen(self) -> None:
        while not self._stopped.is_set():
            connection = None
            try:
                connection = self._connect()
                connection.autocommit = True
                connection.execute(f"SET application_name = '{APPLICATION_NAME}'")  # for pg_stat_activity
                connection.execute(f"LISTEN {CHANNEL}")
                # Counted first: a table past the bound is never fetched into memory.
                (users,) = connection.execute("SELECT count(*) FROM user_state").fetchone()
                if users > self.max_users:
                    with self._lock:
                        self._give_up(f"{users} users wrote, more than {self.max_users}")
                    return
                # Loaded after LISTEN: a change committed in between is in the load or announced, or both.
                loaded = connection.execute(
                    "SELECT user_id, version, forgotten_at FROM user_state"
                ).fetchall()
                self.apply(
                    (int(u), UserVersion(int(v), None if f is None else f.astimezone(UTC)))
                    for u, v, f in loaded
                )
                if self._stopped.is_set():
                    return
                self._following = True
                log.info("version mirror following %d users' versions", len(self._rows))
                self._follow(connection)
            except Exception as exc:  # the database went away or refused: read from it until we are back
                if self._following or self.reconnects == 0:
                    log.warning("version mirror not following, reading versions from the database: %s", exc)
                self._following = False
                self.reconnects += 1
            finally:
                if connection is not None:
                    with suppress(Exception):
                        connection.close()
            self._stopped.wait(RECONNECT_S)

    def _follow(self, connection: Any) -> None:
        quiet_since = time.monotonic()
        while not self._stopped.is_set():
            # Yields each announcement as it arrives (those received during the load first), for at most
            # WAIT_S; each is applied at once.
            for notification in connection.notifies(timeout=WAIT_S):
                self.apply([parse_announcement(notification.payload)])
                self.announcements += 1
                quiet_since = time.monotonic()
                if self._stopped.is_set():
                    return
            if time.monotonic() - quiet_since > HEARTBEAT_S:
                connection.execute("SELECT 1")  # quiet for a while: is the connection still there?
                quiet_since = time.monotonic()
