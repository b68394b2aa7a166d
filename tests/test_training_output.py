"""What the trainer prints when its output is a log file, how `make` passes it flags, and `analyze --plot`
(issue 14, items 4.7 and 4.8)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO_ROOT

from movierec.artifacts import load_bundle
from movierec.recommender import Recommender
from training.__main__ import main
from training.analyze import TITLE_WIDTH, figure, short_title
from training.native_log import distinct_lines

TERMINAL_CONTROL = re.compile(r"\x1b\[|\r")


@pytest.fixture(scope="module")
def train_log(tiny_ratings, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(stdout, stderr) of `python -m training train` writing to pipes, as `make train > log 2>&1` does."""
    out = tmp_path_factory.mktemp("train-log")
    done = subprocess.run(
        [
            *(sys.executable, "-m", "training", "train", "--data", str(tiny_ratings.ratings_path.parent)),
            *("--model", "bias", "--epochs", "2", "--no-ranker", "--output-dir", str(out)),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr


def test_a_log_file_gets_one_line_per_epoch_without_terminal_control(train_log: tuple[str, str]) -> None:
    stdout, stderr = train_log
    assert not TERMINAL_CONTROL.search(stdout), stdout[:500]
    assert not TERMINAL_CONTROL.search(stderr), stderr[:500]
    # verbose=2: one summary line per epoch (after "Epoch i/n" when n > 1) in each of the three fits; no bar.
    summaries = re.findall(r"^\d+/\d+ - .* - loss: [\d.]+ - rmse: ", stdout, re.MULTILINE)
    assert len(summaries) >= 3
    assert len(re.findall(r"^Epoch \d+/\d+$", stdout, re.MULTILINE)) <= len(summaries)
    assert "━" not in stdout


def test_the_three_fitting_phases_are_labelled(train_log: tuple[str, str]) -> None:
    _, stderr = train_log
    labels = re.findall(r"phase (\d)/3: (\w+)", stderr)
    assert labels == [("1", "fitting"), ("2", "fitting"), ("3", "refitting")], stderr
    assert re.search(
        r"phase 1/3: fitting bias on the validation carve \(\d+ ratings\) to choose epochs", stderr
    )
    assert re.search(r"evaluating on the test split \(\d+ held-out ratings\)", stderr)
    assert re.search(r"phase 3/3: refitting on all \d+ ratings", stderr)


def test_tensorflow_start_up_lines_are_printed_once(train_log: tuple[str, str]) -> None:
    _, stderr = train_log
    assert stderr.count("absl::InitializeLog()") <= 1, stderr
    assert stderr.count("oneDNN custom operations are on") <= 1, stderr


def test_repeated_native_lines_are_dropped_timestamps_aside() -> None:
    first = b"I0000 00:00:1795910593.810557   21045 port.cc:153] oneDNN custom operations are on.\n"
    again = b"I0000 00:00:1795910595.588666   21045 port.cc:153] oneDNN custom operations are on.\n"
    other = b"I0000 00:00:1795910593.886456   21045 cpu_feature_guard.cc:227] This TensorFlow binary\n"
    assert distinct_lines(first + other + again + b"\n" + b"\n") == first + other + b"\n" + b"\n"


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_train_passes_train_args_to_the_trainer(tmp_path: Path) -> None:
    done = subprocess.run(
        ["make", "-n", "train", f"DATA={tmp_path}", "TRAIN_ARGS=--epochs 3 --no-ranker"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    train = next(line for line in done.stdout.splitlines() if "-m training train" in line)
    assert train.endswith("--epochs 3 --no-ranker"), train


# ---- analyze --plot ------------------------------------------------------------------------------------------


def test_plot_into_a_missing_directory_creates_it(tiny_bundle_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "dir" / "x.png"
    assert main(["analyze", str(tiny_bundle_dir), "--most-rated", "40", "--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_unwritable_plot_path_is_one_error_line(
    tiny_bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert (
        main(["analyze", str(tiny_bundle_dir), "--most-rated", "40", "--plot", str(blocker / "x.png")]) == 2
    )
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write the plot to {blocker / 'x.png'}: ")
    assert "Traceback" not in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        (
            "Dr. Strangelove or: How I Learned to Stop Worrying and Love the Bomb (1964)",
            "Dr. Strangelove or: How I Learne… (1964)",
        ),
        ("Heat (1995)", "Heat (1995)"),
        (
            "A title without a year that is far too long to fit the axis",
            "A title without a year that is far too…",
        ),
    ],
)
def test_long_titles_are_cut_with_an_ellipsis_keeping_the_year(title: str, expected: str) -> None:
    assert short_title(title) == expected
    assert len(short_title(title)) <= TITLE_WIDTH


def test_the_plot_marks_the_chosen_epoch_and_labels_the_bias_axis(tiny_bundle_dir: Path) -> None:
    bundle = load_bundle(tiny_bundle_dir)
    chosen = bundle.manifest.metrics["epochs"]
    fig = figure(Recommender(bundle), bundle.manifest, most_rated=40)
    curves, biases = fig.axes
    marks = [line for line in curves.get_lines() if line.get_label() == f"chosen epoch ({chosen})"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [chosen, chosen]
    assert "bias" in biases.get_xlabel()
    assert all(len(label.get_text()) <= TITLE_WIDTH for label in biases.get_yticklabels())
