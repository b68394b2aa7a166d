"""How the store fails: the database unreachable, or busy past the busy timeout (both answer 503)."""

from __future__ import annotations

from movierec.errors import MovieRecError


class StoreUnavailableError(MovieRecError):
    """The database cannot be reached or did not answer in time."""

    code = "database_unavailable"
    # What a 503 asks a client to wait before retrying (s): a server restart takes seconds.
    retry_after_s = 5


class StoreBusyError(StoreUnavailableError):
    """The database answers, but a lock held elsewhere (another writer, a backup, a migration) or a full
    connection pool outlasted the busy timeout: the call gave up instead of waiting on."""

    code = "database_busy"
    retry_after_s = 1
