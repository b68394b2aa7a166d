"""Stored-ratings benchmark: write throughput, read-after-write, and lists of users with stored ratings.

    python bench/ratings.py [--model-dir DIR] [--duration 10] [--concurrency 16] [--postgres-url URL]
        [--out bench/results/ratings]

One uvicorn worker serving an artifact (default: the default artifact trained on ml-latest-small, as
bench/serving.py does) with people's ratings in a fresh SQLite file and, with `--postgres-url` (default
$MOVIEREC_TEST_POSTGRES_URL), then in a fresh PostgreSQL database, measured in one run for each:
1. the ceiling (trivial JSON endpoint, same server), the baseline every figure is divided by;
2. `PUT /users/{id}/ratings/{movie}` from `--concurrency` clients for `--duration` s: writes/s, p50/p99;
3. read-after-write: a PUT, then at once `GET /recommend/{id}`; the time from the PUT returning to that list,
   and whether it already reflects the write (`user_vector` "fold_in"; it must, every time);
4. `GET /recommend/{id}` for users with stored ratings (vectors re-solved, cached) against trained users;
5. PostgreSQL only: how long after a write another process's version mirror holds it (`announcement_delay`).
Then, on a second server with a small per-user cache (`--storm-cache-size`), a write storm: `--storm-users`
distinct new users each write `--storm-ratings` ratings and read their list (which caches their vector); the
server's RSS and the cache's entries (its /metrics gauge) at checkpoints, so the memory the bound caps is seen
flattening once the cache is full (`--only-cache-storm` runs just this part).
Writes a markdown report with the raw figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.serving import ROOT, Scenario, Server, ServerConfig, machine, run_wrk, train_model

KEY = "bench-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


async def _read_after_write(base: str, users: list[int], movies: list[int]) -> dict[str, Any]:
    import httpx

    gaps, reflected = [], 0
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=AUTH) as client:
        for user, movie in zip(users, movies, strict=True):
            put = await client.put(f"/users/{user}/ratings/{movie}", json={"rating": 5.0})
            put.raise_for_status()
            written = time.perf_counter()
            body = (await client.get(f"/recommend/{user}", params={"k": 10})).json()
            gaps.append(time.perf_counter() - written)
            reflected += body.get("user_vector") == "fold_in" and movie not in {
                i["movie_id"] for i in body["items"]
            }
    ms = np.asarray(gaps) * 1e3
    return {
        "writes": len(users),
        "reflected_on_first_read": reflected,
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
    }


def _cache_entries(metrics: str) -> int:
    for line in metrics.splitlines():
        if line.startswith("movierec_user_vector_cache_entries "):
            return int(float(line.split()[1]))
    raise RuntimeError("no movierec_user_vector_cache_entries in /metrics")


async def _storm_users(
    base: str, users: list[int], movies: list[int], ratings: int, concurrency: int, seed: int
) -> None:
    """Each user writes `ratings` ratings, then reads their list (caching their re-solved vector)."""
    import httpx

    rng = np.random.default_rng(seed)
    plan = [(u, [int(m) for m in rng.choice(movies, ratings, replace=False)]) for u in users]
    queue: asyncio.Queue[tuple[int, list[int]]] = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            user, rated = queue.get_nowait()
            for movie in rated:
                (await client.put(f"/users/{user}/ratings/{movie}", json={"rating": 4.0})).raise_for_status()
            (await client.get(f"/recommend/{user}", params={"k": 10})).raise_for_status()

    async with httpx.AsyncClient(base_url=base, timeout=60, headers=AUTH) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))


def cache_storm(
    model_dir: Path,
    workdir: Path,
    port: int,
    *,
    users: int,
    cache_size: int,
    ratings: int,
    concurrency: int,
    checkpoints: int = 5,
) -> dict[str, Any]:
    """The write storm on its own server (MOVIEREC_USER_CACHE_SIZE=`cache_size`, a fresh SQLite file): RSS and
    cache entries before it and after each of `checkpoints` equal slices of `users` distinct new users."""
    import httpx

    movies = [int(m) for m in np.load(model_dir / "movie_ids.npy")]
    env = (
        ("MOVIEREC_API_KEY", KEY),
        ("MOVIEREC_DATABASE_URL", f"sqlite:///{workdir / 'storm.db'}"),
        ("MOVIEREC_USER_CACHE_SIZE", str(cache_size)),
    )
    first = 50_000_000  # far above MovieLens ids: every storm user is new to the model
    ids = list(range(first, first + users))
    rows: list[dict[str, Any]] = []
    with Server("bench.naive_app:create_bench_app", model_dir, ServerConfig(env=env), port) as server:

        def checkpoint(done: int, seconds: float) -> None:
            entries = _cache_entries(httpx.get(f"{server.base_url}/metrics", timeout=30).text)
            rows.append({"users": done, "seconds": round(seconds, 1), "entries": entries, **server.memory()})

        # One user first, so imports and caches of the write and read paths are warm before the baseline.
        asyncio.run(_storm_users(server.base_url, [first - 1], movies, ratings, 1, seed=0))
        started = time.perf_counter()
        checkpoint(0, 0.0)
        for i, part in enumerate(np.array_split(np.asarray(ids), checkpoints)):
            asyncio.run(
                _storm_users(server.base_url, part.tolist(), movies, ratings, concurrency, seed=i + 1)
            )
            checkpoint(rows[-1]["users"] + len(part), time.perf_counter() - started)
    full = next((r for r in rows if r["users"] >= 2 * cache_size), rows[-1])
    return {
        "users": users,
        "cache_size": cache_size,
        "ratings_per_user": ratings,
        "concurrency": concurrency,
        "checkpoints": rows,
        "max_entries": max(r["entries"] for r in rows),
        "rss_growth_mb": round(rows[-1]["rss_mb"] - rows[0]["rss_mb"], 1),
        # From the first checkpoint with the cache long full (2x its bound) to the end: what more users cost.
        "rss_growth_after_full_mb": round(rows[-1]["rss_mb"] - full["rss_mb"], 1),
        "full_at_users": full["users"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/ml-latest-small")
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--port", type=int, default=8133)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/ratings")
    parser.add_argument("--storm-users", type=int, default=5_000, help="distinct users of the write storm")
    parser.add_argument("--storm-cache-size", type=int, default=1_000, help="the storm server's user cache")
    parser.add_argument("--storm-ratings", type=int, default=3, help="ratings each storm user writes")
    parser.add_argument("--only-cache-storm", action="store_true", help="run only the write storm")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("MOVIEREC_TEST_POSTGRES_URL"),
        help="also measure on this (empty, migrated on start) PostgreSQL database; default "
        '$MOVIEREC_TEST_POSTGRES_URL, as `eval "$(.ci/start-postgres.sh)"` sets it',
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-ratings-") as tmp:
        workdir = Path(tmp)
        model_dir = args.model_dir.resolve() if args.model_dir else train_model(args.data, workdir)
        storm = cache_storm(
            model_dir,
            workdir,
            args.port + 1,
            users=args.storm_users,
            cache_size=args.storm_cache_size,
            ratings=args.storm_ratings,
            concurrency=args.concurrency,
        )
        if args.only_cache_storm:
            load = f"httpx, {args.concurrency} clients"
            _write({"meta": _meta(args, argv, "SQLite file (WAL)", load), "cache_storm": storm}, args.out)
            return 0
        backends = {
            "SQLite file (WAL)": throughput(
                model_dir, workdir, f"sqlite:///{workdir / 'ratings.db'}", args, np.random.default_rng(0)
            )
        }
        if args.postgres_url:
            with fresh_postgres_database(args.postgres_url) as url:
                backends["PostgreSQL"] = throughput(model_dir, workdir, url, args, np.random.default_rng(0))
                backends["PostgreSQL"]["announcement_delay"] = announcement_delay(url)
    result = {
        "meta": _meta(
            args,
            argv,
            " and ".join(backends),
            f"wrk 1 thread, {args.concurrency} connections, {args.duration} s per row",
        ),
        "backends": backends,
        "cache_storm": storm,
    }
    _write(result, args.out)
    return 0


@contextmanager
def fresh_postgres_database(server_url: str) -> Iterator[str]:
    """An empty database on the server of `server_url` (which must allow CREATE DATABASE), dropped after."""
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(server_url).set(drivername="postgresql")
    dsn = admin.render_as_string(hide_password=False)
    name = f"movierec_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def throughput(
    model_dir: Path, workdir: Path, database_url: str, args: argparse.Namespace, rng: np.random.Generator
) -> dict[str, Any]:
    """Ceiling, writes, read-after-write and lists of one server on the database at `database_url`."""
    users = np.load(model_dir / "user_ids.npy")
    movies = np.load(model_dir / "movie_ids.npy")
    env = (("MOVIEREC_API_KEY", KEY), ("MOVIEREC_DATABASE_URL", database_url))
    with Server("bench.naive_app:create_bench_app", model_dir, ServerConfig(env=env), args.port) as server:
        base = server.base_url
        writers = [int(u) for u in rng.choice(users, 200, replace=False)]
        trained = [int(u) for u in users if int(u) not in set(writers)][:200]
        ceiling_scenario = Scenario("ceiling", "ceiling", "GET", ["/_bench/ceiling"])
        run_wrk(base, ceiling_scenario, args.concurrency, 1, workdir)  # warm-up
        ceiling = run_wrk(base, ceiling_scenario, args.concurrency, args.duration, workdir)
        cpu = server.cpu_seconds()
        put_paths = [
            f"/users/{u}/ratings/{int(m)}"
            for u, m in zip(rng.choice(writers, 2000), rng.choice(movies, 2000), strict=True)
        ]
        # wrk pairs a random path with a random body: ratings of random pairs (repeats included).
        put_bodies = [json.dumps({"rating": float(r)}) for r in rng.integers(1, 11, 50) / 2]
        writes = run_wrk(
            base,
            Scenario("put", "PUT", "PUT", put_paths, put_bodies, AUTH),
            args.concurrency,
            args.duration,
            workdir,
        )
        writes["server_cpu_us_per_request"] = round(
            (server.cpu_seconds() - cpu) / writes["requests"] * 1e6, 1
        )
        after = asyncio.run(_read_after_write(base, writers[:100], [int(m) for m in rng.choice(movies, 100)]))
        stored_lists = Scenario("stored", "stored", "GET", [f"/recommend/{u}?k=10" for u in writers])
        trained_lists = Scenario("trained", "trained", "GET", [f"/recommend/{u}?k=10" for u in trained])
        run_wrk(base, stored_lists, args.concurrency, 1, workdir)  # vectors re-solved and cached
        stored = run_wrk(base, stored_lists, args.concurrency, args.duration, workdir)
        plain = run_wrk(base, trained_lists, args.concurrency, args.duration, workdir)
    return {
        "ceiling": ceiling,
        "writes": writes,
        "read_after_write": after,
        "recommend_stored_ratings_users": stored,
        "recommend_trained_users": plain,
    }


def announcement_delay(url: str, writes: int = 300) -> dict[str, Any]:
    """PostgreSQL: how long after a write through one process (a store here) another process's version mirror
    (movierec/store/versions.py) holds it: the window in which another replica still serves the previous
    version. Writes one at a time, each timed from its commit's acknowledgement to the mirror's new version."""
    from movierec.store import RatingStore

    writer, reader = RatingStore(url), RatingStore(url)
    try:
        writer.ensure_migrated()
        reader.start_version_mirror(10 * writes)
        mirror = reader.version_mirror
        assert mirror is not None
        deadline = time.monotonic() + 30
        while not mirror.following:
            if time.monotonic() > deadline:
                raise RuntimeError("the version mirror did not start following")
            time.sleep(0.01)
        delays = []
        for n in range(writes):
            user = 60_000_000 + n
            writer.put_rating(user, 1, 4.0)
            acknowledged = time.perf_counter()
            while mirror.get(user) is None:
                time.sleep(0)
            delays.append(time.perf_counter() - acknowledged)
    finally:
        writer.close()
        reader.close()
    ms = np.asarray(delays) * 1e3
    return {
        "writes": writes,
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "max_ms": round(float(ms.max()), 3),
    }


def _meta(args: argparse.Namespace, argv: list[str] | None, database: str, load: str) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "model": str(args.model_dir) if args.model_dir else "the default artifact trained on ml-latest-small",
        "database": database,
        "load": load,
        "command": " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
    }


def _storm_lines(storm: dict[str, Any]) -> list[str]:
    """The write storm's section: RSS and cache entries at each checkpoint."""
    return [
        f"Per-user cache under a write storm: {storm['users']:,} distinct new users each write "
        f"{storm['ratings_per_user']} ratings and read their list, {storm['concurrency']} at a time, against a "
        f"server whose cache holds at most {storm['cache_size']:,} vectors (its own uvicorn worker, a fresh "
        f"SQLite file). Entries never exceeded {storm['max_entries']:,}; RSS grew {storm['rss_growth_mb']:.1f} MB "
        f"over the storm, {storm['rss_growth_after_full_mb']:.1f} MB of it after {storm['full_at_users']:,} users "
        "(the cache long full).",
        "",
        "| users so far | s | cache entries | RSS MB |",
        "|---:|---:|---:|---:|",
        *(
            f"| {r['users']:,} | {r['seconds']:.1f} | {r['entries']:,} | {r['rss_mb']:.1f} |"
            for r in storm["checkpoints"]
        ),
        "",
    ]


