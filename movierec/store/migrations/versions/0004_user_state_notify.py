"""PostgreSQL: every change of a user's version is announced on a channel (what each process's mirror follows)

Revision ID: 0004_user_state_notify
Revises: 0003_ratings_by_movie
"""

from __future__ import annotations

from alembic import op

revision = "0004_user_state_notify"
down_revision = "0003_ratings_by_movie"
branch_labels = None
depends_on = None

# A trigger rather than a NOTIFY in the service's own statements: whoever writes `user_state` (any replica, the
# trainer's import, an operator's SQL) is announced, at its commit (NOTIFY is transactional). The payload is
# "user_id version forgotten_epoch" (empty when not forgotten); movierec/store/versions.py reads it.
_FUNCTION = """
CREATE OR REPLACE FUNCTION movierec_user_state_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify(
        'movierec_user_state',
        NEW.user_id::text || ' ' || NEW.version::text || ' '
            || COALESCE(extract(epoch FROM NEW.forgotten_at)::text, '')
    );
    RETURN NEW;
END
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite: each read asks the file (a few µs, inline): nothing to announce
    op.execute(_FUNCTION)
    op.execute(
        "CREATE TRIGGER user_state_notify AFTER INSERT OR UPDATE ON user_state "
        "FOR EACH ROW EXECUTE FUNCTION movierec_user_state_notify()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS user_state_notify ON user_state")
    op.execute("DROP FUNCTION IF EXISTS movierec_user_state_notify()")
