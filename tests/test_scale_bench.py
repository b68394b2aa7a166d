"""bench/scale.py's report and bench/synth_bound.py's attainable bound, on small data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from bench import scale
from bench.synth_bound import known_movies_bound
from movierec.data import load_ratings
from movierec.split import split_mask
from training.synth import SynthSpec, write_synthetic

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results" / "scale.json"


def test_the_bound_lies_between_the_planted_floor_and_what_the_biases_alone_reach(tmp_path: Path):
    spec = SynthSpec(n_users=400, n_movies=300, n_ratings=30_000, seed=3)
    write_synthetic(spec, tmp_path)
    bound = known_movies_bound(tmp_path)
    ratings = load_ratings(tmp_path).ratings
    train = split_mask(ratings, "random", 42)
    assert bound["n_heldout"] == int((~train).sum())
    # Knowing the movies but estimating each user from ~60 noisy ratings costs accuracy against the oracle...
    assert bound["known_movies_bound"] > bound["planted_floor_on_heldout"]
    # ...but recovers much of the planted interaction (sd 0.5) that a mean and biases cannot.
    frame = ratings[train]
    mean = frame["rating"].mean()
    user_offset = frame.groupby("user_id")["rating"].mean() - mean
    movie_offset = frame.groupby("movie_id")["rating"].mean() - mean
    held = ratings[~train]
    biases = (
        mean
        + held["user_id"].map(user_offset).fillna(0).to_numpy()
        + held["movie_id"].map(movie_offset).fillna(0).to_numpy()
    )
    biases_rmse = float(np.sqrt(np.mean((biases - held["rating"].to_numpy()) ** 2)))
    assert bound["known_movies_bound"] < biases_rmse - 0.05


def test_the_report_puts_every_run_and_the_peer_against_floor_and_bound(tmp_path: Path):
    results = tmp_path / "scale.json"
    shutil.copy(RESULTS, results)
    out = tmp_path / "scale.md"
    out.write_text("## Reading these figures\n\nkept by hand\n\n## GPU\n")
    assert scale.main(["--report-only", "--results", str(results), "--out", str(out)]) == 0
    report = out.read_text()
    recorded = json.loads(results.read_text())
    bound = recorded["data"]["bound"]["known_movies_bound"]
    assert f"Attainable bound {bound}" in report and "kept by hand" in report
    rows = [line for line in report.splitlines() if line.startswith("| ") and "held-out" not in line]
    for label, run in recorded["runs"].items():
        row = next(r for r in rows if r.startswith(f"| {label} |"))
        rmse = run["model"]["metrics"]["rmse"]
        assert f"{rmse:.4f}" in row and f"{rmse - bound:+.4f}" in row
    assert any(r.startswith("| Spark MLlib ALS (peer) |") for r in rows)
    assert report.count("## Reading these figures") == 1


def test_rating_passes_count_every_fit():
    model = {
        "history": {"val_rmse": [1.0, 0.9, 0.95]},  # the selection fit ran 3 passes over 90% of train
        "evaluated_model": {"n_ratings": 1_000, "epochs": 2},
        "refit": {"n_ratings": 1_250, "epochs": 2},
    }
    assert scale.rating_passes(model) == 900 * 3 + 1_000 * 2 + 1_250 * 2
