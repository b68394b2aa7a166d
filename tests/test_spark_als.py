"""bench/spark_als.py, the Spark ALS peer: the trainer's exact split and validation slice, movierec's fallback for
unseen ids, the process-tree meter, and (slow, when pyspark and Java 17+ are installed) one whole run."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from helpers import make_ratings, real_data_dir, real_data_skip_reason

from movierec.split import split_mask
from training.config import TrainConfig
from training.pipeline import Indexed, carve_validation

BENCH = Path(__file__).resolve().parents[1] / "bench" / "spark_als.py"


@pytest.fixture(scope="module")
def spark_als() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_spark_als", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_split_is_the_trainers(spark_als: ModuleType, tmp_path: Path) -> None:
    data = make_ratings(n_users=80, n_movies=120, n_ratings=3000, seed=3, directory=tmp_path)
    split = spark_als.load_split(tmp_path, seed=7, train_fraction=0.8, validation_fraction=0.1)
    ratings = data.ratings
    mask = split_mask(ratings, "random", 7, 0.8)
    train_all = Indexed.from_frame(ratings[mask])
    fit_part, (val_u, val_m, val_r) = carve_validation(
        train_all, TrainConfig(seed=7, train_fraction=0.8, validation_fraction=0.1)
    )
    assert np.array_equal(split.user_idx, train_all.user_idx)
    assert np.array_equal(split.ratings, train_all.ratings)
    assert np.array_equal(split.user_idx[split.is_validation], val_u)
    assert np.array_equal(split.movie_idx[split.is_validation], val_m)
    assert np.array_equal(split.ratings[split.is_validation], val_r)
    assert np.array_equal(split.movie_idx[~split.is_validation], fit_part.movie_idx)
    heldout = ratings[~mask]
    assert np.array_equal(split.heldout_ratings, heldout["rating"].to_numpy(np.float32))
    known = split.heldout_user_idx >= 0
    assert np.array_equal(
        train_all.users.id_of(split.heldout_user_idx[known]), heldout["user_id"].to_numpy()[known]
    )
    assert split.rating_scale == (0.5, 5.0)


def test_unknown_ids_get_movierecs_fallback(spark_als: ModuleType) -> None:
    factors = spark_als.Factors(
        users=np.array([[1.0, 2.0], [0.0, 0.0], [3.0, 3.0]], dtype=np.float32),
        movies=np.array([[1.0, 1.0], [0.5, -1.0]], dtype=np.float32),
        user_known=np.array([True, False, True]),  # user 1 had no rating in the fit
        movie_known=np.array([True, True]),
        mean=3.0,
        user_offset=np.array([0.2, -0.4, 0.1], dtype=np.float32),
        movie_offset=np.array([0.5, -0.3], dtype=np.float32),
    )
    u = np.array([0, 0, 2, 1, -1, -1])
    m = np.array([0, 1, 0, 0, 1, -1])
    got, fallback = factors.predict(u, m, (0.5, 5.0))
    # dot 3 | dot -1.5 -> clipped 0.5 | dot 6 -> 5 | unknown user: mean + movie 0 offset | mean + movie 1 | mean
    np.testing.assert_allclose(got, [3.0, 0.5, 5.0, 3.5, 2.7, 3.0], rtol=1e-6)
    assert fallback.tolist() == [False, False, False, True, True, True]
    raw, _ = factors.predict(u, m, (0.5, 5.0), clip=False)
    np.testing.assert_allclose(raw[:3], [3.0, -1.5, 6.0], rtol=1e-6)


def test_tree_usage_counts_children(spark_als: ModuleType) -> None:
    _, before = spark_als.tree_usage(spark_als.os.getpid())
    child = subprocess.Popen(
        [sys.executable, "-c", "b = bytearray(300 * 2**20); import sys; sys.stdin.read()"],
        stdin=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        grown = 0
        while time.monotonic() < deadline and grown < 250 * 2**20:
            time.sleep(0.1)
            grown = spark_als.tree_usage(spark_als.os.getpid())[1] - before
        assert grown >= 250 * 2**20
    finally:
        child.communicate(b"")


def test_bad_java_home_is_a_clear_error(
    spark_als: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(spark_als.SparkUnavailableError, match="not a Java 17"):
        spark_als.find_java_home()


def _spark_missing(spark_als: ModuleType) -> str | None:
    """Why the whole run cannot go here (pyspark not installed, no Java 17+), or None."""
    try:
        spark_als.check_pyspark()
        spark_als.find_java_home()
    except spark_als.SparkUnavailableError as exc:
        return str(exc)
    return None


@pytest.mark.slow
def test_whole_run_on_real_data(spark_als: ModuleType, tmp_path: Path) -> None:
    missing = _spark_missing(spark_als)
    if missing:
        pytest.skip(missing)
    data = real_data_dir()
    if data is None:
        pytest.skip(real_data_skip_reason())
    settings = spark_als.Settings(ranks=[8], regs=[0.1, 0.2], max_iter=5, driver_memory="1g")
    result = spark_als.spark_peer(data, settings, tmp_path / "job.log")

    ratings = spark_als.load_split(data, 42, 0.8, 0.1)
    unseen = (ratings.heldout_user_idx < 0) | (ratings.heldout_movie_idx < 0)
    held = result["heldout"]
    assert held["n_heldout"] == len(ratings.heldout_ratings)
    assert held["n_fallback"] == int(unseen.sum())  # every held-out row scored, unseen ids by the fallback
    assert 0.8 < held["rmse"] < 1.0
    assert held["rmse"] <= held["rmse_unclipped"]
    assert result["max_gap_vs_spark_transform"] < 1e-4  # our scoring is Spark's prediction
    assert [(g["rank"], g["reg"]) for g in result["grid"]] == [(8, 0.1), (8, 0.2)]
    best = min(result["grid"], key=lambda g: g["validation_rmse"])
    assert (result["chosen"]["rank"], result["chosen"]["reg"]) == (best["rank"], best["reg"])
    assert result["rows"]["tune_validation"] == int(ratings.is_validation.sum())
    assert result["total"]["peak_rss_mb"] > result["phases"]["load_and_split"]["peak_rss_mb"]
    assert result["total"]["cpu_s"] > 0 and result["subprocess"]["wall_s"] >= result["total"]["wall_s"]
    text = "\n".join(spark_als.markdown_section(result))
    assert f"Held-out RMSE **{held['rmse']:.4f}**" in text
