"""The collector is kept off the loaded heap (app/memory.py), and a swap still frees the old model's cycles."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

from fastapi.testclient import TestClient

from app.main import create_app
from app.memory import freeze_loaded_heap, release_freed_memory, thaw_heap
from app.settings import Settings


def test_the_loaded_heap_is_frozen_while_serving_and_handed_back_at_shutdown(
    tiny_bundle_dir: Path, tmp_path: Path
) -> None:
    settings = Settings(model_dir=tiny_bundle_dir, database_url=f"sqlite:///{tmp_path}/m.db")
    with TestClient(create_app(settings)) as client:
        assert client.get("/recommend/1?k=3").status_code == 200
        assert gc.get_freeze_count() > 0  # the model, the app and the modules: out of every collection
    assert gc.get_freeze_count() == 0


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


def test_a_swap_collects_cycles_that_were_frozen_with_the_old_model() -> None:
    old_model = _Node()
    alive = weakref.ref(old_model)
    freeze_loaded_heap()
    try:
        del old_model
        gc.collect()
        assert alive() is not None  # frozen: a collection passes it by
        release_freed_memory()  # what a swap runs once the old model is dropped
        assert alive() is None
        assert gc.get_freeze_count() > 0  # and what is left is frozen again
    finally:
        thaw_heap()
