"""Spark MLlib ALS as the peer at ml-25m size: same split, tuned on the same validation slice, same held-out rows.

    python bench/spark_als.py --data DIR --out bench/results/spark_als.json [--md FILE]
        [--ranks 10,20,50] [--regs 0.05,0.1,0.2,0.3] [--max-iter 10] [--tune-users 1.0]
        [--transfer parquet|arrow] [--master local[2]] [--driver-memory 8g]
    # ml-25m size on 2 cores: tune on a quarter of the users (the full grid on all of them is ~1 h of CPU)
    python bench/spark_als.py --data /tmp/synth-25m --tune-users 0.25 --out bench/results/spark_als.json

What a team with a Spark cluster would train instead of movierec (explicit ALS, `pip install -e ".[spark]"` and a
Java 17+ runtime). The comparison is made fair by construction:
- **Split**: the project's own `split_mask` (random, seed 42, 80% train) on the ratings read by the project's own
  reader, and the validation slice carved by `training.pipeline.carve_validation`, so Spark is tuned on exactly
  the rows movierec's early stopping sees and scored on exactly the rows movierec is scored on.
- **Tuning**: a grid of rank x regParam at a fixed maxIter (Spark's ALS has no early stopping), each point
  fitted on train minus the validation slice (or on a random fraction of its users, `--tune-users`) and scored on
  that slice; the best validation RMSE is refitted on the whole train split (as movierec's evaluated model is) and
  scored on held-out rows.
- **Scoring**: from the factor arrays Spark returns (an ALS prediction is exactly their dot product), clipped to
  the rating scale as movierec's outputs are; a pair with an id the fit never saw gets movierec's fallback for a
  model without learned biases: the global mean plus the known side's damped-mean offset
  (`training.metrics.damped_baselines`), so the RMSE covers every held-out row (Spark's `coldStartStrategy="nan"`
  would drop them; `"drop"` would shrink the denominator).
- **Cost**: the whole job runs as one subprocess; its wall time includes reading the CSV, the split, the
  hand-over to Spark (`--transfer`), every fit and the scoring. CPU seconds and peak resident memory are read from
  /proc for the whole process tree (the Python driver, the JVM and Spark's Python workers, summed), per phase;
  `wait4`'s figures for the driver are kept as a cross-check (the JVM is not its waited child).

`spark_peer()` runs it as a subprocess; `markdown_section()` turns its result into a report section, and
`bench/scale.py --spark-result FILE` puts it beside movierec's runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PYTHON = sys.executable
MIN_JAVA = 17  # Spark 4 runs on Java 17 and 21
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


class SparkUnavailableError(RuntimeError):
    """pyspark or a suitable Java runtime is missing; the message says what to install."""


# ---- environment ------------------------------------------------------------------------------------------


def java_major(java: Path) -> int | None:
    """Major version of a `java` binary (8 for "1.8.0_x", 17 for "17.0.15"); None when it does not run."""
    try:
        out = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=60, check=False
        ).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def find_java_home() -> Path:
    """A Java 17+ home: `JAVA_HOME` when set (and then it must be one), else `java` on PATH, else /usr/lib/jvm/*."""
    env = os.environ.get("JAVA_HOME")
    if env:
        version = java_major(Path(env) / "bin" / "java")
        if version is None or version < MIN_JAVA:
            raise SparkUnavailableError(
                f"JAVA_HOME={env} is not a Java {MIN_JAVA}+ runtime (found version {version}); "
                f"point it at one (e.g. /usr/lib/jvm/java-17-openjdk-amd64) or unset it"
            )
        return Path(env)
    candidates = []
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path).resolve().parents[1])
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        candidates += sorted(p for p in jvm.iterdir() if p.is_dir() and not p.is_symlink())
    for home in candidates:
        version = java_major(home / "bin" / "java")
        if version is not None and version >= MIN_JAVA:
            return home
    raise SparkUnavailableError(
        f"no Java {MIN_JAVA}+ runtime found (JAVA_HOME unset, none on PATH or in /usr/lib/jvm); "
        f"install one (Debian: apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
    )


def check_pyspark() -> str:
    """The installed pyspark's version, or SparkUnavailableError saying how to install it."""
    try:
        import pyspark
    except ImportError as exc:
        raise SparkUnavailableError(
            'pyspark is not installed: pip install -e ".[spark]" (about 455 MB, needs Java 17+)'
        ) from exc
    return str(pyspark.__version__)


# ---- measuring a process tree -----------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, float, int] | None:
    """(parent pid, CPU seconds incl. waited children, resident bytes) from /proc/PID/stat; None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    # fields[0] is state (stat field 3): ppid 4, utime 14, stime 15, cutime 16, cstime 17, rss 24
    cpu = sum(int(x) for x in fields[11:15]) / _CLK_TCK
    return int(fields[1]), cpu, int(fields[21]) * _PAGE


def tree_usage(root: int) -> tuple[float, int]:
    """CPU seconds and resident bytes of `root` and all its living descendants, summed."""
    stats = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            s = _stat(int(name))
            if s is not None:
                stats[int(name)] = s
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    cpu, rss, todo = 0.0, 0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            cpu += stats[pid][1]
            rss += stats[pid][2]
            todo += children.get(pid, [])
    return cpu, rss


class TreeSampler:
    """Samples a process tree's summed resident memory every `interval` seconds in a thread (peak per phase)."""

    def __init__(self, root: int, interval: float = 0.5) -> None:
        self.root, self.interval = root, interval
        self.peak = self.phase_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> tuple[float, int]:
        cpu, rss = tree_usage(self.root)
        self.peak, self.phase_peak = max(self.peak, rss), max(self.phase_peak, rss)
        return cpu, rss

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()


@dataclass
class Phases:
    """Wall seconds, tree CPU seconds and tree peak RSS of each named step of the job."""

    sampler: TreeSampler
    rows: dict[str, dict[str, float]] = field(default_factory=dict)

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        cpu0, _ = self.sampler.sample()
        self.sampler.phase_peak = 0
        t0 = time.perf_counter()
        yield
        wall = time.perf_counter() - t0
        cpu1, _ = self.sampler.sample()
        self.rows[name] = {
            "wall_s": round(wall, 1),
            "cpu_s": round(cpu1 - cpu0, 1),
            "peak_rss_mb": round(self.sampler.phase_peak / 2**20, 1),
        }
        print(f"  {name}: {self.rows[name]}", flush=True)


# ---- data: the trainer's split and validation slice ---------------------------------------------------------


@dataclass
class SplitData:
    """Train split (indexed the way the trainer indexes it), its validation mask and the held-out rows."""

    user_idx: NDArray[np.int32]  # train rows, in file order
    movie_idx: NDArray[np.int32]
    ratings: NDArray[np.float32]
    is_validation: NDArray[np.bool_]
    n_users: int
    n_movies: int
    heldout_user_idx: NDArray[np.int64]  # -1: not in the train split
    heldout_movie_idx: NDArray[np.int64]
    heldout_ratings: NDArray[np.float32]
    rating_scale: tuple[float, float]


def load_split(data_dir: Path, seed: int, train_fraction: float, validation_fraction: float) -> SplitData:
    """Ratings read, split and carved exactly as `python -m training train` does (same reader, same masks)."""
    from movierec.data import load_ratings
    from movierec.split import split_mask
    from training.config import TrainConfig
    from training.pipeline import Indexed, carve_validation

    data = load_ratings(data_dir)
    ratings = data.ratings
    train_mask = split_mask(ratings, "random", seed, train_fraction)
    train_all = Indexed.from_frame(ratings[train_mask])
    heldout = ratings[~train_mask]
    config = TrainConfig(seed=seed, train_fraction=train_fraction, validation_fraction=validation_fraction)
    fit_part, (val_u, val_m, _) = carve_validation(train_all, config)
    # carve_validation returns the two parts, not its mask: rebuild the mask by its rule and check it row for row.
    is_validation = (
        np.random.default_rng(config.seed + 1).random(len(train_all.ratings)) < config.validation_fraction
    )
    if not (
        np.array_equal(val_u, train_all.user_idx[is_validation])
        and np.array_equal(val_m, train_all.movie_idx[is_validation])
        and len(fit_part.ratings) == int((~is_validation).sum())
    ):
        raise RuntimeError("the validation mask no longer matches training.pipeline.carve_validation")
    return SplitData(
        user_idx=train_all.user_idx,
        movie_idx=train_all.movie_idx,
        ratings=train_all.ratings,
        is_validation=is_validation,
        n_users=len(train_all.users),
        n_movies=len(train_all.movies),
        heldout_user_idx=train_all.users.index_of(heldout["user_id"].to_numpy()),
        heldout_movie_idx=train_all.movies.index_of(heldout["movie_id"].to_numpy()),
        heldout_ratings=heldout["rating"].to_numpy(np.float32),
        rating_scale=data.rating_scale,
    )


# ---- scoring from ALS factors ----------------------------------------------------------------------------


@dataclass
class Factors:
    """A fitted ALS model as arrays indexed like the trainer's id maps; rows the fit never saw are unknown."""

    users: NDArray[np.float32]
    movies: NDArray[np.float32]
    user_known: NDArray[np.bool_]
    movie_known: NDArray[np.bool_]
    mean: float  # fallback: mean + damped offsets of the fit's ratings (training.metrics.damped_baselines)
    user_offset: NDArray[np.float32]
    movie_offset: NDArray[np.float32]

    def predict(
        self, user_idx: NDArray[Any], movie_idx: NDArray[Any], scale: tuple[float, float], clip: bool = True
    ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """Predictions (dot products; the fallback where an id is unknown) and which pairs fell back."""
        u = np.asarray(user_idx, dtype=np.int64)
        m = np.asarray(movie_idx, dtype=np.int64)
        safe_u, safe_m = np.where(u >= 0, u, 0), np.where(m >= 0, m, 0)
        u_known = (u >= 0) & self.user_known[safe_u]
        m_known = (m >= 0) & self.movie_known[safe_m]
        out = np.empty(len(u), dtype=np.float64)
        for start in range(0, len(u), 1_000_000):  # bounded temporaries at 5M pairs x rank 50
            sl = slice(start, start + 1_000_000)
            out[sl] = np.einsum("ij,ij->i", self.users[safe_u[sl]], self.movies[safe_m[sl]])
        fallback = ~(u_known & m_known)
        out[fallback] = (
            self.mean
            + np.where(u_known, self.user_offset[safe_u], 0.0)[fallback]
            + np.where(m_known, self.movie_offset[safe_m], 0.0)[fallback]
        )
        if clip:
            out = np.clip(out, *scale)
        else:  # the fallback is always inside the scale, as movierec's is
            out[fallback] = np.clip(out[fallback], *scale)
        return out, fallback


def rmse(predicted: NDArray[Any], actual: NDArray[Any]) -> float:
    diff = np.asarray(predicted, dtype=np.float64) - np.asarray(actual, dtype=np.float64)
    return float(np.sqrt(np.mean(diff**2)))


# ---- the Spark job ---------------------------------------------------------------------------------------


@dataclass
class Settings:
    """What the job runs: the grid, Spark's resources and the hand-over of the data."""

    ranks: list[int] = field(default_factory=lambda: [10, 20, 50])
    regs: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.2, 0.3])
    max_iter: int = 10
    tune_users: float = 1.0  # fraction of the train split's users the grid is fitted and scored on
    master: str = "local[2]"
    driver_memory: str = "8g"
    transfer: str = (
        "parquet"  # "parquet": write a file, Spark reads it (faster at 20M rows); "arrow": pandas -> Arrow
    )
    seed: int = 42
    train_fraction: float = 0.8
    validation_fraction: float = 0.1


def spark_session(settings: Settings, local_dir: Path) -> Any:
    """A local Spark session with Arrow hand-over on and the UI off; the JVM gets `driver_memory` of heap."""
    os.environ["JAVA_HOME"] = str(find_java_home())
    os.environ.setdefault("PYSPARK_PYTHON", PYTHON)
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master(settings.master)
        .appName("movierec-spark-als-peer")
        .config("spark.driver.memory", settings.driver_memory)
        .config("spark.driver.maxResultSize", "4g")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.local.dir", str(local_dir))
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.execution.arrow.pyspark.fallback.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    # ALS checkpoints its factors every checkpointInterval (10) iterations only with a directory set; without
    # it the lineage grows with maxIter and overflows the JVM stack by 20 iterations.
    spark.sparkContext.setCheckpointDir(str(local_dir / "checkpoints"))
    return spark


def jvm_live_heap_mb(spark: Any) -> int:
    """The JVM's heap in use right after a full GC, with the train split still cached: what the heap must hold."""
    runtime = spark.sparkContext._jvm.java.lang.Runtime.getRuntime()
    runtime.gc()
    return round((runtime.totalMemory() - runtime.freeMemory()) / 2**20)


def to_spark(spark: Any, split: SplitData, keep_users: NDArray[np.bool_], how: str, tmp: Path) -> Any:
    """The train split as a cached Spark DataFrame (u, m, r, val, tune), materialised (its time is Spark's)."""
    import pandas as pd

    frame = pd.DataFrame(
        {
            "u": split.user_idx,
            "m": split.movie_idx,
            "r": split.ratings,
            "val": split.is_validation,
            "tune": keep_users[split.user_idx],
        }
    )
    if how == "arrow":
        df = spark.createDataFrame(frame)
    elif how == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = tmp / "train.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
        df = spark.read.parquet(str(path))
    else:
        raise ValueError(f"unknown transfer {how!r}: arrow or parquet")
    df = df.cache()
    df.count()
    return df


def fit_factors(
    df: Any, rank: int, reg: float, settings: Settings, split: SplitData, rows: Any
) -> tuple[Factors, Any]:
    """Fit explicit ALS on `df`: its factors as arrays (fallback offsets from the same rows) and the Spark model."""
    from pyspark.ml.recommendation import ALS

    from training.metrics import damped_baselines

    als = ALS(
        rank=rank,
        regParam=reg,
        maxIter=settings.max_iter,
        userCol="u",
        itemCol="m",
        ratingCol="r",
        implicitPrefs=False,
        nonnegative=False,
        coldStartStrategy="nan",
        seed=settings.seed,
    )
    model = als.fit(df)
    users = np.zeros((split.n_users, rank), dtype=np.float32)
    movies = np.zeros((split.n_movies, rank), dtype=np.float32)
    user_known = np.zeros(split.n_users, dtype=bool)
    movie_known = np.zeros(split.n_movies, dtype=bool)
    for table, arr, known in (
        (model.userFactors, users, user_known),
        (model.itemFactors, movies, movie_known),
    ):
        pdf = table.toPandas()
        ids = pdf["id"].to_numpy(np.int64)
        arr[ids] = np.stack(list(pdf["features"])).astype(np.float32)
        known[ids] = True
    mean, user_offset, movie_offset = damped_baselines(
        split.user_idx[rows], split.movie_idx[rows], split.ratings[rows], split.n_users, split.n_movies
    )
    return Factors(users, movies, user_known, movie_known, mean, user_offset, movie_offset), model


def transform_gap(spark: Any, model: Any, factors: Factors, split: SplitData, n: int = 1000) -> float:
    """Largest |numpy score - Spark's `model.transform`| over `n` held-out pairs both sides know (a self-check)."""
    import pandas as pd

    u, m = split.heldout_user_idx, split.heldout_movie_idx
    safe_u, safe_m = np.where(u >= 0, u, 0), np.where(m >= 0, m, 0)
    known = np.flatnonzero((u >= 0) & (m >= 0) & factors.user_known[safe_u] & factors.movie_known[safe_m])[:n]
    pairs = pd.DataFrame(
        {"u": u[known].astype(np.int32), "m": m[known].astype(np.int32), "row": np.arange(len(known))}
    )
    spark_pred = model.transform(spark.createDataFrame(pairs)).toPandas().sort_values("row")["prediction"]
    ours, _ = factors.predict(u[known], m[known], split.rating_scale, clip=False)
    return float(np.max(np.abs(ours - spark_pred.to_numpy(np.float64)))) if len(known) else 0.0


def run_job(data_dir: Path, settings: Settings) -> dict[str, Any]:
    """The whole peer run in this process (`main` runs it as a subprocess to measure it)."""
    pyspark_version = check_pyspark()
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
    java_home = find_java_home()
    result: dict[str, Any] = {
        "settings": settings.__dict__,
        "pyspark": pyspark_version,
        "java_home": str(java_home),
        "java_major": java_major(java_home / "bin" / "java"),
    }
    with TreeSampler(os.getpid()) as sampler, tempfile.TemporaryDirectory(prefix="spark-als-") as tmp_name:
        tmp = Path(tmp_name)
        phase = Phases(sampler)
        started = time.perf_counter()
        with phase("load_and_split"):
            split = load_split(data_dir, settings.seed, settings.train_fraction, settings.validation_fraction)
            keep_users = np.random.default_rng(settings.seed + 2).random(split.n_users) < settings.tune_users
            fit_rows = ~split.is_validation & keep_users[split.user_idx]
            val_rows = split.is_validation & keep_users[split.user_idx]
        result["rows"] = {
            "train": len(split.ratings),
            "tune_fit": int(fit_rows.sum()),
            "tune_validation": int(val_rows.sum()),
            "heldout": len(split.heldout_ratings),
            "users": split.n_users,
            "movies": split.n_movies,
            "tune_users": int(keep_users.sum()),
        }
        with phase("start_spark"):
            spark = spark_session(settings, tmp / "local")
            result["jvm_max_heap_mb"] = round(
                spark.sparkContext._jvm.java.lang.Runtime.getRuntime().maxMemory() / 2**20
            )
        with phase(f"to_spark_{settings.transfer}"):
            train_df = to_spark(spark, split, keep_users, settings.transfer, tmp)
        grid: list[dict[str, Any]] = []
        with phase("tuning"):
            fit_df = train_df.filter(~train_df.val & train_df.tune).select("u", "m", "r").cache()
            fit_df.count()
            for rank in settings.ranks:
                for reg in settings.regs:
                    t0 = time.perf_counter()
                    cpu0, _ = sampler.sample()
                    factors, _ = fit_factors(fit_df, rank, reg, settings, split, fit_rows)
                    seconds = time.perf_counter() - t0
                    predicted, fallback = factors.predict(
                        split.user_idx[val_rows], split.movie_idx[val_rows], split.rating_scale
                    )
                    grid.append(
                        {
                            "rank": rank,
                            "reg": reg,
                            "validation_rmse": round(rmse(predicted, split.ratings[val_rows]), 5),
                            "n_fallback": int(fallback.sum()),
                            "fit_wall_s": round(seconds, 1),
                            "fit_cpu_s": round(sampler.sample()[0] - cpu0, 1),
                        }
                    )
                    print(f"    {grid[-1]}", flush=True)
            fit_df.unpersist()
        best = min(grid, key=lambda g: g["validation_rmse"])
        result["grid"], result["chosen"] = grid, {"rank": best["rank"], "reg": best["reg"]}
        # regParam chosen on the grid's edge: the optimum may lie beyond it, so widen the grid before quoting.
        result["chosen"]["reg_at_grid_edge"] = len(settings.regs) > 1 and best["reg"] in (
            min(settings.regs),
            max(settings.regs),
        )
        with phase("final_fit"):
            all_df = train_df.select("u", "m", "r")
            final, model = fit_factors(all_df, best["rank"], best["reg"], settings, split, slice(None))
        result["jvm_heap_live_mb"] = jvm_live_heap_mb(spark)
        result["max_gap_vs_spark_transform"] = transform_gap(spark, model, final, split)
        with phase("score_heldout"):
            predicted, fallback = final.predict(
                split.heldout_user_idx, split.heldout_movie_idx, split.rating_scale
            )
            raw, _ = final.predict(
                split.heldout_user_idx, split.heldout_movie_idx, split.rating_scale, clip=False
            )
            result["heldout"] = {
                "rmse": round(rmse(predicted, split.heldout_ratings), 5),
                "rmse_unclipped": round(rmse(raw, split.heldout_ratings), 5),
                "n_heldout": len(split.heldout_ratings),
                "n_fallback": int(fallback.sum()),
            }
        with phase("stop_spark"):
            spark.stop()
        result["phases"] = phase.rows
        result["total"] = {
            "wall_s": round(time.perf_counter() - started, 1),
            "cpu_s": round(sum(p["cpu_s"] for p in phase.rows.values()), 1),
            "peak_rss_mb": round(sampler.peak / 2**20, 1),
        }
    return result


# ---- running it measured, and reporting ------------------------------------------------------------------


def spark_peer(data_dir: Path, settings: Settings, log_path: Path) -> dict[str, Any]:
    """Run the job as a subprocess (output to `log_path`); its result plus the subprocess's own wall and rusage."""
    from bench.serving import machine

    planted = data_dir / "planted.json"
    with tempfile.TemporaryDirectory(prefix="spark-als-result-") as tmp:
        result_path = Path(tmp) / "result.json"
        cmd = [
            PYTHON,
            str(Path(__file__).resolve()),
            "--in-process",
            "--data",
            str(data_dir),
            "--out",
            str(result_path),
            "--settings",
            json.dumps(settings.__dict__),
        ]
        started = time.perf_counter()
        with log_path.open("wb") as log:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(proc.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise RuntimeError(f"the Spark ALS job exited with {code}; see {log_path}")
        result = json.loads(result_path.read_text())
    result["subprocess"] = {
        "wall_s": round(time.perf_counter() - started, 1),
        "cpu_s_waited": round(usage.ru_utime + usage.ru_stime, 1),
        "max_rss_mb_largest_waited_process": round(usage.ru_maxrss / 1024, 1),
    }
    result["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["machine"] = machine()
    result["data"] = str(data_dir)
    result["planted_rmse_floor"] = (
        json.loads(planted.read_text()).get("planted_rmse_floor") if planted.exists() else None
    )
    return result


def markdown_section(result: dict[str, Any], level: int = 2) -> list[str]:
    """A report section: the grid, the chosen setting, cost per phase and the held-out RMSE against the floor."""
    h = "#" * level
    s, rows, held = result["settings"], result["rows"], result["heldout"]
    tuned_on = (
        "the whole validation slice"
        if s["tune_users"] >= 1
        else f"a random {s['tune_users']:.0%} of the train split's users ({rows['tune_users']:,})"
    )
    lines = [
        f"{h} Peer: Spark MLlib ALS (pyspark {result['pyspark']}, Java {result['java_major']}, `{s['master']}`)",
        "",
        f"Explicit ALS, maxIter {s['max_iter']} (Spark has no early stopping), grid rank x regParam fitted on train "
        f"minus the trainer's validation slice and scored on that slice, tuned on {tuned_on} "
        f"({rows['tune_fit']:,} fit, {rows['tune_validation']:,} validation ratings); the chosen setting refitted on "
        f"the whole train split ({rows['train']:,} ratings) and scored on the same {held['n_heldout']:,} held-out "
        f"ratings as movierec ({held['n_fallback']:,} with an id unseen in train: global mean plus damped offset). "
        f"Data handed over by {s['transfer']}; driver heap {result.get('jvm_max_heap_mb')} MB.",
        "",
        "| rank | regParam | validation RMSE | fit wall s | fit CPU s |",
        "|---:|---:|---:|---:|---:|",
    ]
    for g in result["grid"]:
        mark = (
            " **(chosen)**"
            if (g["rank"], g["reg"]) == (result["chosen"]["rank"], result["chosen"]["reg"])
            else ""
        )
        lines.append(
            f"| {g['rank']} | {g['reg']} | {g['validation_rmse']:.4f}{mark} | {g['fit_wall_s']} | {g['fit_cpu_s']} |"
        )
    lines += [
        "",
        "| phase | wall s | CPU s (whole tree) | peak RSS MB (JVM + Python) |",
        "|---|---:|---:|---:|",
    ]
    for name, p in result["phases"].items():
        lines.append(f"| {name} | {p['wall_s']} | {p['cpu_s']} | {p['peak_rss_mb']} |")
    t = result["total"]
    lines += [
        f"| **total** | **{t['wall_s']}** | **{t['cpu_s']}** | **{t['peak_rss_mb']}** |",
        "",
        f"Held-out RMSE **{held['rmse']:.4f}** (clipped to the rating scale; unclipped {held['rmse_unclipped']:.4f}); "
        f"planted floor {result.get('planted_rmse_floor')}.",
    ]
    if result["chosen"].get("reg_at_grid_edge"):
        lines += [
            "",
            "**regParam was chosen on the grid's edge**: the best setting may lie beyond it; widen `--regs`.",
        ]
    return lines


def whole_run_wall_s(result: dict[str, Any]) -> float:
    """The whole command's wall time, interpreter start included, as bench/scale.py measures movierec's runs."""
    wall: float = result.get("subprocess", {}).get("wall_s", result["total"]["wall_s"])
    return wall


def parse_settings(args: argparse.Namespace) -> Settings:
    return Settings(
        ranks=[int(x) for x in args.ranks.split(",")],
        regs=[float(x) for x in args.regs.split(",")],
        max_iter=args.max_iter,
        tune_users=args.tune_users,
        master=args.master,
        driver_memory=args.driver_memory,
        transfer=args.transfer,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a MovieLens-layout directory")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/spark_als.json")
    parser.add_argument("--md", type=Path, default=None, help="also write the markdown section here")
    d = Settings()
    parser.add_argument("--ranks", default=",".join(str(x) for x in d.ranks))
    parser.add_argument("--regs", default=",".join(str(x) for x in d.regs))
    parser.add_argument("--max-iter", type=int, default=d.max_iter)
    parser.add_argument(
        "--tune-users", type=float, default=d.tune_users, help="fraction of users the grid uses (25M: 0.25)"
    )
    parser.add_argument("--master", default=d.master)
    parser.add_argument(
        "--driver-memory", default=d.driver_memory, help="the JVM heap (local mode: all of it)"
    )
    parser.add_argument("--transfer", choices=["arrow", "parquet"], default=d.transfer)
    parser.add_argument("--log", type=Path, default=None, help="the job's output (default: next to --out)")
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--settings", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        check_pyspark()
        find_java_home()
    except SparkUnavailableError as exc:
        print(f"spark_als: {exc}", file=sys.stderr)
        return 2
    if args.in_process:
        settings = Settings(**json.loads(args.settings)) if args.settings else parse_settings(args)
        args.out.write_text(json.dumps(run_job(args.data, settings), indent=1))
        return 0
    settings = parse_settings(args)
    log_path = args.log or args.out.with_suffix(".log")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(f"running the Spark ALS job; output in {log_path}", flush=True)
    result = spark_peer(args.data, settings, log_path)
    result["command"] = " ".join(["bench/spark_als.py", *(argv if argv is not None else sys.argv[1:])])
    args.out.write_text(json.dumps(result, indent=1))
    section = "\n".join(markdown_section(result)) + "\n"
    if args.md:
        args.md.write_text(section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
