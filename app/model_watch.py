"""Version polling: each API process follows `MOVIEREC_MODEL_DIR` (the `latest` link) by itself.

Like TF Serving's file-system polling, every `MOVIEREC_MODEL_POLL_SECONDS` the watcher resolves the model
directory; when the link has moved to another run since it last looked, it loads and validates that run in a
worker thread (never on the event loop) and swaps it in with one reference assignment, so requests in flight
keep the model they started with. A run that fails to load is logged and refused, the old model keeps serving,
and the watcher tries again when the link moves on. So a retrain reaches every replica behind a load
balancer with no admin call per replica and no failed request.

The watcher reacts to the link *moving*, not to "served != latest": a run pinned with POST /admin/reload stays
served until the next training run switches `latest`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import anyio
import anyio.to_thread

from app.middleware import Metrics
from app.settings import Settings
from app.state import ModelHolder, load_model

log = logging.getLogger(__name__)

PollResult = Literal["unchanged", "swapped", "refused"]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class WatchState:
    """What GET /model reports about the watcher: the last poll and the last change it acted on."""

    interval_s: float
    watching: str
    last_poll_at: str | None = None
    last_result: PollResult | None = None
    last_change_at: str | None = None
    last_error: str | None = None


class ModelWatcher:
    """Follows one model directory (normally the `latest` link) and swaps in the run it points at."""

    def __init__(
        self, holder: ModelHolder, settings: Settings, device: str, metrics: Metrics | None = None
    ) -> None:
        self.holder = holder
        self.settings = settings
        self.device = device
        self.metrics = metrics
        self.state = WatchState(interval_s=settings.model_poll_seconds, watching=str(settings.model_dir))
        current = holder.current
        if holder.link_target is None and current is not None:
            # The run the link pointed at when the served model was loaded: only a move away from it counts.
            holder.link_target = current.recommender.bundle.path

    def _target(self) -> Path:
        """Where the watched path leads now (a readlink; a dangling link resolves to its missing target)."""
        return self.settings.model_dir.resolve()

    def poll(self) -> PollResult:
        """One check, blocking (run it in a thread): swap in the run behind the link if the link moved.

        The whole check holds the holder's swap lock, as POST /admin/reload does: a reload answered while
        this poll loads a run either happened before it (and the link's move then wins, as documented) or
        waits for it (and wins), never is overwritten silently after its 200.
        """
        with self.holder.swap_lock:
            return self._poll_locked()

    def _poll_locked(self) -> PollResult:
        target = self._target()
        if target == self.holder.link_target:
            result: PollResult = "unchanged"
        else:
            self.holder.link_target = target  # a refused run is retried only when the link moves again
            previous = self.holder.current
            try:
                new = load_model(target, self.settings, self.device)
            except Exception as exc:  # any failure: keep serving the old model, say why
                log.error(
                    "model watch: %s -> %s cannot serve, keeping the old model: %s",
                    self.state.watching,
                    target,
                    exc,
                )
                self.state.last_error = f"{target.name}: {exc}"
                if self.metrics is not None:
                    self.metrics.reloads.labels("refused").inc()
                result = "refused"
            else:
                # Cleared before the swap: whoever sees the new run served also sees no error (the swap's
                # memory release after the assignment takes a moment).
                self.state.last_error = None
                self.holder.set(new)
                run_id = new.recommender.run_id
                log.info(
                    "model watch: %s moved; serving %s (was %s)",
                    self.state.watching,
                    run_id,
                    previous.recommender.run_id if previous is not None else "nothing",
                )
                if self.metrics is not None:
                    self.metrics.reloads.labels("ok").inc()
                    self.metrics.set_model(run_id, new.recommender.kind)
                result = "swapped"
            self.state.last_change_at = _now()
        self.state.last_poll_at = _now()
        self.state.last_result = result
        return result

    async def run(self) -> None:
        """Poll forever, one check at a time, each in its own thread so the event loop keeps serving."""
        limiter = anyio.CapacityLimiter(1)  # not the request threadpool: a busy server still polls on time
        while True:
            await anyio.sleep(self.state.interval_s)
            try:
                await anyio.to_thread.run_sync(self.poll, limiter=limiter)
            except Exception:  # a bug here must not end the polling of a long-running server
                log.exception("model watch: poll failed")


@contextlib.asynccontextmanager
async def watch_model(
    holder: ModelHolder, settings: Settings, device: str, metrics: Metrics | None = None
) -> AsyncIterator[ModelWatcher | None]:
    """Run a `ModelWatcher` in the background for the duration of the block (None when polling is off)."""
    if settings.model_poll_seconds <= 0:
        yield None
        return
    watcher = ModelWatcher(holder, settings, device, metrics)
    task = asyncio.create_task(watcher.run(), name="movierec-model-watch")
    log.info("model watch: polling %s every %gs", settings.model_dir, settings.model_poll_seconds)
    try:
        yield watcher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
