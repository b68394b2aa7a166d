"""The low-rank EASE ranker the trainer fits next to the rating model (training/ranker.py)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from helpers import real_data_dir, real_data_skip_reason

from movierec.artifacts import load_bundle
from movierec.data import RatingsData
from training.metrics import ranking_at_k
from training.ranker import (
    RANKER_ARRAYS,
    EaseWeights,
    choose_l2,
    fit_ease_ranker,
    interactions,
    rank_users,
    top_singular,
)


def _dense_ease(x: np.ndarray, l2: float) -> np.ndarray:
    """Steck's closed form: B = I - P / diag(P) with P = (XᵀX + λI)⁻¹, so that diag(B) = 0."""
    p = np.linalg.inv(x.T @ x + l2 * np.eye(x.shape[1]))
    return np.eye(x.shape[1]) - p / np.diag(p)


def _tiny_binary(seed: int = 0, n_users: int = 40, n_movies: int = 30) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = (rng.random((n_users, n_movies)) < 0.3).astype(np.float64)
    return np.nonzero(x)


@pytest.mark.parametrize("l2", [0.5, 5.0, 50.0])
@pytest.mark.parametrize(("n_users", "n_movies"), [(40, 30), (30, 40)])  # movie-side and user-side Gram
def test_full_rank_low_rank_form_equals_dense_ease(l2: float, n_users: int, n_movies: int) -> None:
    users, movies = _tiny_binary(n_users=n_users, n_movies=n_movies)
    x = interactions(users, movies, n_users, n_movies)
    dense = x.toarray()
    expected = dense @ _dense_ease(dense, l2)
    weights = EaseWeights.from_spectrum(top_singular(x, rank=n_movies), l2)
    unrated = dense == 0
    got_unrated = weights.unrated_scores(x)
    np.testing.assert_allclose(got_unrated[unrated], expected[unrated], rtol=1e-6, atol=1e-12)
    # Rated movies: the same low-rank part plus the self weight 1 - 1/(λ d) (B's zero diagonal taken out).
    np.testing.assert_allclose(weights.scores(x), expected, rtol=1e-6, atol=1e-12)
    self_weight = 1.0 - 1.0 / (l2 * weights.diag)
    np.testing.assert_allclose(
        (got_unrated + self_weight)[~unrated], expected[~unrated], rtol=1e-6, atol=1e-12
    )
    # d = diag(P) of the dense inverse.
    p = np.linalg.inv(dense.T @ dense + l2 * np.eye(n_movies))
    np.testing.assert_allclose(weights.diag, np.diag(p), rtol=1e-9)


def test_top_singular_agrees_with_a_dense_svd() -> None:
    users, movies = _tiny_binary(seed=4, n_users=30, n_movies=50)
    x = interactions(users, movies, 30, 50)
    s = np.linalg.svd(x.toarray(), compute_uv=False)
    spectrum = top_singular(x, rank=10)
    np.testing.assert_allclose(spectrum.s, s[:10], rtol=1e-9)
    np.testing.assert_allclose(spectrum.factors.T @ spectrum.factors, np.eye(10), atol=1e-9)


def test_the_sparse_svd_path_of_large_data_agrees_with_a_dense_svd(monkeypatch: pytest.MonkeyPatch) -> None:
    # Both sides above the Gram limit, as at ml-25m size: the PROPACK path.
    import training.ranker

    monkeypatch.setattr(training.ranker, "GRAM_MAX_SIDE", 20)
    users, movies = _tiny_binary(seed=5, n_users=60, n_movies=45)
    x = interactions(users, movies, 60, 45)
    s = np.linalg.svd(x.toarray(), compute_uv=False)
    spectrum = top_singular(x, rank=12)
    np.testing.assert_allclose(spectrum.s, s[:12], rtol=1e-7)
    np.testing.assert_allclose(spectrum.factors.T @ spectrum.factors, np.eye(12), atol=1e-7)


