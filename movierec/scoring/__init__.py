"""Vectorised scoring from exported arrays: predictions, whole-catalogue scores, top-k, fold-in.

One `Scorer` per *family* of forward pass (`factor`, `mlp`), each with a numpy implementation and a device
(keras.ops) one behind the same interface; `build_scorer` picks one at load time. Nothing here imports Keras
unless a device scorer is asked for.
"""

from __future__ import annotations

from typing import Any

from numpy.typing import NDArray

from movierec.errors import ArtifactError
from movierec.scoring.base import F32, I64, Scorer
from movierec.scoring.factor import FactorScorer
from movierec.scoring.head import Head, head_logit_offset
from movierec.scoring.mlp import MlpScorer
from movierec.scoring.topk import _top_k_above_sampled_threshold, top_k_indices

__all__ = [
    "F32",
    "I64",
    "SCORER_FAMILIES",
    "FactorScorer",
    "Head",
    "MlpScorer",
    "Scorer",
    "_top_k_above_sampled_threshold",
    "build_scorer",
    "head_logit_offset",
    "scorer_family",
    "top_k_indices",
]

SCORER_FAMILIES: dict[str, type[Scorer]] = {FactorScorer.name: FactorScorer, MlpScorer.name: MlpScorer}

DEVICES = ("cpu", "gpu")


def scorer_family(name: str) -> type[Scorer]:
    """The (CPU) scorer class of a family; an unknown family means an artifact this movierec cannot serve."""
    try:
        return SCORER_FAMILIES[name]
    except KeyError:
        raise ArtifactError(
            f"unknown scorer family {name!r} (this movierec knows {', '.join(SCORER_FAMILIES)}); "
            "upgrade movierec or retrain the model"
        ) from None


def _device_class(family: type[Scorer]) -> type[Scorer]:
    # Imported here: the device module is the only one that touches Keras.
    from movierec.scoring.device import DeviceFactorScorer, DeviceMlpScorer

    device_classes: dict[type[Scorer], type[Scorer]] = {
        FactorScorer: DeviceFactorScorer,
        MlpScorer: DeviceMlpScorer,
    }
    return device_classes[family]


def build_scorer(
    family: str,
    arrays: dict[str, NDArray[Any]],
    head: Head,
    baseline_user_bias: NDArray[Any],
    baseline_movie_bias: NDArray[Any],
    *,
    device: str = "cpu",
) -> Scorer:
    """The scorer of `family` on `device` ("cpu": numpy; "gpu": keras.ops, catalogue arrays on the device).

    Raises ArtifactError for an unknown family or arrays that lack what the family needs.
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, not {device!r}")
    cls = scorer_family(family)
    if device == "gpu":
        cls = _device_class(cls)
    return cls(arrays, head, baseline_user_bias, baseline_movie_bias)
