"""SIGKILL of the API during writes loses nothing it acknowledged (issue 16's reliability target).

16 clients write ratings through uvicorn on 127.0.0.1 (each client its own users, so every pair has one
writer and its last acknowledged value is well defined); the server is killed with SIGKILL mid-stream; then
the database file is read directly. Every acknowledged write is there with its value, or with the value of
that client's one write that was in flight when the server died (committed, never acknowledged).
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from servers import start_uvicorn

from movierec.artifacts import load_bundle
from movierec.store import RatingStore

KEY = "durability-key"
CLIENTS = 16


@pytest.mark.slow
def test_sigkill_during_writes_loses_no_acknowledged_write(tiny_model_root: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ratings.db'}"
    env = {
        "MOVIEREC_MODEL_DIR": str(tiny_model_root / "latest"),
        "MOVIEREC_API_KEY": KEY,
        "MOVIEREC_DATABASE_URL": url,
    }
    movies = [int(m) for m in load_bundle(tiny_model_root / "latest").movie_ids.ids[:20]]
    proc, base = start_uvicorn(env)
    acknowledged: dict[tuple[int, int], float] = {}
    in_flight: dict[int, tuple[tuple[int, int], float]] = {}
    stop = threading.Event()

    def client(number: int) -> None:
        rng = np.random.default_rng(number)
        users = [10_000 + number * 10 + i for i in range(3)]  # this client's users only
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=10) as http:
            while not stop.is_set():
                pair = (int(rng.choice(users)), int(rng.choice(movies)))  # repeats of a pair included
                rating = float(rng.integers(1, 11)) / 2
                in_flight[number] = (pair, rating)
                try:
                    response = http.put(f"/users/{pair[0]}/ratings/{pair[1]}", json={"rating": rating})
                except httpx.TransportError:
                    return  # the server is gone
                if response.status_code == 200:
                    acknowledged[pair] = rating
                    del in_flight[number]

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert len(acknowledged) >= 50, "too few writes were acknowledged before the kill to tell anything"

    store = RatingStore(url)
    try:
        stored: dict[tuple[int, int], float] = {}
        for user in {pair[0] for pair in acknowledged}:
            history = store.user_history(user)
            assert history is not None
            stored.update({(user, r.movie_id): r.rating for r in history.ratings})
    finally:
        store.close()
    unacknowledged = dict(in_flight.values())
    for pair, rating in acknowledged.items():
        assert pair in stored, f"acknowledged write {pair} = {rating} was lost"
        assert stored[pair] in {rating, unacknowledged.get(pair)}, (pair, rating, stored[pair])
