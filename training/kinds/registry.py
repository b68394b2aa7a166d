"""The one map from a model kind's name (and solver) to its implementation. A new kind: one module plus one line."""

from __future__ import annotations

from movierec.errors import MovieRecError
from training.config import TrainConfig
from training.kinds.als import AlsKind
from training.kinds.base import ModelKind
from training.kinds.bpmf import BpmfKind
from training.kinds.keras_sgd import KerasSgdKind
from training.kinds.svdpp import SvdppKind

KINDS: dict[str, ModelKind] = {
    "dot": KerasSgdKind("dot", "factor"),
    "bias": KerasSgdKind("bias", "factor"),
    "nn": KerasSgdKind("nn", "mlp"),
    "svdpp": SvdppKind(),
    "bpmf": BpmfKind(),
}
# Kinds that `--solver als` fits by alternating least squares instead of SGD (training/als.py).
ALS_KINDS: dict[str, ModelKind] = {"bias": AlsKind("bias")}


def kind_named(name: str) -> ModelKind:
    """The kind registered as `name`; a clear error naming the known kinds otherwise."""
    try:
        return KINDS[name]
    except KeyError:
        raise MovieRecError(f"unknown model kind {name!r}; known kinds: {', '.join(KINDS)}") from None


def kind_for(config: TrainConfig) -> ModelKind:
    """The implementation that fits `config`: its kind's, or that kind's ALS fit under `solver="als"`."""
    if config.solver == "als":
        try:
            return ALS_KINDS[config.model.kind]
        except KeyError:
            raise MovieRecError(
                f"--solver als fits {', '.join(ALS_KINDS)}, not {config.model.kind!r}; "
                "drop --solver or choose one of those kinds"
            ) from None
    return kind_named(config.model.kind)
