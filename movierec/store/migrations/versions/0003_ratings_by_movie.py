"""an index of ratings by movie (the ratings a movie added after training has received)

Revision ID: 0003_ratings_by_movie
Revises: 0002_movies
"""

from __future__ import annotations

from alembic import op

revision = "0003_ratings_by_movie"
down_revision = "0002_movies"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # /predict folds a new movie's newest ratings in (RatingStore.movie_ratings): without this, a scan of every
    # imported rating per request.
    op.create_index("ix_ratings_movie_updated", "ratings", ["movie_id", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_ratings_movie_updated", table_name="ratings")
