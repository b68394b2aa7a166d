"""API fuzzing: schemathesis generates requests from the service's own OpenAPI schema.

Every operation and method the schema documents is exercised with schema-valid and schema-violating data
(positive and negative generation) and every response is checked: no 5xx, a documented status code, a body
matching the documented schema, and the right content type. The example budget per operation is bounded so
that CI time stays bounded (see `MAX_EXAMPLES`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.main import create_app
from app.settings import Settings

TOKEN = "fuzz-admin-token"
# ~30 examples per operation x 12 operations keeps the file well under a minute on two cores.
MAX_EXAMPLES = 30
EXAMPLES_TRIED: dict[str, int] = {}
# Every other built-in check runs. `positive_data_acceptance` demands 2xx for every schema-valid request, but some
# limits depend on the loaded model and the deployment, not on the static schema: the genres of the catalogue,
# the rating scale of fold-in ratings, MOVIEREC_MAX_K / MAX_BATCH. Those answer a documented 422 whose body
# `response_schema_conformance` still validates.
EXCLUDED_CHECKS = [positive_data_acceptance]


@pytest.fixture(scope="module")
def fuzz_app(tiny_bundle_dir: Path) -> Iterator[FastAPI]:
    """The app with its lifespan run (the model loaded), serving the tiny bundle; reload has a token."""
    app = create_app(
        Settings(model_dir=tiny_bundle_dir, admin_token=TOKEN, max_batch=50, max_fold_in_ratings=50, max_k=20)
    )
    with TestClient(app):
        yield app


# The schema is read at import from an app that is never started (`schemathesis.pytest.from_fixture` breaks on
# pytest 9, and `from_asgi` would run the lifespan); the OpenAPI document does not depend on settings. Every
# call goes to `fuzz_app`, which serves the tiny bundle.
_SCHEMA_APP = create_app(Settings(model_dir=Path("schema-only")))
schema = schemathesis.openapi.from_dict(_SCHEMA_APP.openapi())
schema.app = _SCHEMA_APP


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms_to_its_schema(case: schemathesis.Case, fuzz_app: FastAPI) -> None:
    """No generated request, valid or not, gets a 5xx or a response outside its documented schema."""
    # Keyed by the documented operation: the unsupported-method phase sends e.g. TRACE to it as well.
    key = case.operation.label
    EXAMPLES_TRIED[key] = EXAMPLES_TRIED.get(key, 0) + 1
    headers = {"Authorization": f"Bearer {TOKEN}"} if case.path.startswith("/admin") else None
    response = case.call_and_validate(headers=headers, app=fuzz_app, excluded_checks=EXCLUDED_CHECKS)
    assert response.status_code < 500
    # The fuzzer may reload; whatever it did, a model must still be serving.
    assert fuzz_app.state.holder.current is not None


def test_fuzzing_covered_every_operation(fuzz_app: FastAPI) -> None:
    """Runs after the fuzz test: every documented operation got examples (the figure in the closing note)."""
    operations = {
        f"{method.upper()} {path}" for path, item in fuzz_app.openapi()["paths"].items() for method in item
    }
    if not EXAMPLES_TRIED:
        pytest.skip("the fuzz test did not run in this session (deselected)")
    missing = operations - set(EXAMPLES_TRIED)
    assert not missing, f"operations never fuzzed: {sorted(missing)}"
    print("examples tried per operation:", dict(sorted(EXAMPLES_TRIED.items())))
