"""The trainer: metrics, the pipeline's manifest, the CLI (train, analyze, errors) and interrupted runs."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_train_config
from helpers import make_ratings

from movierec.artifacts import LATEST, TMP_PREFIX, list_runs, load_bundle, point_latest, read_manifest
from movierec.data import load_ratings
from movierec.hashing import sha256_file
from movierec.recommender import Recommender
from movierec.split import split_mask
from training.__main__ import main
from training.metrics import damped_baselines, mae, rmse

REPO_ROOT = Path(__file__).resolve().parents[1]


def _cli_env() -> dict[str, str]:
    # Unbuffered, so that progress lines reach the pipe as they are printed.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    for key in [k for k in env if k.startswith("MOVIEREC_")]:
        del env[key]
    return env


# ---- metrics ---------------------------------------------------------------------------------------------


def test_rmse_and_mae_match_a_hand_computation():
    predicted = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
    actual = np.array([1.5, 2.0, 2.0, 5.0], dtype=np.float32)
    # errors -0.5, 0, 1, -1: squares 0.25 + 0 + 1 + 1 = 2.25, mean 0.5625, root 0.75; |errors| mean 2.5/4
    assert rmse(predicted, actual) == pytest.approx(0.75, abs=1e-12)
    assert mae(predicted, actual) == pytest.approx(0.625, abs=1e-12)
    assert rmse(actual, actual) == 0.0 and mae(actual, actual) == 0.0


def test_damped_baselines_match_a_hand_computation():
    # (user, movie, rating): (0, 0, 4), (0, 1, 1), (1, 0, 5); damping 1.
    # mu = 10/3; b_m0 = ((4 - mu) + (5 - mu)) / (2 + 1) = 7/9; b_m1 = (1 - mu) / (1 + 1) = -7/6
    # residuals after movies: -1/9, -7/6, 8/9 -> b_u0 = (-1/9 - 7/6) / 3 = -23/54; b_u1 = (8/9) / 2 = 4/9
    mu, b_u, b_i = damped_baselines(
        np.array([0, 0, 1]),
        np.array([0, 1, 0]),
        np.array([4.0, 1.0, 5.0]),
        n_users=3,
        n_movies=3,
        damping=1.0,
    )
    assert mu == pytest.approx(10 / 3)
    np.testing.assert_allclose(b_i, [7 / 9, -7 / 6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(b_u, [-23 / 54, 4 / 9, 0.0], rtol=1e-6)
    assert b_u.dtype == b_i.dtype == np.float32


# ---- pipeline ----------------------------------------------------------------------------------------------


def test_make_ratings_is_a_valid_csv_layout(tiny_ratings):
    loaded = load_ratings(tiny_ratings.ratings_path.parent)
    pd.testing.assert_frame_equal(loaded.ratings, tiny_ratings.ratings)
    pd.testing.assert_frame_equal(loaded.movies, tiny_ratings.movies)
    assert (loaded.layout, loaded.rating_scale) == ("csv", (0.5, 5.0))


def test_manifest_describes_how_the_run_was_made(tiny_train_result, tiny_ratings):
    manifest = read_manifest(tiny_train_result.run_dir)
    ratings = tiny_ratings.ratings
    n_heldout = int((~split_mask(ratings, "random", 42)).sum())
    assert manifest.config == tiny_train_config().model_dump(mode="json")
    assert manifest.data["sha256"] == sha256_file(tiny_ratings.ratings_path)
    assert manifest.data["n_ratings"] == len(ratings)
    assert manifest.metrics["n_heldout"] == n_heldout
    assert 1 <= manifest.metrics["epochs"] <= 3
    assert manifest.refit is not None and manifest.refit["n_ratings"] == len(ratings)
    assert manifest.refit["epochs"] == manifest.metrics["epochs"]
    assert {"keras", "numpy", "python"} <= set(manifest.libraries)
    # The refitted model's head is centred on the mean of all ratings.
    assert manifest.head["offset"] == pytest.approx(float(ratings["rating"].mean()), abs=1e-5)
    assert "val_rmse" in manifest.model_extra["history"]
    # The metrics describe the model fitted on the train split; the served one is the refit on all ratings.
    assert manifest.scorer == "factor"
    n_train = len(ratings) - n_heldout
    assert manifest.evaluated_model == {
        "fitted_on": "train split",
        "n_ratings": n_train,
        "epochs": manifest.metrics["epochs"],
        "scored_on": "held-out split",
        "n_heldout": n_heldout,
    }
    assert manifest.served_model == {
        "fitted_on": "all ratings (refit)",
        "n_ratings": len(ratings),
        "epochs": manifest.metrics["epochs"],
        "is_evaluated_model": False,
    }


def test_heldout_metrics_are_the_keras_models_and_beat_the_global_mean(tiny_train_result, tiny_ratings):
    ratings = tiny_ratings.ratings
    heldout = ratings[~split_mask(ratings, "random", 42)]
    eval_model = tiny_train_result.eval_model
    metrics = tiny_train_result.manifest.metrics
    users = eval_model.indexed.users.index_of(heldout["user_id"].to_numpy())
    movies = eval_model.indexed.movies.index_of(heldout["movie_id"].to_numpy())
    known = (users >= 0) & (movies >= 0)
    assert known.sum() == len(heldout) - metrics["n_fallback"]
    keras_pred = eval_model.model.predict(
        {"user": users[known].astype(np.int32), "movie": movies[known].astype(np.int32)}, verbose=0
    )
    numpy_pred, _ = eval_model.scorer().predict(users, movies)
    np.testing.assert_allclose(numpy_pred[known], keras_pred, atol=1e-4)
    assert metrics["rmse"] == pytest.approx(rmse(numpy_pred, heldout["rating"].to_numpy()), abs=1e-9)
    train_mean = float(ratings[split_mask(ratings, "random", 42)]["rating"].mean())
    assert metrics["rmse"] < rmse(np.full(len(heldout), train_mean), heldout["rating"].to_numpy()) - 0.1


def test_the_scored_model_learns_the_whole_train_split_with_the_selected_schedule(
    tiny_train_result, tiny_ratings
):
    ratings = tiny_ratings.ratings
    n_train = int(split_mask(ratings, "random", 42).sum())
    selection, scored = tiny_train_result.selection_model, tiny_train_result.eval_model
    # Early stopping ran on train minus the validation slice; the scored model saw all of train, nothing more.
    assert len(selection.indexed.ratings) < n_train == len(scored.indexed.ratings)
    assert scored.learning_rates == selection.learning_rates[: selection.epochs]
    assert "val_rmse" in selection.history and "val_rmse" not in scored.history
    metrics = tiny_train_result.manifest.metrics
    assert metrics["train_seconds"] == pytest.approx(selection.seconds + scored.seconds, abs=1e-2)


def test_whole_batches_pad_with_zero_weight_rows_to_a_multiple_of_the_batch():
    from training.fitted import Indexed
    from training.kinds.keras_sgd import _whole_batches

    frame = pd.DataFrame(
        {"user_id": [1, 2, 3, 1, 2], "movie_id": [5, 5, 6, 7, 7], "rating": [1.0, 2, 3, 4, 5]}
    )
    train = Indexed.from_frame(frame)
    users, movies, ratings, weights = _whole_batches(train, 4, seed=0)
    assert len(ratings) == 8 and weights.tolist() == [1, 1, 1, 1, 1, 0, 0, 0]
    np.testing.assert_array_equal(ratings[:5], train.ratings)
    # The padding repeats real rows (valid indices), which carry no loss.
    assert set(zip(users[5:], movies[5:], ratings[5:], strict=True)) <= set(
        zip(train.user_idx, train.movie_idx, train.ratings, strict=True)
    )
    assert len(_whole_batches(train, 5, seed=0)[3]) == 5


# ---- CLI ---------------------------------------------------------------------------------------------------

SUMMARY = re.compile(
    r"model bias: (?P<epochs>\d+) epochs, held-out RMSE (?P<rmse>\d+\.\d{4}), MAE (?P<mae>\d+\.\d{4}) "
    r"on (?P<n>[\d,]+) ratings .*\nfit (?P<fit>[\d.]+) s \(choosing epochs on a validation slice [\d.]+ s, "
    r"then the whole train split\), no refit, total (?P<total>[\d.]+) s\n"
    r"artifact (?P<artifact>.+)$",
    re.MULTILINE,
)


def test_cli_train_prints_the_summary_and_writes_the_artifact(tiny_ratings, tmp_path):
    root = tmp_path / "models"
    cmd = [sys.executable, "-m", "training", "train", "--data", str(tiny_ratings.ratings_path.parent)]
    cmd += ["--model", "bias", "--output-dir", str(root), "--epochs", "2", "--batch-size", "256"]
    cmd += ["--factors", "8", "--quiet", "--no-refit"]
    proc = subprocess.run(
        cmd, cwd=REPO_ROOT, env=_cli_env(), capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "training bias on 2,500 ratings" in proc.stdout
    match = SUMMARY.search(proc.stdout)
    assert match, proc.stdout
    artifact = Path(match["artifact"])
    assert artifact.parent == root and (root / LATEST).resolve() == artifact.resolve()
    manifest = load_bundle(artifact).manifest
    assert manifest.refit is None
    assert manifest.config["epochs"] == 2 and manifest.config["model"]["n_factors"] == 8
    assert int(match["epochs"]) == manifest.metrics["epochs"]
    assert match["rmse"] == f"{manifest.metrics['rmse']:.4f}"
    assert match["mae"] == f"{manifest.metrics['mae']:.4f}"
    assert int(match["n"].replace(",", "")) == manifest.metrics["n_heldout"]
    assert float(match["total"]) >= float(match["fit"]) > 0


def test_cli_picks_the_keras_backend_before_keras_is_imported():
    # MOVIEREC_KERAS_BACKEND (TrainerSettings.keras_backend) can only take effect if Keras is not imported
    # before `train` exports KERAS_BACKEND: once imported, Keras has fixed its backend for the process.
    script = (
        "import os, sys\n"
        "os.environ.pop('KERAS_BACKEND', None)\n"
        "os.environ['MOVIEREC_KERAS_BACKEND'] = 'tensorflow'\n"
        "import training.__main__\n"
        "print('keras' not in sys.modules or os.environ.get('KERAS_BACKEND') == 'tensorflow')\n"
    )
    env = {k: v for k, v in _cli_env().items() if k != "KERAS_BACKEND"}
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "True", (
        "importing training.__main__ imports Keras (via training.config -> movierec.models) before the "
        "configured backend is exported, so MOVIEREC_KERAS_BACKEND is ignored"
    )


def _block(text: str, heading: str) -> list[tuple[float, str]]:
    """(bias, title) rows of one ranking block printed by `analyze`."""
    lines = text.split(heading, 1)[1].strip("\n").split("\n")
    rows = []
    for line in lines:
        m = re.match(r"^\s+([+-]\d+\.\d{3})\s+\d+ ratings\s+(.+)$", line)
        if not m:
            break
        rows.append((float(m[1]), m[2]))
    return rows


def test_cli_analyze_prints_bias_rankings_and_a_prediction(tiny_model_root, tiny_ratings, capsys):
    user_id, movie_id = (int(x) for x in tiny_ratings.ratings[["user_id", "movie_id"]].iloc[0])
    artifact = str(tiny_model_root / LATEST)
    code = main(
        ["analyze", artifact, "--limit", "5", "--most-rated", "40", "--predict", str(user_id), str(movie_id)]
    )
    out = capsys.readouterr().out
    assert code == 0

    bundle = load_bundle(tiny_model_root / LATEST)
    evaluated, served = bundle.manifest.evaluated_model, bundle.manifest.served_model
    assert (
        f"evaluated model: fitted on the train split ({evaluated['n_ratings']:,} ratings, "
        f"{evaluated['epochs']} epochs), held-out RMSE {bundle.manifest.metrics['rmse']:.4f} on the held-out split "
        f"({evaluated['n_heldout']:,} ratings)\n"
        f"served model:    fitted on all ratings (refit) ({served['n_ratings']:,} ratings, "
        f"{served['epochs']} epochs), scored by the 'factor' scorer\n"
    ) in out
    catalogue = bundle.catalogue.assign(bias=bundle.arrays["movie_bias"])
    n = len(catalogue)
    popular = catalogue.iloc[np.lexsort((np.arange(n), -catalogue["n_ratings"].to_numpy()))[:40]]
    low = _block(out, "5 lowest movie biases among the 40 most-rated:")
    high = _block(out, "5 highest movie biases among the 40 most-rated:")
    assert [t for _, t in low] == popular.nsmallest(5, "bias")["title"].tolist()
    assert [t for _, t in high] == popular.nlargest(5, "bias")["title"].tolist()
    assert [b for b, _ in low] == sorted(b for b, _ in low)
    assert [b for b, _ in high] == sorted((b for b, _ in high), reverse=True)

    expected = Recommender(bundle).predict(np.array([user_id]), np.array([movie_id])).ratings[0]
    title = catalogue.loc[catalogue["movie_id"] == movie_id, "title"].item()
    assert f"user {user_id}, movie {movie_id} ({title}): predicted rating {expected:.2f}\n" in out


def test_cli_analyze_marks_a_fallback_prediction(tiny_bundle_dir, capsys):
    # Movie 10 is known, user 999999 is not: the prediction is the fallback, and the output says so.
    assert main(["analyze", str(tiny_bundle_dir), "--predict", "999999", "10"]) == 0
    out = capsys.readouterr().out
    assert re.search(
        r"user 999999, movie 10 \(Synthetic Movie 0, The \(1950\)\): predicted rating \d\.\d\d \(fallback: unknown id\)",
        out,
    ), out


def test_cli_analyze_plot_writes_a_png(tiny_bundle_dir, tmp_path, capsys):
    path = tmp_path / "out.png"
    assert main(["analyze", str(tiny_bundle_dir), "--most-rated", "40", "--plot", str(path)]) == 0
    assert f"plot written to {path}" in capsys.readouterr().out
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


@pytest.mark.parametrize("case", ["missing", "empty", "bad-rows"])
def test_cli_train_on_bad_data_exits_2_with_a_message(case, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")  # `train` sets it if unset; keep the change test-local
    data = tmp_path / "data"
    if case != "missing":
        data.mkdir()
    if case == "bad-rows":
        (data / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,10,4.0,5\n1,11,banana,6\n")
        (data / "movies.csv").write_text("movieId,title,genres\n10,A (1999),Drama\n11,B (2000),Comedy\n")
    root = tmp_path / "models"
    code = main(["train", "--data", str(data), "--output-dir", str(root), "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2
    # Progress lines of the read may come first; the error is one "error: ..." message, no traceback.
    assert "Traceback" not in err and (err.startswith("error: ") or "\nerror: " in err), err
    message = err[err.index("error: ") :]
    assert str(data) in message
    if case == "bad-rows":
        assert "line 3" in message
    assert not root.exists() or not any(root.iterdir())


def test_interrupted_training_leaves_latest_untouched(tiny_bundle_dir, tmp_path):
    root = tmp_path / "models"
    root.mkdir()
    old = tiny_bundle_dir.name
    shutil.copytree(tiny_bundle_dir, root / old)
    point_latest(root, old)
    # Big enough that 50 epochs take far longer than it takes to see the first "Epoch" line and kill the run.
    big = make_ratings(2000, 1000, 200_000, seed=1, directory=tmp_path / "big")
    cmd = [sys.executable, "-m", "training", "train", "--model", "bias", "--epochs", "50", "--quiet"]
    cmd += ["--data", str(big.ratings_path.parent), "--output-dir", str(root)]
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=_cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen = []
    try:
        while True:
            try:
                line = lines.get(timeout=300)
            except queue.Empty:
                pytest.fail("no 'Epoch' line within 300 s:\n" + "".join(seen)[-3000:])
            if line is None:
                pytest.fail("training ended before it was killed:\n" + "".join(seen)[-3000:])
            seen.append(line)
            if line.startswith("Epoch "):
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert os.readlink(root / LATEST) == old
    assert load_bundle(root / LATEST).manifest.run_id == old
    assert list_runs(root) == [old]
    assert {p.name for p in root.iterdir() if not p.name.startswith(TMP_PREFIX)} == {old, LATEST}
