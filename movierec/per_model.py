"""Values derived once from a loaded model and kept exactly as long as the model is.

The service builds them at load (app.state.load_model), so no request pays for them, and a model swap drops
them with the old model: the title index (movierec.search) and the new-movie prior (movierec.new_movies).
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable
from typing import TypeVar

Model = TypeVar("Model")
Value = TypeVar("Value")


def per_model(build: Callable[[Model], Value]) -> Callable[[Model], Value]:
    """`build(model)` memoised per model object, weakly (the value goes with the model), built once under a lock."""
    values: weakref.WeakKeyDictionary[Model, Value] = weakref.WeakKeyDictionary()
    lock = threading.Lock()

    @functools.wraps(build)
    def value_of(model: Model) -> Value:
        value = values.get(model)
        if value is None:
            with lock:
                value = values.get(model)
                if value is None:
                    value = values[model] = build(model)
        return value

    return value_of
