"""PUT /movies/{movie_id}: add a movie to the catalogue of a live service (new releases), behind the API key.

The movie goes to the ratings database (`added_movies`), where every API process finds it at its next request
for that id and the next training from the database learns it. Until then it is scored from what is known of
it (app/new_movies.py, movierec/new_movies.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Request

from app.dependencies import LoadedDep
from app.errors import ApiError
from app.new_movie_schemas import AddedMovieResponse, NewMovieRequest
from app.routers.ratings import _AUTH_ERRORS, StoreDep, _error, require_api_key
from movierec.errors import InvalidRequestError, UnknownGenreError
from movierec.movie_features import join_genres, split_title_year
from movierec.recommender import Recommender

router = APIRouter(tags=["movies"])

MovieId = Annotated[
    int,
    Path(
        ge=1,
        le=2**53 - 1,
        description="raw id of the new movie (not one the model knows)",
        examples=[9000001],
    ),
]
# The `genres` column's width (movierec/store/schema.py).
_GENRES_CHARS = 500


@router.put(
    # `:int`: only digits match, so that /movies/bias-ranking (GET only) answers PUT with 405, not a 422 here.
    "/movies/{movie_id:int}",
    response_model=AddedMovieResponse,
    dependencies=[Depends(require_api_key)],
    responses={
        **_AUTH_ERRORS,
        409: _error(
            "the served model was trained on this movie: it is not new",
            "movie_in_model",
            "movie_id 10 is in the served model (trained on its ratings): it is not a new movie",
        ),
        405: _error(
            "a movie id that is not a whole number (such a path, /movies/bias-ranking, is GET-only; `Allow`)",
            "method_not_allowed",
            "Method Not Allowed",
        ),
        422: _error(
            "an unknown genre, a year off 1870-2100, or an invalid title or id",
            "unknown_genre",
            "genres[0]: unknown genre 'Western Noir'; known genres: Action, Adventure, ...",
        ),
    },
)
def put_movie(
    request: Request,
    movie_id: MovieId,
    body: Annotated[
        NewMovieRequest,
        Body(
            openapi_examples={
                "new release": {
                    "value": {
                        "title": "Dune: Part Two",
                        "genres": ["Action", "Adventure", "Sci-Fi"],
                        "year": 2024,
                    }
                },
                "year unknown": {"value": {"title": "An Old Reel", "genres": ["Drama"], "year": None}},
            }
        ),
    ],
    loaded: LoadedDep,
    store: StoreDep,
) -> AddedMovieResponse:
    """Add a movie the served model was not trained on, or replace its title, genres and year (idempotent).

    Every API process knows it from its next request: `GET /movies/{movie_id}` answers it with `new: true`,
    `PUT /users/{user_id}/ratings/{movie_id}` accepts ratings of it, and `POST /predict` scores it (marked
    `new_movie`) from its genres, release year and the ratings it has received, folded in on the movie side.
    Lists (`/recommend`), search and similar movies include it only after a retrain
    (`python -m training retrain --database URL`), which trains on it.
    """
    recommender = loaded.recommender
    if recommender.bundle.movie_ids.index(movie_id) is not None:
        raise ApiError(
            409,
            "movie_in_model",
            f"movie_id {movie_id} is in the served model (trained on its ratings): it is not a new movie",
        )
    title = body.title.strip() or body.title  # Python strips a few characters that the schema's `\s` keeps
    title, year = _title_and_year(title, body.year)
    genres = _genres(recommender, body.genres)
    stored = store.put_movie(movie_id, title, genres, year)
    return AddedMovieResponse(
        movie_id=stored.movie_id,
        title=stored.title,
        genres=stored.genres,
        year=stored.year,
        added_at=stored.added_at,
    )


def _title_and_year(title: str, year: int | None) -> tuple[str, int | None]:
    """The title without a MovieLens "(1995)" at its end, and the release year: `year` when given, else that
    one. (Stored apart, they cannot disagree: the catalogue joins them again as "Title (1995)".)"""
    bare, in_title = split_title_year(title)
    if in_title is not None and bare == title:  # a title that is nothing but a year: that is its year
        return title, in_title
    return bare, year if year is not None else in_title


def _genres(recommender: Recommender, genres: list[str]) -> list[str]:
    """The model's spelling of each genre (matched case-insensitively), each once, in the given order."""
    known = {name.lower(): name for name in recommender.genre_names}
    chosen: list[str] = []
    for position, genre in enumerate(genres):
        name = known.get(genre.strip().lower())
        if name is None:
            raise UnknownGenreError(
                f"genres[{position}]: unknown genre {genre!r}; known genres: {', '.join(recommender.genre_names)}"
            )
        if name not in chosen:
            chosen.append(name)
    if len(join_genres(chosen)) > _GENRES_CHARS:
        raise InvalidRequestError(f"genres: more than {_GENRES_CHARS} characters together")
    return chosen
