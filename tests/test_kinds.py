"""The kind registry: one entry per model kind, each naming the scorer family that serves it; the run itself
never branches on a kind's name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from movierec.model_config import MODEL_KINDS
from movierec.scoring import SCORER_FAMILIES
from training.kinds.base import ModelKind
from training.kinds.registry import KINDS, kind_named

ROOT = Path(__file__).resolve().parents[1]


def test_every_model_kind_is_registered_once_under_its_own_name():
    assert list(KINDS) == list(MODEL_KINDS)
    for name, kind in KINDS.items():
        assert isinstance(kind, ModelKind) and kind.name == name and kind_named(name) is kind


def test_each_kind_names_the_scorer_family_the_service_has_for_it():
    for kind in KINDS.values():
        assert kind.scorer_family in SCORER_FAMILIES


def test_only_the_sampler_skips_choosing_epochs_on_validation():
    assert {name for name, kind in KINDS.items() if not kind.chooses_epochs_on_validation} == {"bpmf"}


def test_an_unknown_kind_is_a_clear_error():
    from movierec.errors import MovieRecError

    with pytest.raises(MovieRecError, match="unknown model kind 'lstm'; known kinds: dot, bias"):
        kind_named("lstm")


def test_the_pipeline_never_names_a_kind():
    """`if config.model.kind == "bpmf"` and the like belong in the kind, not in the run."""
    tree = ast.parse((ROOT / "training" / "pipeline.py").read_text())
    literals = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)}
    assert not literals & set(MODEL_KINDS)
