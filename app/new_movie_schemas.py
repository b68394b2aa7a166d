"""Bodies of `PUT /movies/{movie_id}`: a movie added to the catalogue after training."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from app.schemas import _whole_number

# Limits of the body (stated in the OpenAPI document through the fields below).
MAX_TITLE_CHARS = 500
MAX_GENRES = 20
MIN_YEAR, MAX_YEAR = 1870, 2100

GenreName = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=100)]
# A JSON integer like `app.schemas.JsonInt`, its bounds before the validator so that they reach the schema.
Year = Annotated[int, Field(strict=True, ge=MIN_YEAR, le=MAX_YEAR), BeforeValidator(_whole_number)]


class NewMovieRequest(BaseModel):
    """A movie the served model was not trained on: its title, genres and release year."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"title": "Dune: Part Two", "genres": ["Action", "Adventure", "Sci-Fi"], "year": 2024}
            ]
        },
    )

    title: str = Field(
        strict=True,
        min_length=1,
        max_length=MAX_TITLE_CHARS,
        # Something besides spaces, and no NUL character (PostgreSQL text cannot hold one).
        pattern=r"^[^\x00]*[^\s\x00][^\x00]*$",
        description='the title; a MovieLens-style "(2024)" at its end is taken off it and read as the release '
        "year when `year` is null (`year` wins when given); no NUL characters; leading and trailing spaces are "
        "dropped",
    )
    genres: list[GenreName] = Field(
        max_length=MAX_GENRES,
        description="genres of the served model (GET /genres), matched case-insensitively; an empty list "
        "for none. They choose the movie's prior until it has ratings",
    )
    year: Year | None = Field(None, description="release year; null (or absent) when unknown")


class AddedMovieResponse(BaseModel):
    """A movie as stored in the catalogue's added movies."""

    movie_id: int = Field(examples=[9_000_001])
    title: str = Field(examples=["Dune: Part Two"])
    genres: list[str] = Field(examples=[["Action", "Adventure", "Sci-Fi"]])
    year: int | None = Field(examples=[2024])
    added_at: datetime = Field(description="when it was first added (UTC)")
    new: bool = Field(
        True, description="always true: the served model was not trained on it (a retrain will be)"
    )
