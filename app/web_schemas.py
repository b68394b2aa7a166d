"""Bodies of the endpoints behind the web page: title search, anonymous-session predictions and explanations,
and the training history. Kept apart from app/schemas.py so the page's API can grow without touching the core
endpoints' schemas; the shared pieces (`RatingIn`, `RawId`) are imported, not copied."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from app.schemas import GENRE_FILTER_DESCRIPTION, MAX_GENRE_FILTER, GenreFilter, RatingIn, RawId

# Longest title query; longer ones are not titles (the longest MovieLens title has about 160 characters).
MAX_QUERY_CHARS = 200
# Most reasons listed per explained movie.
MAX_REASONS = 10


class SearchParams(BaseModel):
    """Query parameters of `GET /movies` (validated by app/query.py)."""

    q: str = Field(
        "",
        max_length=MAX_QUERY_CHARS,
        description="title query: titles starting with it come first, then titles in which every query word "
        "starts a word (case- and accent-insensitive; 'the godfather' finds 'Godfather, The'); empty lists "
        "every movie, most-rated first",
    )
    genre: list[GenreFilter] | None = Field(
        None, max_length=MAX_GENRE_FILTER, description=f"repeatable; {GENRE_FILTER_DESCRIPTION}"
    )
    offset: int = Field(0, ge=0, le=2**31 - 1, description="matches to skip (from `next_offset`)")
    limit: int = Field(20, ge=1, description="page size (at most MOVIEREC_MAX_K)")


class CatalogueMovie(BaseModel):
    """A movie of a search page."""

    movie_id: int
    title: str
    genres: list[str]
    year: int | None = Field(description="release year from the title, when it has one")
    n_ratings: int
    mean_rating: float


class SearchResponse(BaseModel):
    """One page of title matches, best first."""

    q: str
    total: int = Field(description="matches in all pages")
    offset: int
    limit: int
    next_offset: int | None = Field(description="the offset of the next page; null on the last page")
    items: list[CatalogueMovie]


class SessionPredictRequest(BaseModel):
    """An anonymous user's ratings and the movies to predict for them."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "ratings": [{"movie_id": 1, "rating": 5}, {"movie_id": 260, "rating": 4.5}],
                    "movie_ids": [2571],
                }
            ]
        },
    )

    ratings: list[RatingIn] = Field(min_length=1, description="at most MOVIEREC_MAX_FOLD_IN_RATINGS")
    movie_ids: list[RawId] = Field(min_length=1, description="movies to predict (at most MOVIEREC_MAX_BATCH)")


class SessionPrediction(BaseModel):
    movie_id: int
    predicted_rating: float = Field(description="within the rating scale")


class SessionPredictResponse(BaseModel):
    """Predictions in request order for the user the ratings describe (folded in, not stored)."""

    predictions: list[SessionPrediction]
    ignored_movie_ids: list[int] = Field(description="rated movies the model does not know (not used)")


class ExplainRequest(BaseModel):
    """An anonymous user's ratings and the movies to explain (typically their recommendations)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "ratings": [{"movie_id": 1, "rating": 5}, {"movie_id": 260, "rating": 4.5}],
                    "movie_ids": [2571, 3114],
                    "n": 2,
                }
            ]
        },
    )

    ratings: list[RatingIn] = Field(min_length=1, description="at most MOVIEREC_MAX_FOLD_IN_RATINGS")
    movie_ids: list[RawId] = Field(min_length=1, description="movies to explain (at most MOVIEREC_MAX_K)")
    n: int = Field(3, ge=1, le=MAX_REASONS, description="most rated movies listed per explained movie")


class Reason(BaseModel):
    """A rated movie close to the explained one in the model's movie embedding."""

    movie_id: int
    title: str
    rating: float = Field(description="the rating the request gave it")
    similarity: float = Field(description="cosine similarity of the two learned movie vectors, in (0, 1]")


class Explanation(BaseModel):
    movie_id: int
    title: str
    because: list[Reason] = Field(description="closest first; empty when no rated movie points the same way")


class ExplainResponse(BaseModel):
    """'Because you rated ...' for each requested movie, in request order."""

    items: list[Explanation]
    ignored_movie_ids: list[int] = Field(description="rated movies the model does not know (not used)")


class TrainingHistory(BaseModel):
    """Per-epoch figures recorded while the served run chose its epochs (the notebook's learning curves)."""

    model_config = ConfigDict(protected_namespaces=())

    run_id: str
    model_kind: str
    history: dict[str, list[float | None]] = Field(
        description="series by name, one value per epoch (e.g. loss, rmse, val_loss, val_rmse); non-finite "
        "values are null; empty for runs that recorded none"
    )
    recorded_on: str = Field(
        description="what the series were recorded on: the epoch-selection fit on the train split with its "
        "validation slice (the served model may be a refit on all ratings)"
    )
    epochs_chosen: int | None = Field(description="the epoch count selection chose (manifest metrics.epochs)")
