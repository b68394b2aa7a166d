"""Movies added after training (PUT /movies/{movie_id}): the prior from genres and year, the movie-side fold-in
of their ratings (movierec/new_movies.py), and the service around them, on the real tiny artifact and SQLite."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from servers import running_uvicorn
from store_helpers import BACKENDS, database_url

from app.main import create_app
from app.settings import Settings
from movierec.artifacts import load_bundle
from movierec.movie_features import (
    N_YEAR_BINS,
    display_title,
    split_genres,
    split_title_year,
    title_year,
    year_one_hot,
)
from movierec.new_movies import MovieEstimate, NewMovieScorer, Raters, fit_prior
from movierec.recommender import Recommender
from movierec.scoring import Head, MlpScorer
from movierec.store import RatingStore

KEY = "new-movies-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
# Ids far from the tiny catalogue's (10, 17, 24, ...): each test uses its own.
NEW = 9_000_000


@pytest.fixture(scope="module")
def recommender(tiny_bundle_dir: Path) -> Recommender:
    return Recommender(load_bundle(tiny_bundle_dir))


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('new-movies-db')}/movierec.db"


def _settings(model_dir: Path, db_url: str, **extra) -> Settings:
    return Settings(model_dir=model_dir, api_key=KEY, database_url=db_url, device="cpu", **extra)


@pytest.fixture(scope="module")
def client(tiny_bundle_dir: Path, db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(tiny_bundle_dir, db_url))) as test_client:
        yield test_client


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    return str(body["detail"])


def _genre_by_quality(recommender: Recommender) -> list[str]:
    """The model's genres from the best to the worst support-weighted mean learned bias of their movies."""
    weights = np.minimum(recommender.n_ratings, 50).astype(np.float64)
    bias = recommender.scorer.movie_bias.astype(np.float64)
    means = {}
    for genre in recommender.genre_names:
        rows = np.array([genre in genres for genres in recommender.genres])
        means[genre] = float(np.average(bias[rows], weights=weights[rows]))
    return sorted(means, key=means.__getitem__, reverse=True)


def _same(a: MovieEstimate, b: MovieEstimate) -> None:
    np.testing.assert_array_equal(a.row, b.row)
    assert (a.bias, a.n_folded) == (b.bias, b.n_folded)


def _raters(recommender: Recommender, movie: int, n: int, skip: set[int]) -> list[int]:
    """`n` trained users with many ratings, other than `skip`."""
    counts = np.diff(recommender.bundle.user_ratings.indptr)
    ids = recommender.bundle.user_ids.ids[np.argsort(-counts, kind="stable")]
    return [int(u) for u in ids if int(u) not in skip][:n]


# ---- the shared feature definition -------------------------------------------------------------------------


def test_features_parse_movielens_genres_titles_and_year_bins() -> None:
    assert split_genres("Comedy|Drama") == ["Comedy", "Drama"]
    assert split_genres("(no genres listed)") == [] and split_genres("") == []
    assert title_year("Heat (1995)") == 1995 and title_year("Heat") is None
    assert split_title_year("Heat (1995) ") == ("Heat", 1995) and split_title_year("(1995)") == (
        "(1995)",
        1995,
    )
    assert split_title_year("Heat") == ("Heat", None)
    assert (
        display_title("Heat", 1995) == "Heat (1995)" and display_title("Heat (1995)", 1995) == "Heat (1995)"
    )
    bins = year_one_hot(np.array([1950.0, 1999.0, np.nan, 2024.0]))
    assert bins.shape == (4, N_YEAR_BINS)
    assert bins[0, 0] == bins[3, -1] == 1 and not bins[2].any()
    assert np.argmax(bins[1]) < np.argmax(bins[3])


