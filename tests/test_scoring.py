"""Scoring from exported arrays: fallbacks for unknown ids, the rating scale, fold-in."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from movierec.artifacts import load_bundle
from movierec.errors import ArtifactError, UnsupportedOperationError
from movierec.scoring import Head, Scorer, build_scorer
from training.kinds.registry import KINDS

HEAD = Head(min_rating=0.5, max_rating=5.0, offset=3.5, squash=True)
UNKNOWN = -1


def _arrays(
    kind: str, scale: float = 0.5, seed: int = 0, n_users: int = 3, n_movies: int = 4, k: int = 2
) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {
        "user_factors": rng.normal(0, scale, (n_users, k)).astype(np.float32),
        "movie_factors": rng.normal(0, scale, (n_movies, k)).astype(np.float32),
    }
    if kind == "bias":
        arrays["user_bias"] = rng.normal(0, scale, n_users).astype(np.float32)
        arrays["movie_bias"] = rng.normal(0, scale, n_movies).astype(np.float32)
    if kind == "nn":
        arrays.update(
            hidden_kernel=rng.normal(0, scale, (2 * k, 5)).astype(np.float32),
            hidden_bias=rng.normal(0, scale, 5).astype(np.float32),
            output_kernel=rng.normal(0, scale, 5).astype(np.float32),
            output_bias=np.array([0.1], dtype=np.float32),
        )
    return arrays


def _scorer(
    kind: str, head: Head = HEAD, scale: float = 0.5, baseline_scale: float = 0.3, seed: int = 0
) -> Scorer:
    arrays = _arrays(kind, scale, seed)
    rng = np.random.default_rng(seed + 100)
    n_users, n_movies = arrays["user_factors"].shape[0], arrays["movie_factors"].shape[0]
    return build_scorer(
        KINDS[kind].scorer_family,
        arrays,
        head,
        rng.normal(0, baseline_scale, n_users).astype(np.float32),
        rng.normal(0, baseline_scale, n_movies).astype(np.float32),
    )


def test_bias_model_falls_back_to_the_known_learned_biases():
    s = _scorer("bias")
    users = np.array([1, UNKNOWN, 2, UNKNOWN])
    movies = np.array([3, 0, UNKNOWN, UNKNOWN])
    ratings, fallback = s.predict(users, movies)
    np.testing.assert_array_equal(fallback, [False, True, True, True])
    expected = HEAD.apply(
        np.array(
            [
                s.user_factors[1] @ s.movie_factors[3] + s.user_bias[1] + s.movie_bias[3],
                s.movie_bias[0],  # unknown user, known movie: global mean + movie bias
                s.user_bias[2],  # known user, unknown movie: global mean + user bias
                0.0,  # nothing known: the global mean
            ]
        )
    )
    np.testing.assert_allclose(ratings, expected, rtol=0, atol=1e-6)
    assert ratings[3] == pytest.approx(3.5, abs=1e-4)


@pytest.mark.parametrize("kind", ["dot", "nn"])
def test_models_without_biases_fall_back_to_the_damped_baselines(kind):
    s = _scorer(kind)
    users = np.array([UNKNOWN, 2, UNKNOWN])
    movies = np.array([1, UNKNOWN, UNKNOWN])
    ratings, fallback = s.predict(users, movies)
    assert fallback.all()
    np.testing.assert_allclose(
        ratings,
        [3.5 + s.baseline_movie_bias[1], 3.5 + s.baseline_user_bias[2], 3.5],
        rtol=0,
        atol=1e-6,
    )


def test_known_pairs_are_never_fallbacks():
    s = _scorer("dot")
    users, movies = np.array([0, 1, 2]), np.array([3, 2, 1])
    ratings, fallback = s.predict(users, movies)
    assert not fallback.any()
    np.testing.assert_allclose(ratings, HEAD.apply(s.raw_pairs(users, movies)))


# Head.apply's sigmoid overflows np.exp (harmlessly: the result is the scale's end) at raw scores < -88.
@pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")
@pytest.mark.parametrize("kind", ["dot", "bias", "nn"])
@pytest.mark.parametrize("squash", [True, False])
def test_predictions_stay_inside_the_rating_scale(kind, squash):
    # Absurd weights and baselines: raw scores in the hundreds, fallback offsets of +-30 stars.
    head = Head(0.5, 5.0, 3.5, squash)
    s = _scorer(kind, head, scale=10.0, baseline_scale=30.0, seed=1)
    users, movies = np.meshgrid(np.arange(-1, 3), np.arange(-1, 4), indexing="ij")
    ratings, _ = s.predict(users.ravel(), movies.ravel())
    assert np.all((ratings >= 0.5) & (ratings <= 5.0)), ratings
    assert ratings.dtype == np.float32
    catalogue = head.apply(s.raw_catalogue(s.user_factors[0], float(s.user_bias[0])))
    assert np.all((catalogue >= 0.5) & (catalogue <= 5.0))


@pytest.mark.parametrize("squash", [True, False])
def test_head_invert_undoes_apply_inside_the_scale(squash):
    head = Head(0.5, 5.0, 3.2, squash)
    ratings = np.linspace(0.7, 4.8, 30)
    np.testing.assert_allclose(head.apply(head.invert(ratings)), ratings, atol=1e-4)
    # At the ends of the scale the logit is clamped, so fold-in targets stay finite.
    assert np.all(np.isfinite(head.invert(np.array([0.5, 5.0]))))


def test_scorer_names_a_missing_array():
    arrays = _arrays("nn")
    del arrays["hidden_kernel"]
    with pytest.raises(ArtifactError, match="hidden_kernel"):
        build_scorer("mlp", arrays, HEAD, np.zeros(3), np.zeros(4))


def test_an_unknown_scorer_family_is_an_artifact_error():
    with pytest.raises(ArtifactError, match="unknown scorer family 'transformer'"):
        build_scorer("transformer", _arrays("dot"), HEAD, np.zeros(3), np.zeros(4))


def test_bias_operations_need_a_bias_model():
    _scorer("bias").require_bias()
    with pytest.raises(UnsupportedOperationError, match="bias"):
        _scorer("dot").require_bias()


def test_similar_is_cosine_similarity():
    s = _scorer("dot")
    sims = s.similar(2)
    q = s.movie_factors
    expected = q @ q[2] / (np.linalg.norm(q, axis=1) * np.linalg.norm(q[2]))
    np.testing.assert_allclose(sims, expected, atol=1e-6)
    assert sims[2] == pytest.approx(1.0)


def _tiny_scorer_and_busiest_user(tiny_bundle_dir):
    bundle = load_bundle(tiny_bundle_dir)
    arrays = bundle.arrays
    scorer = build_scorer(
        KINDS[bundle.manifest.model_kind].scorer_family,
        arrays,
        Head.from_dict(bundle.manifest.head),
        arrays["baseline_user_bias"],
        arrays["baseline_movie_bias"],
    )
    counts = np.diff(bundle.user_ratings.indptr)
    user = int(np.argmax(counts))
    return scorer, bundle.user_ratings, user


def test_fold_in_of_a_users_own_predictions_recovers_their_vector(tiny_bundle_dir):
    # Exact check of the fold-in algebra: if the targets are the model's own predictions for the user, then
    # head.invert gives back the raw scores q_i . p_u + b_u + b_i exactly, and with a vanishing ridge the
    # least-squares solution over >> k+1 movies with linearly independent factors is (p_u, b_u) itself.
    scorer, user_ratings, u = _tiny_scorer_and_busiest_user(tiny_bundle_dir)
    movies = user_ratings.movies_of(u).astype(np.int64)
    assert len(movies) > 3 * (scorer.user_factors.shape[1] + 1)
    own = scorer.head.apply(scorer.raw_pairs(np.full(len(movies), u), movies))
    # Inside the fold-in clamp (2%..98% of the scale), otherwise inversion is not exact.
    assert np.all((own > 0.5 + 0.02 * 4.5) & (own < 5.0 - 0.02 * 4.5))
    vec, bias = scorer.fold_in(movies, own, l2=1e-6)
    np.testing.assert_allclose(vec, scorer.user_factors[u], atol=1e-3)
    assert bias == pytest.approx(float(scorer.user_bias[u]), abs=1e-3)


def test_fold_in_of_a_users_real_ratings_ranks_the_catalogue_like_the_trained_vector(tiny_bundle_dir):
    scorer, user_ratings, u = _tiny_scorer_and_busiest_user(tiny_bundle_dir)
    movies = user_ratings.movies_of(u).astype(np.int64)
    vec, bias = scorer.fold_in(movies, user_ratings.ratings_of(u), l2=5.0)  # the trainer's default fold_in_l2
    trained = scorer.raw_catalogue(scorer.user_factors[u], float(scorer.user_bias[u]))
    folded = scorer.raw_catalogue(vec, bias)
    # Why 0.8: the trained vector was fitted to these same ratings against the same (now frozen) movie side, so
    # the fold-in solves nearly the same least-squares problem; it differs only in the loss space (logit vs
    # rating, monotone), in the penalty (ridge l2=5 vs Keras' L2 1e-4) and by 3 epochs of SGD noise. On this
    # data the user's catalogue rank correlation is ~0.99 and that of the personal part alone ~0.93 (0.93-0.98
    # over the 8 busiest users); 0.8 leaves room for numerical drift across TF versions without letting a
    # broken solve pass.
    assert spearmanr(folded, trained).statistic > 0.8
    # The movie biases are shared by both scores and alone already correlate highly (~0.9 here), so also
    # require the user-specific part, q_i . p, to agree, and the fold-in to beat a bias-only ranking.
    q = scorer.movie_factors
    assert spearmanr(q @ vec, q @ scorer.user_factors[u]).statistic > 0.8
    assert spearmanr(folded, trained).statistic > spearmanr(scorer.movie_bias, trained).statistic


def test_nn_fold_in_fits_the_given_ratings_better_than_the_average_user(fitted_models):
    scorer = fitted_models["nn"].scorer()
    rng = np.random.default_rng(0)
    movies = rng.choice(scorer.n_movies, 30, replace=False).astype(np.int64)
    # Ratings of a made-up user who loves the first half of these movies and hates the rest.
    ratings = np.where(np.arange(30) < 15, 5.0, 1.0).astype(np.float32)
    vec, bias = scorer.fold_in(movies, ratings, l2=1.0)
    assert bias == 0.0
    start = scorer.user_factors.mean(axis=0)

    def error(user_vec):
        raw = scorer.raw_pairs_from_vectors(np.tile(user_vec, (30, 1)), np.zeros(30, np.float32), movies)
        return float(np.mean((scorer.head.apply(raw) - ratings) ** 2))

    assert error(vec) < error(start)


def test_fold_in_with_fewer_ratings_than_factors_is_the_primal_ridge_solution(tiny_bundle_dir):
    # Fewer ratings than unknowns takes the dual solve (n x n); it must equal the textbook primal solution.
    scorer, user_ratings, u = _tiny_scorer_and_busiest_user(tiny_bundle_dir)
    movies = user_ratings.movies_of(u).astype(np.int64)[:5]
    ratings = user_ratings.ratings_of(u)[:5]
    assert len(movies) < scorer.user_factors.shape[1] + 1
    vec, bias = scorer.fold_in(movies, ratings, l2=5.0)
    x = np.hstack([scorer.movie_factors[movies].astype(np.float64), np.ones((len(movies), 1))])
    y = scorer.head.invert(ratings).astype(np.float64) - scorer.movie_bias[movies]
    primal = np.linalg.solve(x.T @ x + 5.0 * np.eye(x.shape[1]), x.T @ y)
    np.testing.assert_allclose(np.r_[vec, bias], primal, rtol=1e-4, atol=1e-6)
