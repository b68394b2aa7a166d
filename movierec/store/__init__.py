"""People's own ratings in a SQL database (SQLAlchemy 2 + Alembic): shared by the service and the trainer.

The default is a SQLite file (`DEFAULT_DATABASE_URL`, relative to the working directory); PostgreSQL through
`postgresql://...` URLs (psycopg 3). Migrations ship inside this package and run programmatically.
"""

from movierec.store.engine import DEFAULT_DATABASE_URL, create_store_engine, normalise_url
from movierec.store.migrate import head_revision, upgrade_to_head
from movierec.store.repository import (
    CURSOR_PATTERN,
    AddedMovieRow,
    MovieRating,
    Page,
    RatingStore,
    StoreBusyError,
    StoredRating,
    StoreUnavailableError,
    UserHistory,
    UserStateRow,
    decode_cursor,
    encode_cursor,
)

__all__ = [
    "CURSOR_PATTERN",
    "DEFAULT_DATABASE_URL",
    "AddedMovieRow",
    "MovieRating",
    "Page",
    "RatingStore",
    "StoreBusyError",
    "StoreUnavailableError",
    "StoredRating",
    "UserHistory",
    "UserStateRow",
    "create_store_engine",
    "decode_cursor",
    "encode_cursor",
    "head_revision",
    "normalise_url",
    "upgrade_to_head",
]
