"""Synthetic ratings in the MovieLens csv layout, with planted low-rank structure, for scale tests.

`python -m training synth --out DIR --users N --movies M --ratings R` writes `ratings.csv` and `movies.csv`
exactly as ml-25m lays them out (header `userId,movieId,rating,timestamp`, rows sorted by user then movie,
half-star ratings in [0.5, 5], Unix timestamps; `movieId,title,genres` with '|'-separated genres), plus
`planted.json` describing the planted model.

The planted model is the `bias` model's own form: `rating* = mu + b_u + b_i + p_u . q_i`; an observation is
`rating*` plus Gaussian noise, rounded to a half star and clipped to the scale. `planted.json` reports the
RMSE of the (clipped) noiseless `rating*` against the observed ratings: no model can beat it on average,
so it is the floor that a trained model's held-out RMSE is compared with.

Like real MovieLens data, movie popularity is skewed (Zipf-Mandelbrot weights: the most-rated movie gets
about 0.3% of all ratings at ml-25m size) and so is user activity (lognormal, at least `min_user_ratings`
each). Generation runs in chunks of whole users, vectorised with numpy; memory stays at a few hundred MB
whatever the size, and no (user, movie) pair appears twice.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

# The csv sets' genre vocabulary (ml-25m), without "(no genres listed)".
GENRES = (
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "IMAX",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
MIN_RATING, MAX_RATING = 0.5, 5.0
# ml-25m's timestamp range (1995-01-09 .. 2019-11-21).
_FIRST_TS, _LAST_TS = 789_652_009, 1_574_327_703
# How many times colliding (duplicate) draws are redrawn before the generator gives up on a user's surplus.
_MAX_REDRAWS = 200


@dataclass(frozen=True)
class SynthSpec:
    """What to generate.

    Args:
        n_users, n_movies, n_ratings: sizes (ml-25m: 162,541 users, 59,047 rated movies, 25,000,095 ratings).
        n_factors: width of the planted user and movie factors.
        noise: standard deviation of the Gaussian noise added to the planted ratings (before rounding).
        seed: one seed for everything; the same spec (and chunk size) writes identical files.
        global_mean: planted global mean (ml-25m's is 3.53).
        user_bias_std, movie_bias_std: spread of the planted biases.
        interaction_std: standard deviation of the planted `p_u . q_i` term.
        popularity_exponent, popularity_offset: movie weights `1 / (rank + offset) ** exponent`.
        activity_sigma: lognormal sigma of user activity.
        min_user_ratings: every user rates at least this many movies (ml-25m: 20), capped by the mean.
        chunk_rows: ratings generated and written per chunk (memory bound).
    """

    n_users: int = 10_000
    n_movies: int = 5_000
    n_ratings: int = 1_000_000
    n_factors: int = 16
    noise: float = 0.8
    seed: int = 0
    global_mean: float = 3.5
    user_bias_std: float = 0.4
    movie_bias_std: float = 0.5
    interaction_std: float = 0.5
    popularity_exponent: float = 1.0
    popularity_offset: float = 50.0
    activity_sigma: float = 1.0
    min_user_ratings: int = 20
    chunk_rows: int = 2_000_000

    def __post_init__(self) -> None:
        if min(self.n_users, self.n_movies, self.n_ratings, self.n_factors) < 1:
            raise ValueError("users, movies, ratings and factors must all be positive")
        # Each user may rate at most half the catalogue, which keeps duplicate redraws cheap.
        if self.n_ratings > self.n_users * self.max_user_ratings:
            raise ValueError(
                f"{self.n_ratings:,} ratings do not fit {self.n_users:,} users rating at most "
                f"{self.max_user_ratings:,} of {self.n_movies:,} movies each; add users or movies"
            )
        if self.noise < 0 or self.chunk_rows < 1:
            raise ValueError("noise must be >= 0 and chunk_rows >= 1")

    @property
    def max_user_ratings(self) -> int:
        return max(1, self.n_movies // 2)


@dataclass(frozen=True)
class Planted:
    """The planted model (index space: user u has id u+1, movie i has id i+1)."""

    user_factors: NDArray[np.float32]
    movie_factors: NDArray[np.float32]
    user_bias: NDArray[np.float32]
    movie_bias: NDArray[np.float32]
    global_mean: float

    def ratings(self, user_idx: NDArray[Any], movie_idx: NDArray[Any]) -> NDArray[np.float32]:
        """Noiseless planted ratings of index pairs (not clipped)."""
        dots = np.einsum("ij,ij->i", self.user_factors[user_idx], self.movie_factors[movie_idx])
        return (self.global_mean + self.user_bias[user_idx] + self.movie_bias[movie_idx] + dots).astype(
            np.float32
        )


def plant(spec: SynthSpec, rng: np.random.Generator) -> Planted:
    """Draw the planted biases and factors; factor scale gives `p . q` the spec's standard deviation."""
    # Var(p . q) = k * s^4 for iid N(0, s^2) entries, so s = (std^2 / k) ** 0.25.
    scale = (spec.interaction_std**2 / spec.n_factors) ** 0.25
    return Planted(
        user_factors=rng.normal(0, scale, (spec.n_users, spec.n_factors)).astype(np.float32),
        movie_factors=rng.normal(0, scale, (spec.n_movies, spec.n_factors)).astype(np.float32),
        user_bias=rng.normal(0, spec.user_bias_std, spec.n_users).astype(np.float32),
        movie_bias=rng.normal(0, spec.movie_bias_std, spec.n_movies).astype(np.float32),
        global_mean=spec.global_mean,
    )


def movie_popularity(spec: SynthSpec, rng: np.random.Generator) -> NDArray[np.float64]:
    """Sampling probability of each movie: Zipf-Mandelbrot over a random popularity rank."""
    rank = rng.permutation(spec.n_movies)
    weights = 1.0 / (rank + spec.popularity_offset) ** spec.popularity_exponent
    return weights / weights.sum()


def user_counts(spec: SynthSpec, rng: np.random.Generator) -> NDArray[np.int64]:
    """Ratings per user: a floor plus a lognormal share of the rest, capped, summing to `n_ratings` exactly."""
    floor = min(spec.min_user_ratings, spec.n_ratings // spec.n_users, spec.max_user_ratings)
    counts = np.full(spec.n_users, floor, dtype=np.int64)
    weights = rng.lognormal(0.0, spec.activity_sigma, spec.n_users)
    remaining = spec.n_ratings - int(counts.sum())
    while remaining > 0:  # a few rounds at most: each moves the surplus of capped users to the others
        room = spec.max_user_ratings - counts
        w = np.where(room > 0, weights, 0.0)
        counts += np.minimum(rng.multinomial(remaining, w / w.sum()), room)
        remaining = spec.n_ratings - int(counts.sum())
    return counts


def _draw_movies(
    owner: NDArray[np.int64], n_movies: int, cdf: NDArray[np.float64], rng: np.random.Generator
) -> NDArray[np.int64]:
    """One movie per slot (slot i belongs to user `owner[i]`, owners ascending), no pair twice.

    Draws every slot from the popularity distribution at once, then redraws only the slots whose
    (user, movie) pair repeats an earlier slot, until none does.
    """
    movies = np.minimum(np.searchsorted(cdf, rng.random(owner.size)), n_movies - 1)
    for _ in range(_MAX_REDRAWS):
        keys = owner * n_movies + movies
        _, first = np.unique(keys, return_index=True)
        repeat = np.ones(keys.size, dtype=bool)
        repeat[first] = False
        n_repeat = int(repeat.sum())
        if n_repeat == 0:
            return movies
        movies[repeat] = np.minimum(np.searchsorted(cdf, rng.random(n_repeat)), n_movies - 1)
    raise RuntimeError("could not draw distinct movies per user; lower the ratings per user or the skew")


def _timestamps(
    owner: NDArray[np.int64], starts: NDArray[np.int64], spans: NDArray[np.int64], rng: np.random.Generator
) -> NDArray[np.int64]:
    """Each user rates within their own active window, like real accounts."""
    return starts[owner] + (rng.random(owner.size) * spans[owner]).astype(np.int64)


def _round_half_stars(values: NDArray[np.float32]) -> NDArray[np.float32]:
    return np.clip(np.round(values * 2.0) / 2.0, MIN_RATING, MAX_RATING).astype(np.float32)


def _movies_frame(spec: SynthSpec, planted: Planted, rng: np.random.Generator) -> pd.DataFrame:
    """Titles with a year, and genres tied to the planted factors so that genre filters select real taste."""
    ids = np.arange(1, spec.n_movies + 1)
    years = rng.integers(1920, 2020, spec.n_movies)
    primary = np.argmax(planted.movie_factors, axis=1) % len(GENRES)
    secondary = rng.integers(0, len(GENRES), spec.n_movies)
    names = np.asarray(GENRES, dtype=object)
    with_second = (rng.random(spec.n_movies) < 0.5) & (secondary != primary)
    genres = np.where(with_second, names[primary] + "|" + names[secondary], names[primary])
    titles = [f"Synthetic Movie {i} ({y})" for i, y in zip(ids.tolist(), years.tolist(), strict=True)]
    return pd.DataFrame({"movieId": ids, "title": titles, "genres": genres})


_RATING_TEXT = np.array([f"{i / 2:.1f}" for i in range(11)])  # "4.0", "3.5" like the MovieLens files
RATINGS_HEADER = b"userId,movieId,rating,timestamp\n"


def _write_chunk(
    sink: Any, users: NDArray[Any], movies: NDArray[Any], ratings: NDArray[Any], stamps: NDArray[Any]
) -> None:
    """Append rows to an open binary file: pyarrow's C++ writer when installed (~10x pandas), else pandas."""
    half_stars = np.rint(ratings * 2).astype(np.int8)
    try:
        import pyarrow as pa
        import pyarrow.csv as pa_csv
    except ImportError:
        frame = pd.DataFrame({"u": users, "m": movies, "r": _RATING_TEXT[half_stars], "t": stamps})
        sink.write(frame.to_csv(index=False, header=False).encode())
        return
    text = pa.DictionaryArray.from_arrays(pa.array(half_stars), pa.array(_RATING_TEXT)).cast(pa.string())
    table = pa.table({"userId": users, "movieId": movies, "rating": text, "timestamp": stamps})
    pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False, quoting_style="none"))


