"""Request and response bodies. Raw MovieLens ids only: embedding indices never appear in JSON."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# JSON-safe integer ids: MovieLens ids are positive; 2^53-1 keeps them exact in every JSON client.
RawId = Annotated[int, Field(ge=1, le=2**53 - 1, strict=True)]


class ErrorResponse(BaseModel):
    """Every error body."""

    detail: str = Field(examples=["unknown movie_id 999999: the model was not trained on this movie"])
    code: str = Field(examples=["unknown_movie"])


class PredictPair(BaseModel):
    """One (user, movie) pair."""

    model_config = ConfigDict(extra="forbid")

    user_id: RawId
    movie_id: RawId


class PredictRequest(BaseModel):
    """One pair (`user_id`, `movie_id`) or a batch (`instances`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"user_id": 1, "movie_id": 31},
                {"instances": [{"user_id": 1, "movie_id": 31}, {"user_id": 2, "movie_id": 10}]},
            ]
        },
    )

    user_id: RawId | None = None
    movie_id: RawId | None = None
    instances: list[PredictPair] | None = Field(None, min_length=1)
    strict: bool = Field(False, description="404 on an unknown id instead of the fallback prediction")

    @model_validator(mode="after")
    def _one_form(self) -> PredictRequest:
        single = self.user_id is not None or self.movie_id is not None
        if single and self.instances is not None:
            raise ValueError("give either user_id and movie_id, or instances, not both")
        if self.instances is None and (self.user_id is None or self.movie_id is None):
            raise ValueError("give both user_id and movie_id, or a non-empty instances list")
        return self


class PredictParams(BaseModel):
    """Query parameters of `POST /predict` (validated by app/query.py)."""

    strict: bool = Field(False, description="404 on an unknown id instead of the fallback prediction")


class Prediction(BaseModel):
    """A predicted rating and what the model knew of the pair."""

    user_id: int
    movie_id: int
    predicted_rating: float = Field(description="within the rating scale")
    user_known: bool
    movie_known: bool
    fallback: bool = Field(description="true when an unknown id made the model use its fallback prediction")


class PredictBatchResponse(BaseModel):
    """Predictions in request order."""

    predictions: list[Prediction]


class RecommendedMovie(BaseModel):
    """One movie of a top-k list."""

    movie_id: int
    title: str
    genres: list[str]
    predicted_rating: float = Field(description="the rating model's prediction for this user and movie")
    rank_score: float = Field(
        description="what the list is ordered by (see `ranking`); predicted ratings need not fall down the list"
    )


class RecommendResponse(BaseModel):
    """A top-k list; `strategy` says whose list it is, `ranking` how it was ordered."""

    user_id: int | None = None
    strategy: Literal["personalized", "cold_start", "fold_in"]
    ranking: str = Field(
        description="'ease_lowrank*p_like': the item ranker's propensity times the probability of liking the "
        "movie from its predicted rating; 'predicted_rating': the rating model alone (artifacts without a ranker)"
    )
    items: list[RecommendedMovie]
    ignored_movie_ids: list[int] = Field(
        default_factory=list, description="fold-in: rated movies the model does not know (not used)"
    )


class RatingIn(BaseModel):
    """A rating of a new or anonymous user."""

    model_config = ConfigDict(extra="forbid")

    movie_id: RawId
    # Strict like the ids: a JSON number only (an integer is fine), never a numeric string or a boolean.
    rating: float = Field(strict=True, allow_inf_nan=False, description="within the model's rating scale")


class FoldInRequest(BaseModel):
    """Ratings of a user the model has not seen, and the list options."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"ratings": [{"movie_id": 1, "rating": 5}, {"movie_id": 260, "rating": 4.5}], "k": 10}
            ]
        },
    )

    ratings: list[RatingIn] = Field(min_length=1)
    k: int = Field(10, ge=1)
    genre: list[str] = Field(default_factory=list, description="only movies of any of these genres")
    min_ratings: int = Field(0, ge=0, description="only movies rated at least this often")


class RecommendParams(BaseModel):
    """Path and query parameters of `GET /recommend/{user_id}` (validated by app/query.py)."""

    user_id: int = Field(ge=1, le=2**53 - 1, examples=[1])
    k: int = Field(10, ge=1, description="list length (at most MOVIEREC_MAX_K)")
    exclude_rated: bool = Field(True, description="leave out movies the user rated in training")
    genre: list[str] | None = Field(None, description="repeatable; movies of any of these genres")
    min_ratings: int = Field(0, ge=0, le=2**31 - 1, description="only movies rated at least this often")


class BiasRankingParams(BaseModel):
    """Query parameters of `GET /movies/bias-ranking` (validated by app/query.py)."""

    order: Literal["asc", "desc"] = "desc"
    limit: int = Field(15, ge=1, description="at most MOVIEREC_MAX_K")
    most_rated: int = Field(2000, ge=1, le=2**31 - 1, description="rank among this many most-rated movies")


class MovieResponse(BaseModel):
    """A catalogue entry with its learned statistics."""

    movie_id: int
    title: str
    genres: list[str]
    n_ratings: int
    mean_rating: float
    bias: float | None = Field(description="learned movie bias (null for models without biases)")


class BiasRankingEntry(BaseModel):
    movie_id: int
    title: str
    bias: float
    n_ratings: int


class BiasRankingResponse(BaseModel):
    """Movies ranked by learned bias among the most-rated (the notebook's analysis)."""

    order: Literal["asc", "desc"]
    most_rated: int
    items: list[BiasRankingEntry]


class SimilarMovie(BaseModel):
    movie_id: int
    title: str
    genres: list[str]
    similarity: float


class SimilarResponse(BaseModel):
    """Nearest movies by cosine similarity of learned movie embeddings."""

    movie_id: int
    items: list[SimilarMovie]


class ModelInfo(BaseModel):
    """The served model: its manifest summary and where it runs."""

    model_config = ConfigDict(protected_namespaces=())

    run_id: str
    model_kind: str
    created_at: str
    schema_version: int
    metrics: dict[str, Any]
    data: dict[str, Any]
    config: dict[str, Any]
    libraries: dict[str, str]
    n_users: int
    n_movies: int
    scorer: str
    evaluated_model: dict[str, Any] = Field(
        description="the model the metrics describe: what it was fitted on and what it was scored on"
    )
    served_model: dict[str, Any] = Field(
        description="the model answering requests: fitted on all ratings (refit) or the train split"
    )
    device: str
    loaded_at: str


class ReloadRequest(BaseModel):
    """Which run to load; default: the one `latest` points at now."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{}, {"run_id": "20261127-192457-bias-b4239649"}]}
    )

    run_id: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", description="a run id, never a path"
    )


class ReloadResponse(BaseModel):
    previous_run_id: str
    run_id: str


class StatusResponse(BaseModel):
    status: str
    run_id: str | None = None
