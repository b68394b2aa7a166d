"""Faults the compose stack must survive, driven through the nginx lb by .ci/container-checks.sh.

    python .ci/fault-checks.py CHECK --base http://127.0.0.1:PORT --db CID [--api CID ...] [options]

CHECK is one of
  db-down       the db container stopped: PUT /users/{id}/ratings/{movie} answers 503 database_unavailable with
                Retry-After through the lb (model reads keep answering 200); after the db returns, that PUT was
                applied at most once (user_state.version unchanged, the old rating kept) and one successful PUT
                exactly once (version + 1: the lb never re-sent it).
  kill-replica  `podman kill` of one of the api replicas while a client loops GET /recommend/1 and /health and a
                writer loops PUTs: 0 failed GETs; failed PUTs are allowed but must reach the client as errors,
                and every PUT acknowledged with 200 is in the database afterwards.
  db-restart    the db stopped and started again during a stream of PUTs: 503 database_unavailable (with
                Retry-After) while it is down, 200 again once it is back with nothing else restarted, and every
                acknowledged rating in the database afterwards.
  rate-limit    a client over the low rate of a second lb (--base of that lb): 429 rate_limited with Retry-After
                and the service's JSON error shape, after the burst is spent.

Only 127.0.0.1 is contacted; every loop is bounded in requests and seconds. The database is read with psql
inside the db container (`podman exec`), independently of the service. Each check prints one `RESULT {json}`
line with its counts and exits 1 on a failed expectation.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any

import httpx

# Users the MovieLens import never holds (ml-latest-small has users 1..671, ml-25m 1..162541).
USER_BASE = 900_000
RATINGS = [0.5 * step for step in range(1, 11)]  # the MovieLens scale: 0.5 .. 5.0 in half stars


class CheckFailedError(Exception):
    pass


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailedError(message)


def psql(db: str, sql: str) -> list[list[str]]:
    """Rows of a query run inside the db container (local trust auth: no password anywhere)."""
    out = subprocess.run(
        ["podman", "exec", db, "psql", "-U", "movierec", "-d", "movierec", "-tA", "-F", "\t", "-c", sql],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def user_version(db: str, user_id: int) -> int:
    rows = psql(db, f"SELECT version FROM user_state WHERE user_id = {int(user_id)}")
    return int(rows[0][0]) if rows else 0


def stored_ratings(db: str, user_id: int) -> dict[int, float]:
    rows = psql(db, f"SELECT movie_id, rating FROM ratings WHERE user_id = {int(user_id)}")
    return {int(movie): float(rating) for movie, rating in rows}


def wait_db(db: str, timeout: float) -> float:
    """Seconds until pg_isready answers inside the db container."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        ready = subprocess.run(
            ["podman", "exec", db, "pg_isready", "-U", "movierec", "-d", "movierec"],
            capture_output=True,
            check=False,
            timeout=15,
        )
        if ready.returncode == 0:
            return time.monotonic() - started
        time.sleep(0.3)
    raise CheckFailedError(f"the db did not accept connections within {timeout:.0f}s of its start")


def podman(*args: str) -> None:
    subprocess.run(["podman", *args], check=True, capture_output=True, timeout=60)


def movie_ids(client: httpx.Client, want: int) -> list[int]:
    """Movies the served model knows (PUT refuses others): GET /movies with an empty query lists every movie,
    most-rated first, a page (at most MOVIEREC_MAX_K, 100 by default) at a time."""
    seen: list[int] = []
    while len(seen) < want:
        response = client.get("/movies", params={"q": "", "offset": len(seen), "limit": 100})
        response.raise_for_status()
        items = response.json()["items"]
        if not items:
            break
        seen.extend(item["movie_id"] for item in items)
    expect(len(seen) >= want, f"the model lists only {len(seen)} movies; need {want}")
    return seen[:want]


def error_info(response: httpx.Response) -> dict[str, Any]:
    """Status, `code` of the JSON error body, Retry-After and the replica that answered."""
    try:
        code = response.json().get("code")
    except ValueError:
        code = f"<not JSON: {response.text[:60]!r}>"
    return {
        "status": response.status_code,
        "code": code,
        "retry_after": response.headers.get("retry-after"),
        "upstream": response.headers.get("x-upstream"),
    }


def put_rating(client: httpx.Client, user: int, movie: int, rating: float) -> httpx.Response:
    return client.put(f"/users/{user}/ratings/{movie}", json={"rating": rating})