# ---- the store ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_store_adds_movies_idempotently_and_reads_their_ratings(backend: str, tmp_path: Path) -> None:
    with database_url(backend, tmp_path) as url:
        store = RatingStore(url)
        try:
            first = store.put_movie(NEW, "Dune", ["Sci-Fi", "Action"], 2024)
            assert (first.title, first.genres, first.year) == ("Dune", ["Sci-Fi", "Action"], 2024)
            again = store.put_movie(NEW, "Dune", [], None)
            assert again.added_at == first.added_at and again.genres == [] and again.year is None
            assert store.added_movie(NEW) == again and store.added_movie(NEW + 1) is None
            store.put_movie(NEW + 1, "Heat (1995)", ["Drama"], 1995)
            assert set(store.added_movies([NEW, NEW + 1, NEW + 2])) == {NEW, NEW + 1}
            assert store.movie_rating_summary(NEW) == (0, None) and store.movie_ratings(NEW, 10) == []
            for user, rating in ((1, 4.0), (2, 2.0), (3, 3.0)):
                store.put_rating(user, NEW, rating)
            store.put_rating(1, NEW + 1, 5.0)
            newest = store.movie_ratings(NEW, 2)
            assert [(r.user_id, r.rating) for r in newest] == [(3, 3.0), (2, 2.0)]
            assert store.movie_rating_summary(NEW) == (3, pytest.approx(3.0))
            store.forget_user(3)
            assert store.movie_rating_summary(NEW) == (2, pytest.approx(3.0))
            # Training from the database reads it with its year, as MovieLens writes titles.
            titles = {m: t for m, t, _ in store.catalogue_movies()}
            assert titles[NEW] == "Dune" and titles[NEW + 1] == "Heat (1995)"
        finally:
            store.close()


# ---- the prior ---------------------------------------------------------------------------------------------


def test_fit_prior_is_weighted_ridge_with_an_unpenalised_intercept() -> None:
    rng = np.random.default_rng(0)
    features = np.hstack([rng.integers(0, 2, (400, 5)).astype(np.float64), np.ones((400, 1))])
    truth = rng.normal(size=(6, 3))
    targets = features @ truth + rng.normal(0, 0.01, (400, 3))
    weights = rng.integers(1, 50, 400).astype(np.float64)
    np.testing.assert_allclose(fit_prior(features, targets, weights, 1e-6), truth, atol=0.01)
    # Shrunk hard, the coefficients vanish but the intercept stays: the weighted mean of the targets.
    heavy = fit_prior(features, targets, weights, 1e9)
    np.testing.assert_allclose(heavy[:-1], 0.0, atol=1e-5)
    np.testing.assert_allclose(heavy[-1], np.average(targets, axis=0, weights=weights), atol=1e-4)
    # Weight 0 rows count for nothing.
    outlier = np.vstack([targets, np.full((1, 3), 1e6)])
    zero = np.append(weights, 0.0)
    np.testing.assert_allclose(
        fit_prior(np.vstack([features, features[:1]]), outlier, zero, 1.0),
        fit_prior(features, targets, weights, 1.0),
    )


def test_the_prior_of_the_trained_model_follows_its_movies_genres(recommender: Recommender) -> None:
    scorer = NewMovieScorer.from_recommender(recommender)
    # In sample, the prior's biases go with the learned ones (a fit from the tables, not noise).
    priors = np.array(
        [
            scorer.prior(g, title_year(t)).bias
            for g, t in zip(recommender.genres, recommender.titles, strict=True)
        ]
    )
    assert np.corrcoef(priors, recommender.scorer.movie_bias)[0, 1] > 0.2
    best, *_, worst = _genre_by_quality(recommender)
    good, bad = scorer.prior([best], 1995), scorer.prior([worst], 1995)
    assert good.bias > bad.bias
    assert good.n_folded == bad.n_folded == 0
    user = 0
    vec, bias = recommender.scorer.user_factors[user], float(recommender.scorer.user_bias[user])
    assert scorer.rating(good, vec, bias) != scorer.rating(bad, vec, bias)


# ---- the movie-side fold-in --------------------------------------------------------------------------------


