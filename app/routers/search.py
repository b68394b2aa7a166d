"""`GET /movies`: title search and catalogue browsing, the web page's find-as-you-type."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import Response

from app.dependencies import check_limit, current_model
from app.query import parameters_openapi, parse_params
from app.responses import FastJSONResponse
from app.routing import DirectRoute
from app.schemas import ErrorResponse
from app.web_schemas import SearchParams, SearchResponse
from movierec.search import title_index, title_year

# Its own router: `GET /movies` cannot collide with `/movies/{movie_id}` (another path), and a DirectRoute
# keeps a keystroke's request cheap (app/routing.py).
router = APIRouter(tags=["movies"], route_class=DirectRoute)


@router.get(
    "/movies",
    response_model=SearchResponse,
    responses={422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
    openapi_extra=parameters_openapi(SearchParams),
)
async def search_movies(request: Request) -> Response:
    """Movies whose title starts with `q`, then those in which every word of `q` starts a title word."""
    params = parse_params(request, SearchParams)
    check_limit("limit", params.limit, request.app.state.settings.max_k)
    recommender = current_model(request).recommender
    allowed = None
    if params.genre:
        penalty = recommender.candidate_penalty(params.genre, 0)  # 422 naming an unknown genre
        allowed = None if penalty is None else np.isfinite(penalty)
    page = title_index(recommender).search(
        params.q, allowed=allowed, offset=params.offset, limit=params.limit
    )
    ids = recommender.bundle.movie_ids.ids
    items: list[dict[str, Any]] = [
        {
            "movie_id": int(ids[idx]),
            "title": recommender.titles[idx],
            "genres": recommender.genres[idx],
            "year": title_year(recommender.titles[idx]),
            "n_ratings": int(recommender.n_ratings[idx]),
            "mean_rating": round(float(recommender.mean_rating[idx]), 4),
        }
        for idx in page.movie_index.tolist()
    ]
    end = params.offset + len(items)
    return FastJSONResponse(
        {
            "q": params.q,
            "total": page.total,
            "offset": params.offset,
            "limit": params.limit,
            "next_offset": end if end < page.total else None,
            "items": items,
        }
    )