def test_stored_arrays_are_float32_and_score_like_the_math() -> None:
    users, movies = _tiny_binary(seed=1)
    arrays = fit_ease_ranker(users, movies, 40, 30, rank=8, l2=5.0)
    assert set(arrays) == set(RANKER_ARRAYS)
    assert all(a.dtype == np.float32 for a in arrays.values())
    assert arrays["ranker_factors"].shape == (30, 8) and arrays["ranker_scale"].shape == (8,)
    assert arrays["ranker_diag"].shape == (30,) and arrays["ranker_prior"].shape == (30,)
    assert (arrays["ranker_scale"] > 0).all() and (arrays["ranker_diag"] > 0).all()
    # The prior is the score of the average history.
    x = interactions(users, movies, 40, 30)
    mean = np.asarray(x.mean(axis=0)).ravel()
    v, scale, d = (arrays[k].astype(np.float64) for k in ("ranker_factors", "ranker_scale", "ranker_diag"))
    np.testing.assert_allclose(arrays["ranker_prior"], ((mean @ v) * scale) @ (v / d[:, None]).T, rtol=1e-4)


def test_ranking_at_k_matches_the_bench_definitions() -> None:
    scores = np.array([[0.9, 0.8, 0.1, -np.inf], [0.1, 0.2, 0.3, 0.4]])
    relevant = np.array([[False, True, False, True], [False, False, False, False]])
    ndcg, recall, top = ranking_at_k(scores, relevant, k=2)
    assert top[0].tolist() == [0, 1] and top[1].tolist() == [3, 2]
    # One hit at rank 2 of two relevant (the -inf one is no candidate but still counts as relevant here).
    assert ndcg[0] == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))
    assert recall[0] == pytest.approx(0.5)
    assert np.isnan(ndcg[1]) and np.isnan(recall[1])


def test_choose_l2_scores_every_candidate() -> None:
    users, movies = _tiny_binary(seed=2, n_users=60, n_movies=40)
    rng = np.random.default_rng(3)
    is_val = rng.random(len(users)) < 0.2
    validation = (users[is_val], movies[is_val], np.full(int(is_val.sum()), 4.5, np.float32))
    best, scores = choose_l2(users[~is_val], movies[~is_val], 60, 40, validation, rank=40, grid=(1.0, 10.0))
    assert set(scores) == {1.0, 10.0} and best == max(scores, key=lambda k: scores[k])
    assert all(0.0 <= v <= 1.0 for v in scores.values())


def test_train_run_writes_the_ranker(tiny_train_result) -> None:
    result = tiny_train_result
    bundle = load_bundle(result.run_dir)
    ranker = bundle.manifest.ranker
    assert ranker is not None and ranker["kind"] == "ease_lowrank"
    n_movies, rank = bundle.manifest.n_movies, ranker["rank"]
    assert bundle.arrays["ranker_factors"].shape == (n_movies, rank)
    assert bundle.arrays["ranker_scale"].shape == (rank,)
    assert bundle.arrays["ranker_diag"].shape == (n_movies,)
    assert bundle.arrays["ranker_prior"].shape == (n_movies,)
    assert (ranker["like_threshold"], ranker["like_temperature"]) == (3.5, 0.6)
    assert float(ranker["l2"]) in {float(k) for k in ranker["validation"]}
    assert ranker["fitted_on"] == "all ratings (refit)"
    assert 0.0 <= bundle.manifest.metrics["ndcg@10"] <= 1.0
    assert 0.0 <= bundle.manifest.metrics["recall@10"] <= 1.0


def test_no_ranker_writes_none(tiny_ratings: RatingsData, tmp_path: Path) -> None:
    from conftest import tiny_train_config

    from training.config import RankerConfig
    from training.pipeline import train_run

    config = tiny_train_config().model_copy(update={"ranker": RankerConfig(enabled=False), "refit": False})
    result = train_run(tiny_ratings, config, tmp_path, verbose=0)
    bundle = load_bundle(result.run_dir)
    assert bundle.manifest.ranker is None and result.ranker is None
    assert not set(RANKER_ARRAYS) & set(bundle.arrays)
    assert "ndcg@10" not in bundle.manifest.metrics


