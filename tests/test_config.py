"""Per-kind training defaults and the no-side-features overlay of `TrainConfig.for_kind`."""

from __future__ import annotations

from typing import Any

import pytest

from training.config import KIND_DEFAULTS, KIND_DEFAULTS_WITHOUT_SIDE_FEATURES, TrainConfig


@pytest.mark.parametrize("kind", sorted(KIND_DEFAULTS_WITHOUT_SIDE_FEATURES))
def test_no_side_features_overlay(kind: str) -> None:
    overlay: dict[str, Any] = KIND_DEFAULTS_WITHOUT_SIDE_FEATURES[kind]
    config = TrainConfig.for_kind(kind, model_fields={"side_features": False})  # type: ignore[arg-type]
    assert config.model.side_features is False
    for name, value in overlay.get("model", {}).items():
        assert getattr(config.model, name) == value
    for name, value in overlay.items():
        if name != "model":
            assert getattr(config, name) == value
    # Untouched fields keep the kind's defaults; with side features the overlay does not apply.
    with_side = TrainConfig.for_kind(kind)  # type: ignore[arg-type]
    assert with_side.model.side_features is True
    defaults: dict[str, Any] = KIND_DEFAULTS[kind]
    for name, value in defaults.get("model", {}).items():
        assert getattr(with_side.model, name) == value


def test_explicit_overrides_win_over_the_overlay() -> None:
    config = TrainConfig.for_kind(
        "bias", model_fields={"side_features": False, "n_factors": 8}, batch_size=256, seed=7
    )
    assert (config.model.n_factors, config.batch_size, config.seed) == (8, 256, 7)
    assert config.model.side_features is False


def test_kinds_without_side_features_ignore_the_overlay() -> None:
    assert TrainConfig.for_kind("dot", model_fields={"side_features": False}) == TrainConfig.for_kind("dot")