def check_503(info: dict[str, Any], codes: tuple[str, ...] = ("database_unavailable",)) -> None:
    expect(info["status"] == 503, f"expected 503, got {info}")
    expect(info["code"] in codes, f"expected code {' or '.join(codes)}, got {info}")
    ra = info["retry_after"]
    expect(ra is not None and ra.isdigit() and int(ra) > 0, f"503 without a positive Retry-After: {info}")


# ---- db-down ------------------------------------------------------------------------------------------


def db_down(args: argparse.Namespace, client: httpx.Client) -> dict[str, Any]:
    user = USER_BASE + 1
    movie = movie_ids(client, 1)[0]
    first = put_rating(client, user, movie, 4.0)
    expect(first.status_code == 200, f"PUT with the db up: {error_info(first)}")
    version_before = user_version(args.db, user)
    expect(version_before >= 1, f"user_state.version of {user} is {version_before} after a PUT")

    stopped_at = time.monotonic()
    podman("stop", "-t", "10", args.db)
    stop_s = time.monotonic() - stopped_at
    refused = put_rating(client, user, movie, 2.0)
    refused_info = error_info(refused)
    read = client.get("/recommend/1", params={"k": 5})
    podman("start", args.db)
    ready_s = wait_db(args.db, 60)

    check_503(refused_info)
    expect(
        refused_info["upstream"] is not None and "," not in refused_info["upstream"],
        f"the 503 went to more than one replica (X-Upstream {refused_info['upstream']}): the lb retried it",
    )
    expect(read.status_code == 200, f"GET /recommend/1 with the db down: {error_info(read)}")

    # Back: the service reconnects by itself; a bounded wait for its first successful read of the user.
    deadline = time.monotonic() + 30
    while True:
        page = client.get(f"/users/{user}/ratings")
        if page.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    expect(
        page.status_code == 200, f"GET /users/{user}/ratings 30s after the db returned: {error_info(page)}"
    )
    api_view = {item["movie_id"]: item["rating"] for item in page.json()["items"]}
    version_after_503 = user_version(args.db, user)
    expect(
        version_after_503 <= version_before + 1,
        f"the refused PUT was applied more than once: version {version_before} -> {version_after_503}",
    )
    expect(
        version_after_503 == version_before and api_view.get(movie) == 4.0,
        f"a PUT answered 503 was applied: version {version_before} -> {version_after_503}, rating "
        f"{api_view.get(movie)}",
    )

    ok = put_rating(client, user, movie, 2.5)
    expect(ok.status_code == 200, f"PUT after the db returned: {error_info(ok)}")
    version_after_ok = user_version(args.db, user)
    expect(
        version_after_ok == version_before + 1,
        f"a successful PUT moved the version {version_before} -> {version_after_ok} (exactly +1 expected)",
    )
    expect(stored_ratings(args.db, user).get(movie) == 2.5, "the successful PUT is not in the database")
    return {
        "put_while_down": refused_info,
        "get_while_down": read.status_code,
        "db_stop_s": round(stop_s, 1),
        "db_ready_s": round(ready_s, 1),
        "version": [version_before, version_after_503, version_after_ok],
    }


# ---- writer / reader loops ----------------------------------------------------------------------------


class Writer(threading.Thread):
    """PUTs of distinct movies for one user, paced, until stopped or out of movies; records every answer."""

    def __init__(
        self, base: str, headers: dict[str, str], user: int, movies: list[int], pause: float
    ) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=base, headers=headers, timeout=15)
        self.user, self.movies, self.pause = user, movies, pause
        self.stop = threading.Event()
        self.acked: dict[int, float] = {}  # movie -> rating answered 200
        self.failed: list[tuple[float, int, dict[str, Any]]] = []  # (time, movie, error info)
        self.first_ok_after: dict[float, float] = {}
        self.log: list[tuple[float, int]] = []  # (time, status)

    def run(self) -> None:
        for i, movie in enumerate(self.movies):
            if self.stop.is_set():
                break
            rating = RATINGS[i % len(RATINGS)]
            try:
                response = put_rating(self.client, self.user, movie, rating)
                info = error_info(response)
            except httpx.HTTPError as exc:  # the client sees it: that is allowed, recorded as an error
                info = {"status": 0, "code": type(exc).__name__, "retry_after": None, "upstream": None}
            now = time.monotonic()
            self.log.append((now, info["status"]))
            if info["status"] == 200:
                self.acked[movie] = rating
            else:
                self.failed.append((now, movie, info))
            time.sleep(self.pause)
        self.client.close()


