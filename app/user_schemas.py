"""Bodies of the /users endpoints: people's own ratings, their pages, the forget receipt and the export."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class RatingBody(BaseModel):
    """A person's rating of one movie."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"rating": 4.5}]})

    # Strict: a JSON number (an integer is fine), never a numeric string or a boolean.
    rating: float = Field(
        strict=True,
        allow_inf_nan=False,
        description="within the served model's rating scale, in its steps (half stars for MovieLens)",
    )


class StoredRatingOut(BaseModel):
    """One stored rating."""

    movie_id: int = Field(examples=[260])
    rating: float = Field(examples=[4.5])
    updated_at: datetime = Field(
        description="when it was last written (UTC)", examples=["2026-01-01T12:00:00Z"]
    )


class UserRatingOut(StoredRatingOut):
    """A rating as written, with whose it is."""

    user_id: int = Field(examples=[1])


class RatingsPage(BaseModel):
    """One page of a person's stored ratings, newest first."""

    user_id: int
    items: list[StoredRatingOut]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null on the last page", examples=["MTc5NTkx..."]
    )


class ForgetReceipt(BaseModel):
    """What `DELETE /users/{user_id}` did."""

    user_id: int
    deleted_ratings: int = Field(description="stored ratings deleted")
    forgotten: bool = Field(
        True, description="the user's history is left out of every future training run and of their vector"
    )


class RemovedRatingOut(BaseModel):
    movie_id: int
    removed_at: datetime


class ModelRatingOut(BaseModel):
    movie_id: int
    rating: float


class UserExport(BaseModel):
    """Everything stored about a person."""

    user_id: int
    exported_at: datetime
    forgotten_at: datetime | None = Field(description="when they asked to be forgotten, if they did")
    ratings: list[StoredRatingOut] = Field(description="their stored ratings, newest first")
    removed: list[RemovedRatingOut] = Field(
        description="movies whose rating they deleted (also left out of the model's training ratings)"
    )
    model_ratings: list[ModelRatingOut] = Field(
        description="their ratings in the served model's training data (empty once forgotten)"
    )
