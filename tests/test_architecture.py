"""Dependency direction: app -> movierec <- training. The service never imports the trainer."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(package: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
    return found


def test_app_never_imports_training() -> None:
    offending = {name for name in _imports("app") if name == "training" or name.startswith("training.")}
    assert not offending, f"app/ imports the trainer: {sorted(offending)}"


def test_core_imports_neither_app_nor_training_nor_fastapi() -> None:
    roots = {name.split(".")[0] for name in _imports("movierec")}
    assert not roots & {"app", "training", "fastapi", "starlette", "uvicorn"}


def test_serving_a_dot_or_bias_model_does_not_import_keras_or_tensorflow() -> None:
    code = (
        "import sys, app.main, app.state, movierec.recommender, movierec.artifacts;"
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