def test_the_movie_side_solve_is_ridge_toward_the_prior(recommender: Recommender) -> None:
    """The closed form of min ||X w - t||^2 + l2 ||w - w0||^2, with X = [user vectors, 1], t the raw targets
    minus the users' biases: the user fold-in with the roles swapped."""
    scorer = NewMovieScorer.from_recommender(recommender)
    prior = scorer.prior(["Drama"], 1990)
    users = np.arange(12)
    ratings = np.linspace(0.5, 5.0, 12).astype(np.float32)
    factors, biases = recommender.scorer.user_factors[users], recommender.scorer.user_bias[users]
    folded = scorer.fold_in(prior, Raters(factors, biases, ratings))
    x = np.hstack([factors.astype(np.float64), np.ones((12, 1))])
    t = recommender.scorer.head.invert(ratings).astype(np.float64) - biases
    w0 = np.append(prior.row, prior.bias)
    expected = np.linalg.solve(x.T @ x + scorer.l2 * np.eye(x.shape[1]), x.T @ t + scorer.l2 * w0)
    np.testing.assert_allclose(np.append(folded.row, folded.bias), expected, rtol=1e-6, atol=1e-8)
    assert folded.n_folded == 12
    # No ratings: the prior itself.
    _same(scorer.estimate(["Drama"], 1990, Raters.none(factors.shape[1])), prior)


def test_consistent_ratings_pull_the_estimate_to_the_movie_that_produced_them(
    recommender: Recommender,
) -> None:
    """A trained movie's ratings as the model predicts them, folded in as if it were new: the more users, the
    closer its predictions come to the trained movie's, for users who did not rate it."""
    scorer = NewMovieScorer.from_recommender(recommender)
    base = recommender.scorer
    movie = int(np.argmax(recommender.n_ratings))
    raters, others = np.arange(0, 40), np.arange(40, base.n_users)
    truth = base.head.apply(base.raw_pairs(others, np.full(len(others), movie)))
    prior = scorer.prior(recommender.genres[movie], title_year(recommender.titles[movie]))

    def error(estimate) -> float:
        got = scorer.ratings(
            estimate, base.user_factors[others], base.user_bias[others], np.ones(len(others), bool)
        )
        return float(np.abs(got - truth).mean())

    errors = []
    for n in (0, 5, 40):
        given = base.head.apply(base.raw_pairs(raters[:n], np.full(n, movie)))
        raters_n = Raters(base.user_factors[raters[:n]], base.user_bias[raters[:n]], given)
        errors.append(error(scorer.fold_in(prior, raters_n) if n else prior))
    assert errors[0] > errors[1] > errors[2]


def test_an_mlp_model_scores_new_movies_from_the_prior_inside_the_scale() -> None:
    rng = np.random.default_rng(3)
    n_users, n_movies, k, units = 20, 30, 4, 6
    arrays = {
        "user_factors": rng.normal(size=(n_users, k)),
        "movie_factors": rng.normal(size=(n_movies, k)),
        "hidden_kernel": rng.normal(size=(2 * k, units)),
        "hidden_bias": rng.normal(size=units),
        "output_kernel": rng.normal(size=units),
        "output_bias": np.array([0.1]),
    }
    head = Head(0.5, 5.0, 3.5, True, 0.1)
    mlp = MlpScorer(arrays, head, np.zeros(n_users), rng.normal(0, 0.3, n_movies))
    genres = [["Drama"] if j % 2 else ["Horror"] for j in range(n_movies)]
    scorer = NewMovieScorer(
        mlp, genres, [1990] * n_movies, np.full(n_movies, 10), ["Drama", "Horror"], l2=5.0
    )
    assert not scorer.folds_in_ratings
    prior = scorer.prior(["Drama"], 1990)
    ratings = Raters(mlp.user_factors[:5], np.zeros(5, np.float32), np.full(5, 5.0, np.float32))
    _same(scorer.estimate(["Drama"], 1990, ratings), prior)  # the network is not linear in the movie row
    # The prior row is the mean hidden row of Drama movies (one genre, one year: the regression's cell means).
    drama = np.array([g == ["Drama"] for g in genres])
    np.testing.assert_allclose(prior.row, mlp.movie_hidden[drama].mean(axis=0), atol=0.05)
    known = np.array([True, True, False])
    got = scorer.ratings(prior, mlp.user_factors[:3], np.zeros(3, np.float32), known)
    assert np.all((got >= 0.5) & (got <= 5.0))
    # An unknown user: the model's fallback (mean plus the movie's baseline offset), on the prior's offset.
    assert got[2] == pytest.approx(min(max(3.5 + prior.bias, 0.5), 5.0))