def write_synthetic(spec: SynthSpec, out_dir: str | Path) -> str:
    """Generate and write the data set under `out_dir`; returns a short human-readable report."""
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    planted = plant(spec, rng)
    popularity = movie_popularity(spec, rng)
    cdf = np.cumsum(popularity)
    cdf[-1] = 1.0
    counts = user_counts(spec, rng)
    starts = rng.integers(_FIRST_TS, _LAST_TS - 86_400, spec.n_users)
    spans = np.minimum(
        rng.lognormal(np.log(30 * 86_400), 2.0, spec.n_users).astype(np.int64), _LAST_TS - starts
    )
    _movies_frame(spec, planted, rng).to_csv(out / "movies.csv", index=False)

    # Chunk boundaries at whole users, about chunk_rows ratings each.
    ends = np.cumsum(counts)
    cuts = np.unique(
        np.searchsorted(ends, np.arange(spec.chunk_rows, spec.n_ratings, spec.chunk_rows), side="left")
    )
    bounds = sorted({0, spec.n_users, *(int(c) + 1 for c in cuts if c + 1 < spec.n_users)})
    sq_err, n_rows = 0.0, 0
    hist = np.zeros(10, dtype=np.int64)
    movie_counts = np.zeros(spec.n_movies, dtype=np.int64)
    with (out / "ratings.csv").open("wb") as sink:
        sink.write(RATINGS_HEADER)
        for lo, hi in itertools.pairwise(bounds):
            owner = np.repeat(np.arange(lo, hi, dtype=np.int64), counts[lo:hi])
            movies = _draw_movies(owner, spec.n_movies, cdf, rng)
            order = np.argsort(owner * spec.n_movies + movies)  # keys are unique: rows sorted by user, movie
            owner, movies = owner[order], movies[order]
            raw = planted.ratings(owner, movies)
            observed = _round_half_stars(raw + rng.normal(0.0, spec.noise, owner.size).astype(np.float32))
            truth = np.clip(raw, MIN_RATING, MAX_RATING).astype(np.float64)
            sq_err += float(np.square(truth - observed).sum())
            n_rows += owner.size
            hist += np.bincount(np.rint(observed * 2).astype(np.int64) - 1, minlength=10)
            movie_counts += np.bincount(movies, minlength=spec.n_movies)
            _write_chunk(sink, owner + 1, movies + 1, observed, _timestamps(owner, starts, spans, rng))

    floor = float(np.sqrt(sq_err / n_rows))
    rated = movie_counts[movie_counts > 0]
    summary: dict[str, Any] = {
        "spec": asdict(spec),
        "n_ratings": n_rows,
        "n_users": spec.n_users,
        "n_movies_rated": int(rated.size),
        "planted_rmse_floor": round(floor, 5),
        "floor_definition": "RMSE of the clipped noiseless planted ratings against the written (noisy, rounded) ratings",
        "rating_histogram": {f"{(i + 1) / 2:.1f}": int(c) for i, c in enumerate(hist)},
        "observed_mean": round(float((np.arange(1, 11) / 2 * hist).sum() / n_rows), 4),
        "top_movie_share": round(float(movie_counts.max() / n_rows), 5),
        "median_ratings_per_movie": float(np.median(movie_counts)),
        "ratings_per_user": {
            "min": int(counts.min()),
            "median": float(np.median(counts)),
            "max": int(counts.max()),
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out / "planted.json").write_text(json.dumps(summary, indent=2) + "\n")
    return (
        f"wrote {n_rows:,} ratings by {spec.n_users:,} users of {rated.size:,} movies to {out} "
        f"in {summary['seconds']} s\n"
        f"planted-model RMSE floor {floor:.4f} (noise {spec.noise}); observed mean {summary['observed_mean']}; "
        f"most-rated movie {summary['top_movie_share']:.2%} of ratings; "
        f"ratings per user min/median/max {counts.min()}/{np.median(counts):.0f}/{counts.max()}"
    )
