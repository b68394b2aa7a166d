"""Catalogue, learned biases and embedding neighbours."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from app.dependencies import LoadedDep, SettingsDep, check_limit, current_model
from app.new_movies import new_movie_entry
from app.query import parameters_openapi, parse_params
from app.responses import FastJSONResponse
from app.routing import DirectRoute
from app.schemas import (
    BiasRankingParams,
    BiasRankingResponse,
    ErrorResponse,
    MovieResponse,
    SimilarMovie,
    SimilarResponse,
)

router = APIRouter(prefix="/movies", tags=["movies"])
# Called per page view by frontends, so served like /recommend (app/routing.py); included before `router`,
# whose /movies/{movie_id} would otherwise match "bias-ranking".
ranking_router = APIRouter(prefix="/movies", tags=["movies"], route_class=DirectRoute)

MovieId = Annotated[int, Path(ge=1, le=2**53 - 1, examples=[1])]


@ranking_router.get(
    "/bias-ranking",
    response_model=BiasRankingResponse,
    responses={409: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
    openapi_extra=parameters_openapi(BiasRankingParams),
)
async def bias_ranking(request: Request) -> Response:
    """Movies ranked by learned bias among the `most_rated` most-rated; 409 for models without biases."""
    params = parse_params(request, BiasRankingParams)
    check_limit("limit", params.limit, request.app.state.settings.max_k)
    recommender = current_model(request).recommender
    ranked = recommender.bias_ranking(params.order, params.limit, params.most_rated)
    ids = recommender.bundle.movie_ids.ids
    items = [
        {
            "movie_id": int(ids[idx]),
            "title": recommender.titles[idx],
            "genres": recommender.genres[idx],
            "bias": round(bias, 4),
            "n_ratings": int(recommender.n_ratings[idx]),
        }
        for idx, bias in zip(ranked.movie_index.tolist(), ranked.scores.tolist(), strict=True)
    ]
    return FastJSONResponse({"order": params.order, "most_rated": params.most_rated, "items": items})


@router.get(
    "/{movie_id}",
    response_model=MovieResponse,
    responses={
        404: {"model": ErrorResponse},
        422: {"model": ErrorResponse},
        503: {
            "model": ErrorResponse,
            "description": "an id the model does not know, with the ratings database (added movies) unreachable",
        },
    },
)
async def movie(request: Request, movie_id: MovieId, loaded: LoadedDep) -> MovieResponse:
    """A catalogue entry with rating count, mean rating and learned bias; `new` for a movie added after training."""
    recommender = loaded.recommender
    if recommender.bundle.movie_ids.index(movie_id) is None:
        # A catalogue miss: a movie added through any API process since training (app/new_movies.py).
        entry = await new_movie_entry(request, recommender, movie_id)
        if entry is not None:
            return MovieResponse(
                movie_id=movie_id,
                title=entry.movie.display_title,
                genres=entry.movie.genres,
                n_ratings=entry.n_ratings,
                mean_rating=None if entry.mean_rating is None else round(entry.mean_rating, 4),
                bias=None if entry.bias is None else round(entry.bias, 4),
                new=True,
            )
    info = recommender.movie_info(movie_id)
    return MovieResponse(
        movie_id=info.movie_id,
        title=info.title,
        genres=info.genres,
        n_ratings=info.n_ratings,
        mean_rating=round(info.mean_rating, 4),  # float32 in the artifact: no 4.487100124359131
        bias=None if info.bias is None else round(info.bias, 4),
        new=False,
    )


@router.get(
    "/{movie_id}/similar",
    response_model=SimilarResponse,
    responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
async def similar(
    movie_id: MovieId,
    loaded: LoadedDep,
    settings: SettingsDep,
    k: Annotated[int, Query(ge=1, description="at most MOVIEREC_MAX_K")] = 10,
) -> SimilarResponse:
    """Nearest movies by cosine similarity of the learned movie embeddings."""
    check_limit("k", k, settings.max_k)
    recommender = loaded.recommender
    ranked = recommender.similar(movie_id, k)
    items = [
        SimilarMovie(
            movie_id=recommender.movie_id(idx),
            title=recommender.titles[idx],
            genres=recommender.genres[idx],
            similarity=round(sim, 4),
        )
        for idx, sim in zip(ranked.movie_index.tolist(), ranked.scores.tolist(), strict=True)
    ]
    return SimilarResponse(movie_id=movie_id, items=items)