# ---- the endpoint ------------------------------------------------------------------------------------------


def test_without_a_key_adding_is_disabled_and_a_wrong_key_is_refused(
    tiny_bundle_dir: Path, tmp_path: Path, client: TestClient
) -> None:
    body = {"title": "X", "genres": [], "year": 2024}
    settings = Settings(model_dir=tiny_bundle_dir, database_url=f"sqlite:///{tmp_path}/x.db", device="cpu")
    with TestClient(create_app(settings)) as keyless:
        assert "MOVIEREC_API_KEY" in _error(
            keyless.put(f"/movies/{NEW}", json=body, headers=AUTH), 403, "writes_disabled"
        )
    response = client.put(f"/movies/{NEW}", json=body)
    _error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    _error(
        client.put(f"/movies/{NEW}", json=body, headers={"Authorization": "Bearer nope"}), 401, "unauthorized"
    )
    assert client.get(f"/movies/{NEW}").status_code == 404  # nothing was added


@pytest.mark.parametrize(
    ("body", "status", "code", "names"),
    [
        (
            {"title": "X", "genres": ["Drama", "Western Noir"], "year": 2024},
            422,
            "unknown_genre",
            "genres[1]",
        ),
        ({"title": "X", "genres": [""], "year": 2024}, 422, "validation_error", "genres.0"),
        ({"title": "X", "genres": ["Drama"] * 21, "year": 2024}, 422, "validation_error", "genres"),
        ({"title": "X", "genres": ["Drama"], "year": 1800}, 422, "validation_error", "year"),
        ({"title": "X", "genres": ["Drama"], "year": 2101}, 422, "validation_error", "year"),
        ({"title": "X", "genres": ["Drama"], "year": "2024"}, 422, "validation_error", "year"),
        ({"title": "X", "genres": ["Drama"], "year": 2024.5}, 422, "validation_error", "year"),
        ({"title": "   ", "genres": ["Drama"]}, 422, "validation_error", "title"),
        ({"title": "a\u0000b", "genres": ["Drama"]}, 422, "validation_error", "title"),
        ({"title": "x" * 501, "genres": ["Drama"]}, 422, "validation_error", "title"),
        ({"genres": ["Drama"]}, 422, "validation_error", "title"),
        ({"title": "X", "genres": "Drama"}, 422, "validation_error", "genres"),
        ({"title": "X", "genres": [], "director": "Y"}, 422, "validation_error", "director"),
    ],
)
def test_bad_movies_are_refused_naming_the_field(client: TestClient, body, status, code, names) -> None:
    assert names in _error(client.put(f"/movies/{NEW + 1}", json=body, headers=AUTH), status, code)
    assert client.get(f"/movies/{NEW + 1}").status_code == 404


def test_a_movie_the_model_was_trained_on_is_not_new(client: TestClient, recommender: Recommender) -> None:
    trained = int(recommender.bundle.movie_ids.ids[3])
    body = {"title": "X", "genres": ["Drama"], "year": 2024}
    detail = _error(client.put(f"/movies/{trained}", json=body, headers=AUTH), 409, "movie_in_model")
    assert str(trained) in detail
    entry = client.get(f"/movies/{trained}").json()
    assert entry["new"] is False and entry["title"] == recommender.titles[3]