def _write(result: dict[str, Any], out: Path) -> None:
    lines = [
        "# Stored-ratings benchmark",
        "",
        f"Run {result['meta']['date']} on {result['meta']['machine']}; {result['meta']['load']}; one uvicorn worker; "
        f"{result['meta']['database']}; model: {result['meta']['model']}. Command: `{result['meta']['command']}`.",
        "",
    ]
    for label, backend in result.get("backends", {}).items():
        lines += [f"## {label}", "", *_throughput_lines(backend)]
    if "cache_storm" in result:
        lines += ["## Write storm", "", *_storm_lines(result["cache_storm"])]
    lines += ["```json", json.dumps(result, indent=2), "```", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text("\n".join(lines))


def _throughput_lines(result: dict[str, Any]) -> list[str]:
    ceiling = result["ceiling"]["rps"]
    rows = [
        ("ceiling (trivial JSON endpoint)", result["ceiling"]),
        ("PUT /users/{id}/ratings/{movie}", result["writes"]),
        ("GET /recommend/{id}, users with stored ratings", result["recommend_stored_ratings_users"]),
        ("GET /recommend/{id}, trained users", result["recommend_trained_users"]),
    ]
    after = result["read_after_write"]
    return [
        "| run | req/s | × ceiling | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {label} | {r['rps']:,.0f} | {r['rps'] / ceiling:.2f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} |"
            for label, r in rows
        ),
        "",
        f"Read-after-write: {after['reflected_on_first_read']} of {after['writes']} writes were reflected by the first "
        f"`GET /recommend` after the `PUT` returned (p50 {after['p50_ms']:.2f} ms, p99 {after['p99_ms']:.2f} ms from "
        "the PUT returning to that list).",
        "",
        *(
            [
                f"Another process's view (PostgreSQL's version mirror, LISTEN/NOTIFY): over "
                f"{delay['writes']} writes one at a time, a second process held the new version p50 "
                f"{delay['p50_ms']:.2f} ms, p99 {delay['p99_ms']:.2f} ms, max {delay['max_ms']:.2f} ms after "
                "the write was acknowledged: the window in which another replica still serves the previous "
                "version.",
                "",
            ]
            if (delay := result.get("announcement_delay"))
            else []
        ),
    ]


if __name__ == "__main__":
    sys.exit(main())
