"""Tables of people's own ratings (SQLAlchemy 2 typed ORM); the migrations in `migrations/` create them.

`ratings` holds what people rated through the API; `removed_ratings` the pairs they deleted (so a rating the
model trained on stays removed too); `user_state` one row per user who ever wrote: a version that every
write bumps (what other processes compare their cached vectors with) and when they asked to be forgotten;
`added_movies` movies added to the catalogue through the API; `movies` the catalogue `python -m training
import-db` loaded with the ratings (what training from the database reads titles and genres from).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of the store's tables."""


class Rating(Base):
    """One person's current rating of one movie; a repeated write replaces it."""

    __tablename__ = "ratings"
    # GET /users/{id}/ratings pages newest first; a new movie's estimate reads its newest ratings (0003).
    __table_args__ = (
        Index("ix_ratings_user_updated", "user_id", "updated_at", "movie_id"),
        Index("ix_ratings_movie_updated", "movie_id", "updated_at"),
    )

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    movie_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    rating: Mapped[float] = mapped_column(Float, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class RemovedRating(Base):
    """A (user, movie) pair the user deleted: it stays out of their vector and of future training."""

    __tablename__ = "removed_ratings"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    movie_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    removed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class UserState(Base):
    """Per-user write counter (cross-process cache freshness) and the forget marker."""

    __tablename__ = "user_state"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    forgotten_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AddedMovie(Base):
    """A movie added to the catalogue after training (`PUT /movies/{id}`); `genres` '|'-separated like MovieLens."""

    __tablename__ = "added_movies"

    movie_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    title: Mapped[str] = mapped_column(String(500), nullable=False)
    genres: Mapped[str] = mapped_column(String(500), nullable=False)
    year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class Movie(Base):
    """A catalogue movie imported with a MovieLens set (title with its "(year)", '|'-separated genres)."""

    __tablename__ = "movies"

    movie_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    title: Mapped[str] = mapped_column(String(500), nullable=False)
    genres: Mapped[str] = mapped_column(String(500), nullable=False)
