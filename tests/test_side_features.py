"""Side features (training/side_features.py): what they encode, that folding them away leaves the model's
predictions unchanged, and that the Gibbs sampler's side prior helps where ratings are scarce."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from movierec.model_config import ModelConfig
from training.bpmf import gibbs_posterior_mean
from training.metrics import rmse
from training.side_features import (
    build_side_features,
    catalogue_features,
    fold_side_projections,
    implicit_embeddings,
)


def test_catalogue_features_one_hot_genres_and_year_bins_zero_for_unknown_movies():
    movies = pd.DataFrame(
        {
            "movie_id": [1, 2, 3],
            "title": ["Old (1950)", "Mid (1990)", "No year"],
            "genres": ["Comedy|Drama", "Drama", "(no genres listed)"],
        }
    )
    table = catalogue_features(np.array([2, 1, 3, 99]), movies)
    genres, years = table[:, :2], table[:, 2:]  # columns: Comedy, Drama, then the year bins
    np.testing.assert_array_equal(genres, [[0, 1], [1, 1], [0, 0], [0, 0]])
    assert years[0].sum() == years[1].sum() == 1
    assert np.argmax(years[0]) > np.argmax(years[1])  # 1990 falls in a later bin than 1950
    assert not years[2].any() and not table[3].any()  # no year in the title; not in the catalogue
    assert catalogue_features(np.array([1, 2]), movies.iloc[:0]).shape == (2, 0)


def test_implicit_embeddings_are_the_best_low_rank_fit_of_the_normalised_matrix():
    rng = np.random.default_rng(0)
    cells = np.flatnonzero(rng.random(30 * 40) < 0.3)
    users, movies = np.divmod(cells, 40)
    u, v = implicit_embeddings(users, movies, 30, 40, dim=5, seed=0)
    dense = np.zeros((30, 40))
    dense[users, movies] = 1.0
    dense /= np.sqrt(dense.sum(axis=1, keepdims=True))
    left, s, right = np.linalg.svd(dense)
    best = (left[:, :5] * s[:5]) @ right[:5]
    np.testing.assert_allclose(u @ v.T, best, atol=1e-8)


def test_side_tables_are_standardised_with_an_intercept_column():
    movies = pd.DataFrame({"movie_id": [10, 20, 30], "title": ["A (1999)"] * 3, "genres": ["X", "Y", "X|Y"]})
    side = build_side_features(
        np.array([0, 0, 1, 1, 2]),
        np.array([0, 1, 1, 2, 0]),
        3,
        np.array([10, 20, 30]),
        movies,
        implicit_dim=2,
        seed=0,
    )
    for table in (side.users, side.movies):
        assert table.dtype == np.float32
        np.testing.assert_allclose(table[:, -1], 1.0)
        np.testing.assert_allclose(table[:, :-1].mean(axis=0), 0.0, atol=1e-6)
        np.testing.assert_allclose(table[:, :-1].std(axis=0), 1.0, atol=1e-5)
    # The shared year bin is constant across these movies and so dropped; the two genres stay.
    assert side.movies.shape[1] == 2 + 2 + 1


@pytest.mark.parametrize("kind", ["dot", "bias", "nn"])
def test_folding_the_side_projections_keeps_every_prediction(kind):
    from movierec.models import build_model, side_layer_names
    from training.side_features import SideFeatures

    rng = np.random.default_rng(1)
    n_users, n_movies = 12, 15
    side = SideFeatures(
        users=rng.normal(size=(n_users, 4)).astype(np.float32),
        movies=rng.normal(size=(n_movies, 6)).astype(np.float32),
    )
    config = ModelConfig(kind=kind, n_factors=5, side_features=True, squash_output=True)
    trained = build_model(config, n_users, n_movies, (0.5, 5.0), 3.5, (side.users, side.movies))
    for layer in trained.layers:  # random weights everywhere, projections included (they start at zero)
        if layer.trainable_weights:
            layer.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in layer.get_weights()])
    plain = fold_side_projections(trained, config, side, (0.5, 5.0), 3.5)
    assert not any(name in layer.name for layer in plain.layers for name in side_layer_names("movie"))
    users, movies = np.divmod(np.arange(n_users * n_movies), n_movies)
    inputs = {"user": users.astype(np.int32), "movie": movies.astype(np.int32)}
    np.testing.assert_allclose(
        plain.predict(inputs, verbose=0), trained.predict(inputs, verbose=0), rtol=1e-5, atol=1e-5
    )


def test_gibbs_side_prior_rescues_movies_with_few_ratings():
    """Movies whose taste is set by their genre and who have two ratings each: the genre-informed prior
    predicts their held-out ratings far better than the zero-mean prior."""
    rng = np.random.default_rng(3)
    n_u, n_m, n_genres = 150, 300, 4
    genre = rng.integers(0, n_genres, n_m)
    genre_vec = rng.normal(0, 0.8, (n_genres, 2))
    p, q = rng.normal(0, 0.8, (n_u, 2)), genre_vec[genre] + rng.normal(0, 0.1, (n_m, 2))
    movie_bias = np.array([-0.6, -0.2, 0.3, 0.6])[genre]
    per_movie = 4  # 2 for training, 2 held out
    users = np.concatenate([rng.choice(n_u, per_movie, replace=False) for _ in range(n_m)])
    movies = np.repeat(np.arange(n_m), per_movie)
    ratings = (
        3.5 + movie_bias[movies] + np.einsum("ij,ij->i", p[users], q[movies]) + rng.normal(0, 0.3, users.size)
    )
    # Every user also rates 40 "anchor" movies (unbiased, one genre each), so user factors are well determined.
    anchor_users, anchor_movies = np.divmod(np.arange(n_u * 40), 40)
    anchor_r = 3.5 + np.einsum("ij,ij->i", p[anchor_users], genre_vec[anchor_movies % n_genres])
    train = np.tile([True, True, False, False], n_m)
    fit_u = np.concatenate([users[train], anchor_users])
    fit_m = np.concatenate([movies[train], n_m + anchor_movies])
    fit_r = np.concatenate([ratings[train], anchor_r + rng.normal(0, 0.3, anchor_r.size)])
    one_hot = np.zeros((n_m + 40, n_genres + 1), dtype=np.float32)
    one_hot[np.arange(n_m), genre] = 1.0
    one_hot[n_m + np.arange(40), np.arange(40) % n_genres] = 1.0
    one_hot[:, -1] = 1.0
    common = dict(
        n_factors=2,
        sweeps=40,
        burn_in=10,
        prior_precision=1.0,
        bias_prior_precision=1.0,
        noise_precision=10.0,
        rank=8,
        seed=0,
        rating_scale=(-10.0, 20.0),
    )
    errors = {}
    for label, tables in (("plain", None), ("side", (np.ones((n_u, 1), np.float32), one_hot))):
        post = gibbs_posterior_mean(fit_u, fit_m, fit_r, n_u, n_m + 40, side_tables=tables, **common)
        errors[label] = rmse(post.predict(users[~train], movies[~train]), ratings[~train])
    assert errors["side"] < 0.85 * errors["plain"], errors


def test_the_default_bias_pipeline_trains_with_side_features_and_exports_a_plain_model(
    tiny_ratings, tmp_path
):
    import keras

    from movierec.artifacts import MODEL_FILE, load_bundle
    from movierec.models import side_layer_names
    from movierec.recommender import Recommender
    from training.config import TrainConfig
    from training.pipeline import train_run

    config = TrainConfig.for_kind("bias", epochs=3, batch_size=256, model_fields={"n_factors": 8})
    assert config.model.side_features
    result = train_run(tiny_ratings, config, tmp_path, verbose=0)
    assert result.manifest.config["model"]["side_features"] is True
    # The scored fit reused the selection's compiled graph and replayed its schedule on the whole train split.
    selection, scored = result.selection_model, result.eval_model
    assert scored.graph is selection.graph
    assert scored.learning_rates == selection.learning_rates[: selection.epochs]
    assert len(scored.indexed.ratings) > len(selection.indexed.ratings)

    saved = keras.saving.load_model(result.run_dir / MODEL_FILE)
    side_names = {name for side in ("user", "movie") for name in side_layer_names(side)}
    assert not side_names & {layer.name for layer in saved.layers}
    bundle = load_bundle(result.run_dir)
    n_users, n_movies = bundle.manifest.n_users, bundle.manifest.n_movies
    users, movies = np.divmod(np.arange(n_users * n_movies), n_movies)
    keras_pred = saved.predict({"user": users.astype(np.int32), "movie": movies.astype(np.int32)}, verbose=0)
    served, _ = Recommender(bundle).scorer.predict(users, movies)
    np.testing.assert_allclose(served, np.clip(keras_pred, 0.5, 5.0), atol=1e-4)