def test_load_rejects_ranker_arrays_that_do_not_match(tiny_bundle_dir: Path, tmp_path: Path) -> None:
    import json
    import shutil

    from movierec.artifacts import MANIFEST, SCORING_FILE, sha256_file
    from movierec.errors import ArtifactError

    run = tmp_path / "run"
    shutil.copytree(tiny_bundle_dir, run)
    with np.load(run / SCORING_FILE) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["ranker_scale"] = arrays["ranker_scale"][:-1]
    del arrays["ranker_prior"]
    np.savez(run / SCORING_FILE, **arrays)  # type: ignore[arg-type]
    manifest = json.loads((run / MANIFEST).read_text())
    manifest["files"][SCORING_FILE] = {
        "sha256": sha256_file(run / SCORING_FILE),
        "bytes": (run / SCORING_FILE).stat().st_size,
    }
    (run / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"ranker_scale has shape .*lacks ranker_prior"):
        load_bundle(run)


# ---- real data --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ease_ranks_heldout_ml_latest_small() -> None:
    """Held-out EASE NDCG@10 >= 0.27 (the prototype: 0.2855 at full rank), few obscure movies, no one hit."""
    data_dir = real_data_dir()
    if data_dir is None:
        pytest.skip(real_data_skip_reason())
    from movierec.data import load_ratings
    from movierec.split import split_mask
    from training.config import TrainConfig
    from training.fitted import Indexed
    from training.pipeline import carve_validation

    data = load_ratings(data_dir)
    config = TrainConfig()
    mask = split_mask(data.ratings, config.split, config.seed, config.train_fraction)
    train, heldout = data.ratings[mask], data.ratings[~mask]
    train_all = Indexed.from_frame(train)
    n_users, n_movies = len(train_all.users), len(train_all.movies)
    fit_part, validation = carve_validation(train_all, config)
    started = time.perf_counter()
    l2, _ = choose_l2(
        fit_part.user_idx,
        fit_part.movie_idx,
        n_users,
        n_movies,
        validation,
        config.ranker.rank,
        config.ranker.l2_grid,
    )
    x = interactions(train_all.user_idx, train_all.movie_idx, n_users, n_movies)
    weights = EaseWeights.from_spectrum(top_singular(x, config.ranker.rank), l2)
    seconds = time.perf_counter() - started
    target = (
        train_all.users.index_of(heldout["user_id"].to_numpy()),
        train_all.movies.index_of(heldout["movie_id"].to_numpy()),
        heldout["rating"].to_numpy(np.float32),
    )
    report = rank_users(lambda users: weights.unrated_scores(x[users]), x, target)
    counts = np.bincount(train_all.movie_idx, minlength=n_movies)
    listed = report.lists.ravel()
    rare_share = float((counts[listed] < 20).mean())
    top_share = float(np.bincount(listed, minlength=n_movies).max() / report.n_users)
    summary = (
        f"L2 {l2}, NDCG@10 {report.ndcg:.4f}, rare {rare_share:.3f}, top {top_share:.3f}, {seconds:.1f} s"
    )
    assert report.ndcg >= 0.27, summary
    assert rare_share <= 0.05, summary
    assert top_share <= 0.35, summary


def test_cli_ranker_flags_and_default_model(tiny_ratings: RatingsData, tmp_path: Path, capsys) -> None:
    from training.__main__ import _parser, main

    assert _parser().parse_args(["train", "--data", "x"]).model == "bpmf"
    base = ["train", "--data", str(tiny_ratings.ratings_path.parent), "--model", "bias", "--epochs", "1"]
    base += ["--batch-size", "256", "--factors", "4", "--no-refit", "--quiet"]
    assert main([*base, "--output-dir", str(tmp_path / "a"), "--ranker-rank", "5"]) == 0
    out = capsys.readouterr().out
    bundle = load_bundle(tmp_path / "a" / "latest")
    assert bundle.manifest.ranker is not None and bundle.manifest.ranker["rank"] == 5
    assert bundle.arrays["ranker_factors"].shape == (bundle.manifest.n_movies, 5)
    assert f"L2 {bundle.manifest.ranker['l2']:g} chosen on validation NDCG@10" in out
    assert main([*base, "--output-dir", str(tmp_path / "b"), "--no-ranker"]) == 0
    assert "no ranker (--no-ranker)" in capsys.readouterr().out
    assert load_bundle(tmp_path / "b" / "latest").manifest.ranker is None