def test_adding_is_idempotent_and_the_movie_is_served_as_new(
    client: TestClient, recommender: Recommender
) -> None:
    movie = NEW + 2
    first = client.put(
        f"/movies/{movie}",
        json={"title": " Dune ", "genres": ["sci-fi", "Action", "Sci-Fi"], "year": 2024},
        headers=AUTH,
    )
    assert first.status_code == 200, first.text
    stored = first.json()
    assert stored["new"] is True and stored["title"] == "Dune" and stored["year"] == 2024
    assert stored["genres"] == ["Sci-Fi", "Action"]  # the model's spelling, each once
    again = client.put(
        f"/movies/{movie}", json={"title": "Dune (2024)", "genres": ["Drama"]}, headers=AUTH
    ).json()
    assert again["added_at"] == stored["added_at"] and again["genres"] == ["Drama"]
    assert (again["title"], again["year"]) == ("Dune", 2024)  # MovieLens's "(year)" read off the title
    # With a year given, the year wins over the title's: stored apart, title and year cannot disagree.
    other = {"title": "Heat (1995)", "genres": [], "year": 1996}
    assert client.put(f"/movies/{movie + 100}", json=other, headers=AUTH).json()["title"] == "Heat"
    assert client.get(f"/movies/{movie + 100}").json()["title"] == "Heat (1996)"
    entry = client.get(f"/movies/{movie}").json()
    assert entry == {
        "movie_id": movie,
        "title": "Dune (2024)",
        "genres": ["Drama"],
        "n_ratings": 0,
        "mean_rating": None,
        "bias": pytest.approx(
            NewMovieScorer.from_recommender(recommender).prior(["Drama"], 2024).bias, abs=1e-4
        ),
        "new": True,
    }
    # Ratings of it are accepted now (and of a movie neither trained nor added, still not).
    user = int(recommender.bundle.user_ids.ids[0])
    assert client.put(f"/users/{user}/ratings/{movie}", json={"rating": 4.5}, headers=AUTH).status_code == 200
    _error(
        client.put(f"/users/{user}/ratings/{NEW + 99}", json={"rating": 4.5}, headers=AUTH),
        404,
        "unknown_movie",
    )
    entry = client.get(f"/movies/{movie}").json()
    assert entry["n_ratings"] == 1 and entry["mean_rating"] == 4.5
    # A user's own vector keeps ignoring movies the model does not know: their list and predictions still work.
    assert client.get(f"/recommend/{user}").json()["user_vector"] == "fold_in"


def test_predictions_of_new_movies_are_marked_and_follow_the_genres(
    client: TestClient, recommender: Recommender
) -> None:
    best, *_, worst = _genre_by_quality(recommender)
    good, bad = NEW + 3, NEW + 4
    for movie, genre in ((good, best), (bad, worst)):
        assert (
            client.put(
                f"/movies/{movie}",
                json={"title": f"{genre} film", "genres": [genre], "year": 1995},
                headers=AUTH,
            ).status_code
            == 200
        )
    user = int(recommender.bundle.user_ids.ids[5])
    scorer = NewMovieScorer.from_recommender(recommender)
    u = recommender.user_index(user)
    vec, bias = recommender.scorer.user_factors[u], float(recommender.scorer.user_bias[u])
    answers = {}
    for movie, genre in ((good, best), (bad, worst)):
        one = client.post("/predict", json={"user_id": user, "movie_id": movie}).json()
        assert one["new_movie"] is True and one["movie_known"] is False and one["fallback"] is False
        assert one["user_known"] is True and one["user_vector"] == "trained"
        expected = scorer.rating(scorer.prior([genre], 1995), vec, bias)
        assert one["predicted_rating"] == pytest.approx(expected, abs=1e-4)
        answers[movie] = one["predicted_rating"]
    assert answers[good] > answers[bad]
    # A batch mixing a trained movie, the new ones and an unknown id; strict accepts the new movies.
    trained = int(recommender.bundle.movie_ids.ids[0])
    pairs = [(user, trained), (user, good), (99_999, bad), (user, NEW + 98), (user, bad)]
    batch = client.post(
        "/predict", json={"instances": [{"user_id": a, "movie_id": b} for a, b in pairs]}
    ).json()
    rows = batch["predictions"]
    assert [r["new_movie"] for r in rows] == [False, True, True, False, True]
    assert [r["fallback"] for r in rows] == [False, False, True, True, False]
    assert (
        rows[0]["predicted_rating"]
        == client.post("/predict", json={"user_id": user, "movie_id": trained}).json()["predicted_rating"]
    )
    assert rows[1]["predicted_rating"] == answers[good] and rows[4]["predicted_rating"] == answers[bad]
    # An unknown user gets the fallback on the new movie's estimated bias.
    assert rows[2]["predicted_rating"] == pytest.approx(
        float(recommender.scorer.head.apply(np.array([scorer.prior([worst], 1995).bias]))[0]), abs=1e-4
    )
    strict = client.post("/predict?strict=true", json={"instances": [{"user_id": user, "movie_id": good}]})
    assert strict.status_code == 200 and strict.json()["predictions"][0]["new_movie"] is True
    assert (
        client.post("/predict", json={"user_id": user, "movie_id": good, "strict": True}).status_code == 200
    )
    _error(
        client.post("/predict", json={"user_id": 99_999, "movie_id": good, "strict": True}),
        404,
        "unknown_user",
    )
    _error(
        client.post("/predict?strict=true", json={"user_id": user, "movie_id": NEW + 98}),
        404,
        "unknown_movie",
    )


