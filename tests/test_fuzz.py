"""The OpenAPI document tells the truth: `schemathesis run URL/openapi.json --checks all` finds nothing.

Exactly what a client generator or an API tester does: uvicorn on 127.0.0.1 serves the tiny bundle with small
limits, and schemathesis reads the live document and sends schema-valid and schema-violating requests from it
(examples, coverage, fuzzing and stateful phases). Every built-in check runs, `positive_data_acceptance` and
`negative_data_rejection` included: a request the schema allows must not be refused, and one it forbids must
not be accepted. That holds only because the document carries the deployment's limits and the served model's
rating scale and genres (app/openapi.py). Run twice: with the admin token, and without it (the admin route
must then answer 401, as its security scheme says).
/metrics is behind its token here; that it is open and documented as open without one: test_security.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import serving_a_copy

TOKEN = "fuzz-admin-token"
# Examples per operation and phase; with ~15 operations a run takes about 30 s on two cores.
MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def server(tiny_model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = {
        "MOVIEREC_MAX_BATCH": "50",
        "MOVIEREC_MAX_FOLD_IN_RATINGS": "50",
        "MOVIEREC_MAX_K": "20",
        "MOVIEREC_METRICS_TOKEN": TOKEN,  # /metrics behind its token too (open when unset: test_security.py)
    }
    with serving_a_copy(tiny_model_root, tmp_path_factory.mktemp("fuzz-models"), TOKEN, **settings) as base:
        yield base


def _schemathesis(base: str, *headers: str) -> str:
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{base}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        "20261129",
        "--generation-deterministic",
        "--no-color",
    ]
    for header in headers:
        command += ["-H", header]
    run = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    return output


def _every_operation_tested(output: str) -> None:
    selected = re.search(r"Selected:\s*(\d+)/(\d+)", output)
    tested = re.search(r"Tested:\s*(\d+)", output)
    assert selected and tested, output[-3000:]
    assert int(tested.group(1)) == int(selected.group(2)), output[-3000:]


def test_schemathesis_all_checks_pass_with_the_admin_token(server: str) -> None:
    _every_operation_tested(_schemathesis(server, f"Authorization: Bearer {TOKEN}"))


def test_schemathesis_all_checks_pass_without_credentials(server: str) -> None:
    _every_operation_tested(_schemathesis(server))
