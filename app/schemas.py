"""Request and response bodies. Raw MovieLens ids only: embedding indices never appear in JSON."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator


def _whole_number(value: Any) -> Any:
    """JSON Schema's `integer` includes 3.0, so accept a float without a fraction; never a boolean."""
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a boolean")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# A JSON integer (3 or 3.0), never a boolean or a numeric string: no silent coercion of request bodies.
JsonInt = Annotated[int, Field(strict=True), BeforeValidator(_whole_number)]
# JSON-safe integer ids: MovieLens ids are positive; 2^53-1 keeps them exact in every JSON client.
RawId = Annotated[int, Field(ge=1, le=2**53 - 1, strict=True), BeforeValidator(_whole_number)]

# Most genres one list filter (`genre`, in a body or repeated in the query string) may name, as sent: well above
# the 20 genres of MovieLens, so that a client naming every genre once, even in two spellings, fits. Repeats
# (case-insensitive) count once (`Recommender.candidate_penalty`), so the filter's cost is bounded by the
# catalogue's genres whatever the list; the bound keeps the list itself from costing anything.
MAX_GENRE_FILTER = 32
# Longest genre name a request may send (the longest MovieLens genre has 18 characters).
MAX_GENRE_CHARS = 100
GenreFilter = Annotated[str, StringConstraints(max_length=MAX_GENRE_CHARS)]
GENRE_FILTER_DESCRIPTION = (
    f"movies of any of these genres (GET /genres), matched case-insensitively; at most {MAX_GENRE_FILTER} "
    "names, a genre given twice counts once"
)
# Longest run id (`ReloadRequest.run_id`; its pattern says the same).
MAX_RUN_ID_CHARS = 128


class ErrorResponse(BaseModel):
    """Every error body."""

    detail: str = Field(examples=["unknown movie_id 999999: the model was not trained on this movie"])
    code: str = Field(examples=["unknown_movie"])


class PredictPair(BaseModel):
    """One (user, movie) pair."""

    model_config = ConfigDict(extra="forbid")

    user_id: RawId
    movie_id: RawId


def _one_form_schema(schema: dict[str, Any]) -> None:
    """`PredictRequest` in JSON Schema: non-null fields, and exactly one of the two forms."""
    for name in ("user_id", "movie_id", "instances"):
        field = schema["properties"][name]
        branch = next(s for s in field.pop("anyOf") if s.get("type") != "null")
        field.pop("default", None)
        field.update(branch)
    schema["examples"] = [
        {"user_id": 1, "movie_id": 31},
        {"instances": [{"user_id": 1, "movie_id": 31}, {"user_id": 2, "movie_id": 10}]},
    ]
    schema["oneOf"] = [
        {"required": ["user_id", "movie_id"], "not": {"required": ["instances"]}},
        {
            "required": ["instances"],
            "not": {"anyOf": [{"required": ["user_id"]}, {"required": ["movie_id"]}]},
        },
    ]