def test_ratings_of_a_new_movie_move_its_predictions(client: TestClient, recommender: Recommender) -> None:
    high, low = NEW + 5, NEW + 6
    body = {"title": "Twin", "genres": ["Drama"], "year": 2000}
    for movie in (high, low):
        assert client.put(f"/movies/{movie}", json=body, headers=AUTH).status_code == 200
    viewer = int(recommender.bundle.user_ids.ids[-1])

    def predicted(movie: int) -> float:
        return float(
            client.post("/predict", json={"user_id": viewer, "movie_id": movie}).json()["predicted_rating"]
        )

    prior = predicted(high)
    assert predicted(low) == prior  # the same genres and year: the same prior
    raters = _raters(recommender, high, 6, {viewer})
    steps = []
    for user in raters:
        assert (
            client.put(f"/users/{user}/ratings/{high}", json={"rating": 5.0}, headers=AUTH).status_code == 200
        )
        assert (
            client.put(f"/users/{user}/ratings/{low}", json={"rating": 0.5}, headers=AUTH).status_code == 200
        )
        steps.append((predicted(high), predicted(low)))
    assert steps[-1][0] > prior + 0.3 and steps[-1][1] < prior - 0.3
    # Each rating moves it further (the fold-in shrinks toward the prior less as ratings accumulate).
    assert [h for h, _ in steps] == sorted(h for h, _ in steps)
    assert [lo for _, lo in steps] == sorted((lo for _, lo in steps), reverse=True)
    entry = client.get(f"/movies/{high}").json()
    assert entry["n_ratings"] == len(raters) and entry["mean_rating"] == 5.0 and entry["new"] is True
    # Removing the ratings brings the prior back.
    for user in raters:
        assert client.delete(f"/users/{user}/ratings/{high}", headers=AUTH).status_code == 204
    assert predicted(high) == pytest.approx(prior)


