"""The served model: loading, validation and the atomic swap behind /admin/reload."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from app.memory import release_freed_memory
from app.settings import Settings
from movierec.artifacts import LATEST, list_runs, load_bundle
from movierec.errors import ArtifactError
from movierec.new_movies import new_movie_scorer
from movierec.recommender import Recommender
from movierec.search import title_index

log = logging.getLogger(__name__)


class UnknownRunError(LookupError):
    """A reload named a run id that is not a completed run under the model root."""


@dataclass(frozen=True)
class LoadedModel:
    """An immutable served model; requests keep their reference, so a swap never changes one mid-flight."""

    recommender: Recommender
    device: str
    loaded_at: str
    # Time of one personalised top-10 list, measured at load: what decides list batching (app/lists.py).
    list_cost_ms: float = 0.0


def load_model(path: Path, settings: Settings, device: str) -> LoadedModel:
    """Load, validate and smoke-test an artifact; raises ArtifactError saying what is wrong."""
    bundle = load_bundle(path, verify_checksums=settings.verify_checksums)
    fold_in_l2 = settings.fold_in_l2 or float(bundle.manifest.config.get("fold_in_l2", 5.0))
    try:
        recommender = Recommender(
            bundle,
            cold_start_min_ratings=settings.cold_start_min_ratings,
            fold_in_l2=fold_in_l2,
            device=device,
        )
        _smoke_test(recommender)
        # Built here, at load (a reload runs in a worker thread), not by the first search on the event loop.
        title_index(recommender)
        new_movie_scorer(recommender)  # the genre/year prior of movies added after training, likewise
        _ = recommender.rating_step  # from the manifest; an older artifact's is derived here, not per request
    except ArtifactError:
        raise
    except Exception as exc:  # any failure here means the artifact cannot serve
        raise ArtifactError(f"artifact {bundle.path.name} failed its smoke test: {exc}") from exc
    return LoadedModel(
        recommender,
        device,
        datetime.now(UTC).isoformat(timespec="seconds"),
        list_cost_ms=_list_cost_ms(recommender),
    )


def _list_cost_ms(recommender: Recommender, repeats: int = 15) -> float:
    """The fastest of `repeats` top-10 lists (after a warm-up call), in milliseconds: the minimum, because
    workers start together and compete for the cores, which would inflate a median or mean."""
    user_id = int(recommender.bundle.user_ids.ids[0])
    recommender.recommend(user_id, 10)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        recommender.recommend(user_id, 10)
        best = min(best, time.perf_counter() - started)
    return best * 1e3


def _smoke_test(recommender: Recommender) -> None:
    """One prediction and one top-1 list, checked for sanity, before a model may serve."""
    user_id = int(recommender.bundle.user_ids.ids[0])
    movie_id = int(recommender.bundle.movie_ids.ids[0])
    preds = recommender.predict(np.array([user_id]), np.array([movie_id]))
    head = recommender.scorer.head
    value = float(preds.ratings[0])
    if not (np.isfinite(value) and head.min_rating <= value <= head.max_rating):
        raise ArtifactError(f"smoke prediction {value} is outside the rating scale")
    if len(recommender.recommend(user_id, 1, exclude_rated=False).movie_index) != 1:
        raise ArtifactError("smoke recommendation returned no movie")


class ModelHolder:
    """Holds the current model; the swap is one reference assignment.

    Every swap after start-up, an admin reload or the `latest` poller's (app/model_watch.py), holds
    `swap_lock` from deciding what to load to the assignment: swaps are serialised, so the model a 200 named
    is the one served until the next swap starts, never one a concurrent load finishes later.
    """

    def __init__(self) -> None:
        self._current: LoadedModel | None = None
        self.swap_lock = threading.Lock()
        # Where the followed link (MOVIEREC_MODEL_DIR) led when the served model was last chosen: the poller
        # swaps only when the link moves away from it, so an admin pin outlives polls until the next run.
        self.link_target: Path | None = None

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def set(self, model: LoadedModel) -> None:
        """Serve `model`; after a swap, the previous model's memory goes back to the system (app/memory.py)."""
        replaced = self._current is not None
        self._current = model
        if replaced:
            release_freed_memory()

    def reload(self, settings: Settings, device: str, run_id: str | None) -> tuple[str, str]:
        """Load `run_id` (default: what `latest` points at) from the model root and swap it in.

        Returns (previous run id, new run id). The old model keeps serving if anything fails.
        """
        root = settings.resolved_model_root
        with self.swap_lock:
            if run_id is None:
                latest = root / LATEST
                if not latest.exists():
                    raise ArtifactError(f"{LATEST} under the model root does not point at a run")
                path = latest
            else:
                if run_id not in list_runs(root):
                    raise UnknownRunError(f"no completed run {run_id!r} under the model root")
                path = root / run_id
            new = load_model(path, settings, device)
            previous = self._current.recommender.run_id if self._current else ""
            self.set(new)
            self.link_target = settings.model_dir.resolve()
            log.info("reloaded model: %s -> %s", previous, new.recommender.run_id)
            return previous, new.recommender.run_id