class PredictRequest(BaseModel):
    """One pair (`user_id`, `movie_id`) or a batch (`instances`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=lambda schema, _cls: _one_form_schema(schema),
    )

    # Optional in Python, never null in JSON: the schema (`_one_form_schema`) says one form or the other, and
    # `_no_nulls` refuses an explicit null rather than reading it as "absent".
    user_id: RawId | None = None
    movie_id: RawId | None = None
    instances: list[PredictPair] | None = Field(None, min_length=1, description="at most MOVIEREC_MAX_BATCH")
    strict: bool = Field(
        False, strict=True, description="404 on an unknown id instead of the fallback prediction"
    )

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = [
                name for name in ("user_id", "movie_id", "instances") if name in data and data[name] is None
            ]
            if nulls:
                raise ValueError(f"{nulls[0]} is null: leave it out instead")
        return data

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
    user_vector: Literal["trained", "fold_in", "none"] = Field(
        "none",
        description="where the user's vector came from: 'trained' (the model), 'fold_in' (re-solved from their "
        "stored ratings, see /users), 'none' (an unknown user: fallback)",
    )
    new_movie: bool = Field(
        False,
        description="true for a movie added after training (PUT /movies/{movie_id}; `movie_known` is false): "
        "scored from its genres, release year and the ratings it has received until a retrain learns it",
    )


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
    ignored_movie_ids: list[int] | None = Field(
        None, description="POST /recommend only: rated movies the model does not know (not used)"
    )
    user_vector: Literal["trained", "fold_in", "none"] = Field(
        "none",
        description="where the user's vector came from: 'trained' (the model), 'fold_in' (re-solved from their "
        "stored ratings, or the ratings of POST /recommend), 'none' (an unknown user: the cold-start list)",
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

    ratings: list[RatingIn] = Field(
        min_length=1,
        description="at most MOVIEREC_MAX_FOLD_IN_RATINGS; a movie given twice counts once, with its last rating; "
        "when the model knows none of the movies, the list is the new-user (cold-start) list",
    )
    k: JsonInt = Field(10, ge=1, description="list length (at most MOVIEREC_MAX_K)")
    genre: list[GenreFilter] = Field(
        default_factory=list, max_length=MAX_GENRE_FILTER, description=f"only {GENRE_FILTER_DESCRIPTION}"
    )
    min_ratings: JsonInt = Field(0, ge=0, le=2**31 - 1, description="only movies rated at least this often")


class RecommendParams(BaseModel):
    """Path and query parameters of `GET /recommend/{user_id}` (validated by app/query.py)."""

    user_id: int = Field(ge=1, le=2**53 - 1, examples=[1])
    k: int = Field(10, ge=1, description="list length (at most MOVIEREC_MAX_K)")
    exclude_rated: bool = Field(True, description="leave out movies the user rated in training")
    genre: list[GenreFilter] | None = Field(
        None, max_length=MAX_GENRE_FILTER, description=f"repeatable; {GENRE_FILTER_DESCRIPTION}"
    )
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
    mean_rating: float | None = Field(description="null only for a new movie no one has rated yet")
    bias: float | None = Field(
        description="learned movie bias (null for models without biases); for a new movie, its estimate"
    )
    new: bool = Field(
        False,
        description="true for a movie added after training (PUT /movies/{movie_id}): `n_ratings` and "
        "`mean_rating` count the ratings it has received since, `bias` is estimated from its genres, release "
        "year and those ratings until a retrain learns it",
    )


class BiasRankingEntry(BaseModel):
    movie_id: int
    title: str
    genres: list[str]
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
    model_watch: ModelWatchInfo | None = Field(
        None, description="the `latest` poller (MOVIEREC_MODEL_POLL_SECONDS); null when polling is off"
    )


class ModelWatchInfo(BaseModel):
    """The version poller of this process: what it follows and what its last check found."""

    interval_s: float
    watching: str = Field(description="the followed link or directory, by name (normally `latest`)")
    last_poll_at: str | None = Field(description="UTC time of the last check; null before the first")
    last_result: Literal["unchanged", "swapped", "refused"] | None = Field(
        description="'refused': the new run failed to load or validate and the old model kept serving"
    )
    last_change_at: str | None = Field(description="UTC time the link was last seen to move")
    last_error: str | None = Field(description="why the last new run was refused; null after a swap")


class ReloadRequest(BaseModel):
    """Which run to load; default: the one `latest` points at now."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{}, {"run_id": "20261127-192457-bias-b4239649"}]}
    )

    run_id: str | None = Field(
        None,
        max_length=MAX_RUN_ID_CHARS,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
        description="a run id, never a path",
    )


class ReloadResponse(BaseModel):
    previous_run_id: str
    run_id: str


class StatusResponse(BaseModel):
    status: str
    run_id: str | None = None
    database: str | None = Field(
        None, description="/ready: 'ok' or 'unavailable' (the ratings database; never makes /ready fail)"
    )
