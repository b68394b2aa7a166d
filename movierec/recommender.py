"""Recommender: the questions the service answers, on a loaded artifact bundle. No HTTP here.

List policy (decided once, here): with an item ranker in the artifact (`movierec.ranking`, the default), every
list, personalised, folded in or cold start, is ordered by the same rank score: the ranker's propensity for
the user's rated movies (for an unknown user: its prior, the propensity of the average history) times the
probability of liking each movie from the rating model's prediction. Without a ranker, lists are ordered by
predicted rating, and an unknown user gets movies ranked by learned movie bias (damped mean rating for models
without biases) among movies with at least `cold_start_min_ratings` ratings (relaxed so that at least
`COLD_START_POOL` movies qualify). Lists are marked `personalized`, `fold_in` or `cold_start`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from movierec.artifacts import Bundle
from movierec.data import rating_step_of
from movierec.errors import (
    InvalidRequestError,
    UnknownGenreError,
    UnknownMovieError,
    UnknownUserError,
)
from movierec.ranking import HistoryVectors, ItemRanker
from movierec.scoring import Head, build_scorer, top_k_indices

if TYPE_CHECKING:
    from movierec.scoring.device_lists import DeviceListRanker

Strategy = Literal["personalized", "cold_start", "fold_in"]

# Fewest movies the cold-start list draws from, whatever `cold_start_min_ratings` says.
COLD_START_POOL = 200
# The `ranking` of lists ordered by the rating model alone (artifacts without a ranker).
PREDICTED_RATING = "predicted_rating"


@dataclass(frozen=True)
class Predictions:
    """Ratings for (user, movie) pairs with what was known about each pair."""

    ratings: NDArray[np.float32]
    user_known: NDArray[np.bool_]
    movie_known: NDArray[np.bool_]

    @property
    def fallback(self) -> NDArray[np.bool_]:
        return ~(self.user_known & self.movie_known)


@dataclass(frozen=True)
class MovieInfo:
    """One catalogue entry with its learned statistics."""

    movie_id: int
    title: str
    genres: list[str]
    n_ratings: int
    mean_rating: float
    bias: float | None


@dataclass(frozen=True)
class Ranked:
    """A ranked list of movies with one score each (a predicted rating, bias or similarity).

    Top-N lists also carry `rank_scores`, what the list is ordered by, and `ranking`, the name of that order:
    the ranker's (see `movierec.ranking`), or "predicted_rating" for artifacts without one.
    """

    strategy: str
    movie_index: NDArray[np.int64]
    scores: NDArray[np.float32]
    ignored: list[int] = field(default_factory=list)  # input movie ids left out (unknown to the model)
    rank_scores: NDArray[np.float32] | None = None
    ranking: str | None = None


@dataclass(frozen=True)
class ListQuery:
    """One user's top-k list before scoring: their vector and bias, the movies they rated, the options."""

    strategy: str
    user_vec: NDArray[np.float32]
    user_bias: float
    rated: NDArray[Any]
    exclude_rated: bool
    penalty: NDArray[np.float32] | None
    k: int
    # The ranker's vector of `rated` when known before scoring (a trained user's, `HistoryVectors`).
    ranker_vector: NDArray[np.float32] | None = None


# Movies the rating model scores for a ranker-ordered list before checking that no other can enter it
# (`Recommender._rank_by_ranker`): on ml-latest-small about 1 top-10 list in 80 needs the whole catalogue.
_PRUNED_CANDIDATES = 256
_BOUND_SAMPLE_STRIDE = 8


