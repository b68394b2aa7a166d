"""The one map from a model kind's name to its implementation. A new kind: one module plus one line here."""

from __future__ import annotations

from movierec.errors import MovieRecError
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


def kind_named(name: str) -> ModelKind:
    """The kind registered as `name`; a clear error naming the known kinds otherwise."""
    try:
        return KINDS[name]
    except KeyError:
        raise MovieRecError(f"unknown model kind {name!r}; known kinds: {', '.join(KINDS)}") from None