class Reader(threading.Thread):
    """GET /recommend/1 and GET /health in turn, paced, until stopped or `limit` requests."""

    def __init__(self, base: str, limit: int, pause: float) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=base, timeout=15)
        self.limit, self.pause = limit, pause
        self.stop = threading.Event()
        self.sent = 0
        self.failures: list[str] = []
        self.upstreams: Counter[str] = Counter()
        self.retried = 0  # answered by a second replica after the first failed (X-Upstream "a, b")

    def run(self) -> None:
        while not self.stop.is_set() and self.sent < self.limit:
            path = "/recommend/1" if self.sent % 2 == 0 else "/health"
            self.sent += 1
            try:
                response = self.client.get(path, params={"k": 10} if path != "/health" else None)
                upstream = response.headers.get("x-upstream", "")
                if response.status_code != 200:
                    self.failures.append(f"{path}: {error_info(response)}")
                elif path == "/recommend/1" and len(response.json()["items"]) != 10:
                    self.failures.append(f"{path}: not 10 items")
                else:
                    self.upstreams[upstream.split(", ")[-1]] += 1
                    self.retried += "," in upstream
            except (httpx.HTTPError, ValueError) as exc:
                self.failures.append(f"{path}: {exc!r}"[:200])
            time.sleep(self.pause)
        self.client.close()


def verify_acked(db: str, writer: Writer) -> dict[str, Any]:
    stored = stored_ratings(db, writer.user)
    missing = {m: r for m, r in writer.acked.items() if stored.get(m) != r}
    expect(
        not missing, f"{len(missing)} PUTs answered 200 are not in the database: {list(missing.items())[:5]}"
    )
    failed_movies = {movie for _, movie, _ in writer.failed}
    return {
        "puts_sent": len(writer.log),
        "puts_acknowledged": len(writer.acked),
        "acknowledged_in_db": len(writer.acked) - len(missing),
        "puts_failed": len(writer.failed),
        "failed_but_applied": len(failed_movies & stored.keys()),
    }


# ---- kill-replica -------------------------------------------------------------------------------------


def kill_replica(args: argparse.Namespace, client: httpx.Client) -> dict[str, Any]:
    expect(len(args.api) >= 2, "kill-replica needs two api replicas (--api twice)")
    victim = args.api[-1]
    writer = Writer(args.base, dict(client.headers), USER_BASE + 2, movie_ids(client, 1000), pause=0.03)
    reader = Reader(args.base, limit=5000, pause=0.01)
    reader.start()
    writer.start()
    time.sleep(args.before)
    killed_at = time.monotonic()
    podman("kill", victim)
    # Past the lb's DNS cache (valid=5s) so that requests meet the dead address and then its absence.
    time.sleep(args.after)
    reader.stop.set()
    writer.stop.set()
    reader.join(30)
    writer.join(30)
    counts = verify_acked(args.db, writer)
    result = {
        "gets_sent": reader.sent,
        "gets_failed": len(reader.failures),
        "gets_retried_on_other_replica": reader.retried,
        "get_upstreams": dict(reader.upstreams),
        **counts,
        "put_errors": Counter(f"{i['status']} {i['code']}" for _, _, i in writer.failed),
        "put_errors_s_after_kill": sorted({round(t - killed_at, 1) for t, _, _ in writer.failed})[:20],
    }
    expect(not reader.failures, f"{len(reader.failures)} GETs failed: {reader.failures[:5]} ({result})")
    expect(reader.sent >= 100, f"the reader sent only {reader.sent} GETs")
    expect(counts["puts_acknowledged"] > 0, f"no PUT was acknowledged ({result})")
    bad = [i for _, _, i in writer.failed if i["status"] not in (0, 502, 503, 504)]
    expect(not bad, f"PUTs failed with unexpected answers: {bad[:5]}")
    return result


# ---- db-restart ---------------------------------------------------------------------------------------


def db_restart(args: argparse.Namespace, client: httpx.Client) -> dict[str, Any]:
    writer = Writer(args.base, dict(client.headers), USER_BASE + 3, movie_ids(client, 1000), pause=0.05)
    writer.start()
    time.sleep(args.before)
    t0 = time.monotonic()
    podman("stop", "-t", "10", args.db)
    stopped = time.monotonic()
    time.sleep(args.down)  # down long enough that writes certainly meet it
    podman("start", args.db)
    started = time.monotonic()
    ready_s = wait_db(args.db, 60)
    # Writes must work again by themselves: wait (bounded) for a few 200s after the db accepted connections.
    ready_at = time.monotonic()
    deadline = ready_at + 30
    while time.monotonic() < deadline and writer.is_alive():
        if sum(1 for t, s in writer.log if t > ready_at and s == 200) >= 10:
            break
        time.sleep(0.2)
    writer.stop.set()
    writer.join(30)
    counts = verify_acked(args.db, writer)
    ok_after = [t for t, s in writer.log if t > started and s == 200]
    failures = [i for _, _, i in writer.failed]
    result = {
        **counts,
        "put_errors": Counter(f"{i['status']} {i['code']} retry-after={i['retry_after']}" for i in failures),
        "db_stop_s": round(stopped - t0, 1),
        "db_down_s": round(started - stopped, 1),
        "db_ready_s": round(ready_s, 1),
        "first_200_s_after_start": round(ok_after[0] - started, 1) if ok_after else None,
    }
    expect(bool(failures), f"no PUT met the stopped database ({result})")
    for info in failures:
        check_503(info, ("database_unavailable", "database_busy"))
    expect(len(ok_after) >= 10, f"writes did not work again after the db returned ({result})")
    return result


