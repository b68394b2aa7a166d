"""the imported movie catalogue (titles and genres for training from the database)

Revision ID: 0002_movies
Revises: 0001_ratings
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_movies"
down_revision = "0001_ratings"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "movies",
        sa.Column("movie_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("genres", sa.String(500), nullable=False),
        sa.PrimaryKeyConstraint("movie_id"),
    )


def downgrade() -> None:
    op.drop_table("movies")