def test_a_movie_added_through_one_process_is_served_by_another(
    tiny_bundle_dir: Path, recommender: Recommender, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    movie, user = NEW + 7, int(recommender.bundle.user_ids.ids[2])
    with (
        TestClient(create_app(_settings(tiny_bundle_dir, url))) as a,
        TestClient(create_app(_settings(tiny_bundle_dir, url))) as b,
    ):
        assert b.get(f"/movies/{movie}").status_code == 404
        assert (
            a.put(
                f"/movies/{movie}",
                json={"title": "Elsewhere", "genres": ["Comedy"], "year": 2020},
                headers=AUTH,
            ).status_code
            == 200
        )
        assert b.get(f"/movies/{movie}").json()["new"] is True
        pair = {"user_id": user, "movie_id": movie}
        assert b.post("/predict", json=pair).json() == a.post("/predict", json=pair).json()
        before = b.post("/predict", json=pair).json()["predicted_rating"]
        for rater in _raters(recommender, movie, 4, {user}):
            assert (
                a.put(f"/users/{rater}/ratings/{movie}", json={"rating": 5}, headers=AUTH).status_code == 200
            )
        assert b.post("/predict", json=pair).json()["predicted_rating"] > before


def test_the_database_down_adding_answers_503_and_reads_serve_the_model(
    tiny_bundle_dir: Path, recommender: Recommender, tmp_path: Path
) -> None:
    directory = tmp_path / "db"
    user, movie = int(recommender.bundle.user_ids.ids[0]), NEW + 8
    with TestClient(create_app(_settings(tiny_bundle_dir, f"sqlite:///{directory}/m.db"))) as test_client:
        assert (
            test_client.put(
                f"/movies/{movie}", json={"title": "Gone", "genres": []}, headers=AUTH
            ).status_code
            == 200
        )
        store: RatingStore = test_client.app.state.store
        shutil.move(directory, tmp_path / "away")
        store.close()
        down = test_client.put(f"/movies/{movie + 1}", json={"title": "Later", "genres": []}, headers=AUTH)
        _error(down, 503, "database_unavailable")
        assert down.headers["retry-after"] == "5"
        _error(test_client.get(f"/movies/{movie}"), 503, "database_unavailable")
        assert test_client.get(f"/movies/{int(recommender.bundle.movie_ids.ids[0])}").status_code == 200
        served = test_client.post("/predict", json={"user_id": user, "movie_id": movie})
        assert (
            served.status_code == 200 and served.json()["new_movie"] is False
        )  # served as unknown meanwhile
        shutil.move(tmp_path / "away", directory)
        assert (
            test_client.post("/predict", json={"user_id": user, "movie_id": movie}).json()["new_movie"]
            is True
        )


def test_the_openapi_document_states_the_endpoint_and_its_limits(
    client: TestClient, recommender: Recommender
) -> None:
    document = client.get("/openapi.json").json()
    operation = document["paths"]["/movies/{movie_id}"]["put"]
    assert operation["security"] == [{"ApiKey": []}]
    assert {"200", "401", "403", "409", "422", "503"} <= set(operation["responses"])
    content = operation["requestBody"]["content"]["application/json"]
    assert content["examples"]["new release"]["value"]["year"] == 2024
    schema = document["components"]["schemas"]["NewMovieRequest"]
    props = schema["properties"]
    assert props["title"]["maxLength"] == 500 and props["title"]["minLength"] == 1
    assert props["genres"]["maxItems"] == 20 and props["genres"]["items"]["enum"] == recommender.genre_names
    year = next(s for s in props["year"]["anyOf"] if s.get("type") == "integer")
    assert (year["minimum"], year["maximum"]) == (1870, 2100)
    assert schema["examples"][0]["title"]
    assert "new_movie" in document["components"]["schemas"]["Prediction"]["properties"]
    assert "new" in document["components"]["schemas"]["MovieResponse"]["properties"]
    assert "/recommend" in operation["description"]  # lists take new movies only after a retrain
    # Ratings of new movies are held to the model's steps like any other: the document says so.
    assert document["components"]["schemas"]["RatingBody"]["properties"]["rating"]["multipleOf"] == 0.5
    # Only digits name a movie to add: /movies/bias-ranking stays a GET-only path.
    response = client.put("/movies/bias-ranking", json={"title": "X", "genres": []}, headers=AUTH)
    _error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET"


@pytest.mark.slow
def test_a_movie_added_through_one_process_is_predicted_by_a_uvicorn_process(
    tiny_bundle_dir: Path, recommender: Recommender, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/served.db"
    movie, user = NEW + 10, int(recommender.bundle.user_ids.ids[1])
    env = {"MOVIEREC_MODEL_DIR": str(tiny_bundle_dir), "MOVIEREC_API_KEY": KEY, "MOVIEREC_DATABASE_URL": url}
    with (
        running_uvicorn(env, ready_timeout=90) as base,
        TestClient(create_app(_settings(tiny_bundle_dir, url))) as writer,
    ):
        pair = {"user_id": user, "movie_id": movie}
        assert httpx.post(f"{base}/predict", json=pair).json()["new_movie"] is False
        assert (
            writer.put(
                f"/movies/{movie}",
                json={"title": "Premiere", "genres": ["Action"], "year": 2025},
                headers=AUTH,
            ).status_code
            == 200
        )
        served = httpx.post(f"{base}/predict", json=pair).json()
        assert served["new_movie"] is True and served == writer.post("/predict", json=pair).json()
        for rater in _raters(recommender, movie, 4, {user}):
            assert (
                writer.put(f"/users/{rater}/ratings/{movie}", json={"rating": 0.5}, headers=AUTH).status_code
                == 200
            )
        assert (
            httpx.post(f"{base}/predict", json=pair).json()["predicted_rating"] < served["predicted_rating"]
        )
        assert httpx.get(f"{base}/movies/{movie}").json()["n_ratings"] == 4