# ---- rate-limit ---------------------------------------------------------------------------------------


def rate_limit(args: argparse.Namespace, client: httpx.Client) -> dict[str, Any]:
    # The lb may need a moment to start: a bounded wait for its first answer.
    deadline = time.monotonic() + 30
    while True:
        try:
            if client.get("/health").status_code in (200, 429):
                break
        except httpx.HTTPError:
            pass
        expect(time.monotonic() < deadline, "the rate-limited lb did not answer within 30s")
        time.sleep(0.5)
    time.sleep(2.0)  # let the bucket drain after the probes
    statuses: Counter[int] = Counter()
    limited: list[httpx.Response] = []
    writes_limited = 0
    started = time.monotonic()
    for i in range(args.requests):  # as fast as one client goes: far above the low rate
        response = client.get("/health") if i % 4 else put_rating(client, USER_BASE + 4, 1, 3.0)
        statuses[response.status_code] += 1
        if response.status_code == 429:
            limited.append(response)
            writes_limited += i % 4 == 0
    took = time.monotonic() - started
    expect(bool(limited), f"{args.requests} requests in {took:.1f}s got no 429: {dict(statuses)}")
    for response in limited:
        info = error_info(response)
        expect(info["code"] == "rate_limited", f"429 with code {info['code']}")
        expect(
            set(response.json()) == {"detail", "code"}, f"429 body is not the error shape: {response.text}"
        )
        expect(response.headers.get("content-type", "").startswith("application/json"), "429 not JSON")
        ra = info["retry_after"]
        expect(ra is not None and ra.isdigit() and int(ra) > 0, f"429 without a positive Retry-After: {info}")
    expect(statuses[200] > 0, f"no request passed (the burst): {dict(statuses)}")
    time.sleep(float(limited[-1].headers["retry-after"]) + 0.5)
    again = client.get("/health")
    expect(again.status_code == 200, f"after Retry-After the client is still refused: {error_info(again)}")
    return {
        "requests": args.requests,
        "seconds": round(took, 2),
        "statuses": dict(statuses),
        "writes_limited": writes_limited,
        "retry_after": limited[0].headers.get("retry-after"),
        "body": limited[0].json(),
        "after_retry_after": again.status_code,
    }


CHECKS = {
    "db-down": db_down,
    "kill-replica": kill_replica,
    "db-restart": db_restart,
    "rate-limit": rate_limit,
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("check", choices=list(CHECKS))
    parser.add_argument("--base", required=True, help="the lb, http://127.0.0.1:PORT")
    parser.add_argument("--db", default="", help="container id of the db service")
    parser.add_argument("--api", action="append", default=[], help="container id of an api replica")
    parser.add_argument("--key-file", default="", help="file holding MOVIEREC_API_KEY (kept off argv)")
    parser.add_argument("--before", type=float, default=2.0, help="seconds of traffic before the fault")
    parser.add_argument("--after", type=float, default=7.0, help="kill-replica: seconds of traffic after it")
    parser.add_argument("--down", type=float, default=3.0, help="db-restart: seconds the db stays stopped")
    parser.add_argument("--requests", type=int, default=60, help="rate-limit: requests sent back to back")
    args = parser.parse_args()
    expect(args.base.startswith("http://127.0.0.1:"), "only 127.0.0.1 is contacted")
    headers = {}
    if args.key_file:
        with open(args.key_file) as f:
            headers["Authorization"] = f"Bearer {f.read().strip()}"
    started = time.monotonic()
    with httpx.Client(base_url=args.base, headers=headers, timeout=15) as client:
        try:
            result = CHECKS[args.check](args, client)
        except CheckFailedError as exc:
            print(f"FAIL {args.check}: {exc}", file=sys.stderr)
            return 1
    result["check_s"] = round(time.monotonic() - started, 1)
    print("RESULT " + json.dumps({"check": args.check, **result}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
