"""The library versions a run was made with: recorded in the manifest and in benchmark reports alike."""

from __future__ import annotations

import importlib
import platform
from collections.abc import Iterable

import numpy as np
import pandas as pd

from movierec import __version__


def library_versions(optional: Iterable[str] = ()) -> dict[str, str]:
    """Versions of movierec, Python, numpy, pandas, Keras (and its backend), TensorFlow or JAX as the backend.

    `optional` names further packages (e.g. "surprise" for the benchmark) recorded when they are installed.
    """
    import keras

    versions = {
        "movierec": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
    }
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    elif keras.backend.backend() == "jax":
        import jax

        versions["jax"] = jax.__version__
    for name in optional:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        versions[name] = str(getattr(module, "__version__", "unknown"))
    return versions