class Recommender:
    """Predictions, top-k, cold start, fold-in, bias ranking and neighbours for one bundle.

    Args:
        bundle: a loaded artifact directory.
        cold_start_min_ratings: minimum rating count of movies in the cold-start list.
        fold_in_l2: L2 strength of the fold-in solve.
        device: where whole-catalogue scoring runs, "cpu" (numpy) or "gpu" (keras.ops; see `app.device`).
    """

    def __init__(
        self,
        bundle: Bundle,
        *,
        cold_start_min_ratings: int = 50,
        fold_in_l2: float = 5.0,
        device: str = "cpu",
    ) -> None:
        self.bundle = bundle
        self.manifest = bundle.manifest
        self.kind = bundle.manifest.model_kind
        arrays = bundle.arrays
        self.scorer = build_scorer(
            bundle.manifest.scorer,
            arrays,
            Head.from_dict(bundle.manifest.head),
            arrays["baseline_user_bias"],
            arrays["baseline_movie_bias"],
            device=device,
        )
        self.fold_in_l2 = fold_in_l2
        ranker_settings = getattr(bundle.manifest, "ranker", None)
        self.ranker = None if ranker_settings is None else ItemRanker.from_arrays(arrays, ranker_settings)
        self.ranking = PREDICTED_RATING if self.ranker is None else f"{self.ranker.name}*p_like"
        self._history_vectors = (
            None
            if self.ranker is None
            else HistoryVectors(self.ranker, len(bundle.user_ids.ids), bundle.user_ratings.movies_of)
        )
        # On a GPU a batch of ranker-ordered lists is computed there end to end (movierec/scoring/device_lists.py).
        self.device_lists: DeviceListRanker | None = None
        if device == "gpu" and self.ranker is not None:
            from movierec.scoring.device_lists import DeviceListRanker

            self.device_lists = DeviceListRanker(self.ranker, self.scorer, self.scorer.head)
        catalogue = bundle.catalogue
        # Python-side views built once so responses never touch pandas per request.
        self.titles: list[str] = catalogue["title"].astype(str).tolist()
        self.genres: list[list[str]] = [
            [] if g in ("", "(no genres listed)") else g.split("|") for g in catalogue["genres"].astype(str)
        ]
        self.n_ratings = catalogue["n_ratings"].to_numpy(np.int64)
        self.mean_rating = catalogue["mean_rating"].to_numpy(np.float32)
        all_genres = sorted({g for gs in self.genres for g in gs})
        self.genre_names = all_genres
        # Which movies each genre holds, one boolean row per genre (lower-cased name -> row), and per genre the
        # scores to add to filter by it alone: 0 for its movies, -inf for the rest (see `candidate_penalty`).
        # Read-only: a one-genre filter hands its row to every request as is.
        self._genre_rows = {g.lower(): row for row, g in enumerate(all_genres)}
        self._genre_members = np.zeros((len(all_genres), len(self.genres)), dtype=np.bool_)
        for movie, movie_genres in enumerate(self.genres):
            for g in movie_genres:
                self._genre_members[self._genre_rows[g.lower()], movie] = True
        self._genre_members.setflags(write=False)
        self.genre_penalties: dict[str, NDArray[np.float32]] = {}
        for g, row in self._genre_rows.items():
            penalty = np.where(self._genre_members[row], np.float32(0), np.float32(-np.inf))
            penalty.setflags(write=False)
            self.genre_penalties[g] = penalty
        # Most-rated first, computed once: bias_ranking used to argsort the whole catalogue per request.
        self._by_popularity = np.argsort(-self.n_ratings, kind="stable")
        self._cold_start_ratings = self.scorer.fallback(
            np.full(self.scorer.n_movies, -1, dtype=np.int64), np.arange(self.scorer.n_movies, dtype=np.int64)
        )
        self._cold_start_order = self._cold_start_scores(cold_start_min_ratings)

    @property
    def run_id(self) -> str:
        return self.manifest.run_id

    # ---- lookups ---------------------------------------------------------------------------------------

    def user_index(self, user_id: int) -> int | None:
        return self.bundle.user_ids.index(user_id)

    def movie_index(self, movie_id: int) -> int:
        idx = self.bundle.movie_ids.index(movie_id)
        if idx is None:
            raise UnknownMovieError(movie_id)
        return idx

    def movie_id(self, index: int) -> int:
        return int(self.bundle.movie_ids.ids[index])

    def movie_info(self, movie_id: int) -> MovieInfo:
        idx = self.movie_index(movie_id)
        return MovieInfo(
            movie_id=movie_id,
            title=self.titles[idx],
            genres=self.genres[idx],
            n_ratings=int(self.n_ratings[idx]),
            mean_rating=float(self.mean_rating[idx]),
            bias=float(self.scorer.movie_bias[idx]) if self.scorer.has_bias else None,
        )

    # ---- predictions ----------------------------------------------------------------------------------

    def predict(
        self, user_ids: NDArray[np.int64], movie_ids: NDArray[np.int64], *, strict: bool = False
    ) -> Predictions:
        """Ratings for raw id pairs; unknown ids get the fallback (or raise with `strict`)."""
        u_idx = self.bundle.user_ids.index_of(user_ids)
        m_idx = self.bundle.movie_ids.index_of(movie_ids)
        user_known, movie_known = u_idx >= 0, m_idx >= 0
        if strict:
            # Name the first pair with an unknown id, so a client can find it in a large batch.
            if not user_known.all():
                first = int(np.flatnonzero(~user_known)[0])
                raise UnknownUserError(int(np.asarray(user_ids)[first]), f"instances[{first}]: ")
            if not movie_known.all():
                first = int(np.flatnonzero(~movie_known)[0])
                raise UnknownMovieError(int(np.asarray(movie_ids)[first]), f"instances[{first}]: ")
        ratings, _ = self.scorer.predict(u_idx, m_idx)
        return Predictions(ratings, user_known, movie_known)

    def predict_one(self, user_id: int, movie_id: int, *, strict: bool = False) -> tuple[float, bool, bool]:
        """(rating, user known, movie known) for one pair: the same numbers as `predict`, with dict lookups."""
        u = self.bundle.user_ids.index(user_id)
        m = self.bundle.movie_ids.index(movie_id)
        if strict and u is None:
            raise UnknownUserError(user_id)
        if strict and m is None:
            raise UnknownMovieError(movie_id)
        u_idx = np.array([-1 if u is None else u], dtype=np.int64)
        m_idx = np.array([-1 if m is None else m], dtype=np.int64)
        if u is not None and m is not None:
            rating = self.scorer.head.apply(self.scorer.raw_pairs(u_idx, m_idx))
        else:
            rating = self.scorer.fallback(u_idx, m_idx)
        return float(rating[0]), u is not None, m is not None

    # ---- top-k ----------------------------------------------------------------------------------------

    def candidate_penalty(self, genres: list[str] | None, min_ratings: int) -> NDArray[np.float32] | None:
        """Scores to add for the filters: 0 for candidates, -inf for the rest (None when there is no filter).

        Genres match any of them, case-insensitively, and a genre named twice counts once, so the cost is
        bounded by the catalogue's genres, never by the request: the distinct genres' membership rows are
        OR-ed into one catalogue-sized mask in place, and the result is at most two more catalogue-sized
        arrays. Adding the result to scores is one vectorised pass; a masked write costs several times that.
        The array returned may be shared between requests (a one-genre filter): callers never write to it.
        """
        keys = self._genre_keys(genres) if genres else []
        if not keys and min_ratings <= 0:
            return None
        if len(keys) == 1 and min_ratings <= 0:
            return self.genre_penalties[keys[0]]  # the common case: the precomputed row as is
        if keys:
            keep = self._genre_members[self._genre_rows[keys[0]]].copy()
            for key in keys[1:]:
                np.logical_or(keep, self._genre_members[self._genre_rows[key]], out=keep)
            if min_ratings > 0:
                np.logical_and(keep, self.n_ratings >= min_ratings, out=keep)
        else:
            keep = self.n_ratings >= min_ratings
        return np.where(keep, np.float32(0), np.float32(-np.inf))

    def _genre_keys(self, genres: list[str]) -> list[str]:
        """The distinct genres of a filter, lower-cased, in first-seen order; UnknownGenreError names the first
        one the catalogue does not have."""
        keys = list(dict.fromkeys(g.lower() for g in genres))
        unknown = [key for key in keys if key not in self._genre_rows]
        if unknown:
            given = next(g for g in genres if g.lower() == unknown[0])
            raise UnknownGenreError(f"unknown genre {given!r}; known genres: {', '.join(self.genre_names)}")
        return keys

    def recommend(
        self,
        user_id: int,
        k: int,
        *,
        exclude_rated: bool = True,
        genres: list[str] | None = None,
        min_ratings: int = 0,
    ) -> Ranked:
        """Top-k for a user id: personalised when known, the cold-start list otherwise."""
        query = self.list_query(
            user_id, k, exclude_rated=exclude_rated, genres=genres, min_ratings=min_ratings
        )
        return query if isinstance(query, Ranked) else self.rank_lists([query])[0]

    def list_query(
        self,
        user_id: int,
        k: int,
        *,
        exclude_rated: bool = True,
        genres: list[str] | None = None,
        min_ratings: int = 0,
    ) -> ListQuery | Ranked:
        """What `recommend` scores for a user id: a `ListQuery` for a known user, or the finished cold-start
        list (precomputed, nothing to score) for an unknown one. Split so that the service can score the
        queries of concurrent requests together (`rank_lists`)."""
        u = self.user_index(user_id)
        if u is None:
            return self._cold_start(self.candidate_penalty(genres, min_ratings), k)
        return self.vector_query(
            self.scorer.user_factors[u],
            float(self.scorer.user_bias[u]),
            self.bundle.user_ratings.movies_of(u),
            k,
            exclude_rated=exclude_rated,
            genres=genres,
            min_ratings=min_ratings,
            ranker_vector=None if self._history_vectors is None else self._history_vectors.get(u),
        )

    def rank_lists(self, queries: Sequence[ListQuery]) -> list[Ranked]:
        """The lists of several users, scored together: one matrix product per model side for all of them,
        which on a large catalogue reads each side's movie matrix once instead of once per user."""
        if self.device_lists is not None:
            return self._rank_on_device(self.device_lists, queries)
        if self.ranker is not None:
            propensity = self.ranker.propensity_block(
                [q.rated for q in queries],
                [not q.exclude_rated for q in queries],
                [q.ranker_vector for q in queries],
            )
            return [self._rank_by_ranker(q, propensity[row]) for row, q in enumerate(queries)]
        raw = self.scorer.raw_catalogue_block(
            np.stack([q.user_vec for q in queries]),
            np.array([q.user_bias for q in queries], dtype=np.float32),
        )
        return [
            self._rank_catalogue(q.strategy, raw[row], q.rated, q.exclude_rated, q.penalty, q.k)
            for row, q in enumerate(queries)
        ]

    def _rank_on_device(self, device: DeviceListRanker, queries: Sequence[ListQuery]) -> list[Ranked]:
        """`rank_lists` on the GPU: the whole catalogue scored there, k results per list back."""
        assert self.ranker is not None
        vectors = np.stack(
            [
                self.ranker.history_vector(q.rated) if q.ranker_vector is None else q.ranker_vector
                for q in queries
            ]
        )
        asks = [(q.user_vec, q.user_bias, q.rated, q.exclude_rated, q.penalty, q.k) for q in queries]
        return [
            Ranked(q.strategy, top, ratings, rank_scores=scores, ranking=self.ranking)
            for q, (top, ratings, scores) in zip(queries, device.rank(asks, vectors), strict=True)
        ]

    def _rank_by_ranker(self, query: ListQuery, propensity: NDArray[np.float32]) -> Ranked:
        """One user's ranker-ordered list, rating only the movies that can still reach its top k.

        A rank score is the propensity (floored) times a probability of liking, so the propensity bounds it.
        The rating model scores the movies whose bound reaches a threshold that about `_PRUNED_CANDIDATES`
        reach (estimated from every 8th bound, as `top_k_indices` does); when the k-th best rank score among
        them reaches the threshold, no movie below it can enter the list, and the list is exactly the one that
        rating the whole catalogue gives, at a fraction of the cost. Otherwise the whole catalogue is rated.
        """
        assert self.ranker is not None
        bounds = self.ranker.rank_score_bounds(propensity.copy())
        if query.penalty is not None:
            bounds += query.penalty
        if query.exclude_rated and len(query.rated):
            bounds[query.rated] = -np.inf
        sample = bounds[::_BOUND_SAMPLE_STRIDE]
        place = sample.size - max(_PRUNED_CANDIDATES, 4 * query.k) // _BOUND_SAMPLE_STRIDE
        if place > 0:
            threshold = np.partition(sample, place)[place]
            if np.isfinite(threshold):
                best = np.flatnonzero(bounds >= threshold)  # index order: ties come out as the full list's
                ratings = self.scorer.vector_ratings(query.user_vec, query.user_bias, best)
                scores = self.ranker.rank_scores_within_bounds(bounds[best], ratings)
                top = top_k_indices(scores, query.k)
                if top.size == query.k and scores[top[-1]] >= threshold:
                    return Ranked(
                        query.strategy, best[top], ratings[top], rank_scores=scores[top], ranking=self.ranking
                    )
        ratings = self.scorer.head.apply(self.scorer.raw_catalogue(query.user_vec, query.user_bias))
        return self._rank(
            query.strategy,
            self.ranker.rank_scores(propensity, ratings),
            query.penalty,
            query.rated if query.exclude_rated else None,
            query.k,
            ratings,
        )

    def recommend_for_ratings(
        self,
        movie_ids: NDArray[np.int64],
        ratings: NDArray[np.floating[Any]],
        k: int,
        *,
        genres: list[str] | None = None,
        min_ratings: int = 0,
    ) -> Ranked:
        """Top-k for an anonymous user described by ratings, folded in against the frozen movie factors.

        Movies unknown to the model cannot inform the fold-in: they are left out and reported in `ignored`.
        """
        query, ignored = self.fold_in_query(movie_ids, ratings, k, genres=genres, min_ratings=min_ratings)
        ranked = query if isinstance(query, Ranked) else self.rank_lists([query])[0]
        return dataclasses.replace(ranked, ignored=ignored)

    def fold_in_query(
        self,
        movie_ids: NDArray[np.int64],
        ratings: NDArray[np.floating[Any]],
        k: int,
        *,
        genres: list[str] | None = None,
        min_ratings: int = 0,
    ) -> tuple[ListQuery | Ranked, list[int]]:
        """What `recommend_for_ratings` scores: the folded-in user's list query (or, when the model knows none
        of the movies, the finished cold-start list), and the rated movie ids the model does not know."""
        m_idx, known_ratings, ignored = self.known_ratings(movie_ids, ratings)
        if not len(m_idx):
            # Nothing the model knows was rated: this person is new to it, so they get the new-user list.
            return self._cold_start(self.candidate_penalty(genres, min_ratings), k), ignored
        vec, bias = self.scorer.fold_in(m_idx, known_ratings, self.fold_in_l2)
        query = self.vector_query(
            vec, bias, m_idx, k, strategy="fold_in", genres=genres, min_ratings=min_ratings
        )
        return query, ignored

    def known_ratings(
        self, movie_ids: NDArray[np.int64], ratings: NDArray[np.floating[Any]]
    ) -> tuple[NDArray[np.int64], NDArray[np.float32], list[int]]:
        """Ratings given by raw movie id as (embedding rows, ratings) of the movies the model knows, plus the
        ids it does not know. A movie rated twice counts once, with its last rating (as a stored rating is
        replaced); a rating off the model's scale raises InvalidRequestError."""
        movie_ids = np.asarray(movie_ids, dtype=np.int64)
        ratings = np.asarray(ratings, dtype=np.float64)
        lo, hi = self.scorer.head.min_rating, self.scorer.head.max_rating
        bad = ~np.isfinite(ratings) | (ratings < lo) | (ratings > hi)
        if bad.any():
            raise InvalidRequestError(
                f"rating {float(ratings[bad][0])} is outside the rating scale [{lo}, {hi}]"
            )
        # The last occurrence of each movie: unique over the reversed list keeps first-in-reverse.
        _, last_from_end = np.unique(movie_ids[::-1], return_index=True)
        last = np.sort(len(movie_ids) - 1 - last_from_end)
        movie_ids, ratings = movie_ids[last], ratings[last]
        m_idx = self.bundle.movie_ids.index_of(movie_ids)
        known = m_idx >= 0
        unknown: list[int] = movie_ids[~known].tolist()
        return m_idx[known].astype(np.int64), ratings[known].astype(np.float32), unknown

    def _cold_start(self, penalty: NDArray[np.float32] | None, k: int) -> Ranked:
        """The list for someone the model knows nothing about (see `_cold_start_scores`)."""
        return self._rank(
            "cold_start", self._cold_start_order.copy(), penalty, None, k, self._cold_start_ratings
        )

    def vector_query(
        self,
        vector: NDArray[np.float32] | None,
        bias: float,
        rated: NDArray[Any],
        k: int,
        *,
        strategy: str = "personalized",
        exclude_rated: bool = True,
        genres: list[str] | None = None,
        min_ratings: int = 0,
        ranker_vector: NDArray[np.float32] | None = None,
    ) -> ListQuery | Ranked:
        """The list query of a user given by a vector and bias (trained, re-solved from stored ratings, or
        folded in) and the movies they rated. `vector` None stands for a user with no ratings left (forgotten,
        or every rating removed): the finished cold-start list, like an unknown user."""
        penalty = self.candidate_penalty(genres, min_ratings)
        if vector is None:
            return self._cold_start(penalty, k)
        return ListQuery(strategy, vector, bias, rated, exclude_rated, penalty, k, ranker_vector)

    def predict_with_vector(
        self,
        vector: NDArray[np.float32] | None,
        bias: float,
        movie_ids: NDArray[np.int64],
        *,
        strict: bool = False,
        user_id: int = 0,
    ) -> Predictions:
        """Ratings of one user given by a vector and bias for raw movie ids (unknown movies get the fallback).

        `vector` None stands for a user with no ratings left: every pair gets the unknown-user fallback (or
        `UnknownUserError` for `user_id` with `strict`).
        """
        m_idx = self.bundle.movie_ids.index_of(movie_ids)
        movie_known = m_idx >= 0
        if strict and vector is None:
            raise UnknownUserError(user_id)
        if strict and not movie_known.all():
            raise UnknownMovieError(int(np.asarray(movie_ids)[~movie_known][0]))
        n = len(m_idx)
        if vector is None:
            ratings = self.scorer.fallback(np.full(n, -1, dtype=np.int64), m_idx)
            return Predictions(ratings, np.zeros(n, dtype=np.bool_), movie_known)
        ratings = np.empty(n, dtype=np.float32)
        if movie_known.any():
            ratings[movie_known] = self.scorer.vector_ratings(vector, bias, m_idx[movie_known])
        if not movie_known.all():
            # What the fallback gives a known user with an unknown movie: the head on the user's bias alone.
            missing = int((~movie_known).sum())
            if self.scorer.has_bias:
                ratings[~movie_known] = self.scorer.head.apply(np.full(missing, bias, np.float32))
            else:
                ratings[~movie_known] = self.scorer.fallback(
                    np.full(missing, -1, dtype=np.int64), np.full(missing, -1, dtype=np.int64)
                )
        return Predictions(ratings, np.ones(n, dtype=np.bool_), movie_known)

    @functools.cached_property
    def rating_step(self) -> float | None:
        """The step of the training ratings (1.0 for whole stars, 0.5 for half stars), None when they use neither.

        The trainer records it in the manifest (`data.rating_step`); for an artifact from before that, it is
        derived from the served ratings here, which `app.state.load_model` asks for at load, in its thread.
        """
        if "rating_step" in self.manifest.data:
            step = self.manifest.data["rating_step"]
            return None if step is None else float(step)
        return rating_step_of(self.bundle.user_ratings.ratings)

    def _rank_catalogue(
        self,
        strategy: str,
        raw: NDArray[Any],
        rated: NDArray[Any],
        exclude_rated: bool,
        penalty: NDArray[np.float32] | None,
        k: int,
    ) -> Ranked:
        """A list of an artifact without a ranker, ordered by the rating model's raw catalogue scores (the head
        is monotonic, so that is the predicted-rating order); lists with a ranker: `_rank_by_ranker`."""
        return self._rank(strategy, raw, penalty, rated if exclude_rated else None, k)

    def _rank(
        self,
        strategy: str,
        order: NDArray[Any],
        penalty: NDArray[np.float32] | None,
        exclude: NDArray[Any] | None,
        k: int,
        ratings_lookup: NDArray[np.float32] | None = None,
    ) -> Ranked:
        """The top k of `order` after filters; `ratings_lookup` holds predicted ratings when `order` is not raw.

        `order` is this request's own array (callers pass a fresh one or a copy), so filters write in place.
        """
        scores = np.asarray(order, dtype=np.float32)
        if penalty is not None:
            scores += penalty
        if exclude is not None and len(exclude):
            scores[exclude] = -np.inf
        top = top_k_indices(scores, k)
        ratings = self.scorer.head.apply(scores[top]) if ratings_lookup is None else ratings_lookup[top]
        rank_scores = ratings if self.ranker is None else scores[top]
        return Ranked(strategy, top, ratings, rank_scores=rank_scores, ranking=self.ranking)

    def _cold_start_scores(self, min_ratings: int) -> NDArray[np.float32]:
        """The order of the cold-start list: the ranker's prior (what it ranks for the average history, blended
        like every list), or without a ranker the learned biases among movies with `min_ratings` ratings."""
        if self.ranker is not None:
            return self.ranker.rank_scores(self.ranker.prior, self._cold_start_ratings)
        if self.scorer.has_bias:
            base = self.scorer.movie_bias.astype(np.float32)
        else:
            base = self.scorer.baseline_movie_bias.astype(np.float32)
        # A small catalogue may have few movies that popular: relax the threshold so that at least
        # COLD_START_POOL movies (or all of them) stay eligible and a cold-start list is never short.
        pool = min(COLD_START_POOL, self.n_ratings.size)
        pool_threshold = int(np.sort(self.n_ratings)[-pool]) if pool else 0
        well_rated = self.n_ratings >= min(min_ratings, pool_threshold)
        return np.where(well_rated, base, -np.inf).astype(np.float32)

    # ---- analysis ---------------------------------------------------------------------------------------

    def bias_ranking(self, order: Literal["asc", "desc"], limit: int, most_rated: int) -> Ranked:
        """Movies ranked by learned bias among the `most_rated` most-rated movies (the notebook's analysis)."""
        self.scorer.require_bias(self.kind)
        popular = self._by_popularity[:most_rated]
        bias = self.scorer.movie_bias[popular]
        order_idx = np.argsort(bias if order == "asc" else -bias, kind="stable")[:limit]
        chosen = popular[order_idx]
        return Ranked("bias_ranking", chosen.astype(np.int64), self.scorer.movie_bias[chosen])

    def similar(self, movie_id: int, k: int) -> Ranked:
        """Nearest movies by cosine similarity of learned movie embeddings (the movie itself excluded)."""
        idx = self.movie_index(movie_id)
        sims = self.scorer.similar(idx).astype(np.float32)
        sims[idx] = -np.inf
        top = top_k_indices(sims, k)
        return Ranked("similar", top, sims[top])
