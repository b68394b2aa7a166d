"""Security properties of the service.

- the admin token is compared in constant time and never appears in logs, metrics or responses;
- no endpoint takes a filesystem path: reload accepts a run id only, validated, looked up under the model root;
- CORS stays off unless configured, and then allows only the configured origins;
- error bodies carry no stack trace and no internal path.
(Request size limits: `test_bad_input.py`; the container's non-root user: the container tests.)
"""

from __future__ import annotations

import hmac
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app import auth
from app.main import create_app
from app.settings import Settings
from movierec.artifacts import LATEST, MANIFEST, TMP_PREFIX

TOKEN = "s3cr3t-Admin-Token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PATH_WORDS = ("path", "dir", "file", "root", "location", "url")


@pytest.fixture
def model_root(tiny_bundle_dir: Path, tmp_path: Path) -> Path:
    """A private model root with the good run, plus decoy complete runs outside it and under a `.tmp-` name."""
    root = tmp_path / "models"
    root.mkdir()
    shutil.copytree(tiny_bundle_dir, root / tiny_bundle_dir.name)
    (root / LATEST).symlink_to(tiny_bundle_dir.name)
    shutil.copytree(tiny_bundle_dir, tmp_path / "outside-run")
    shutil.copytree(tiny_bundle_dir, root / f"{TMP_PREFIX}half-written")
    return root


@pytest.fixture
def client(model_root: Path) -> Iterator[TestClient]:
    settings = Settings(model_dir=model_root / LATEST, admin_token=TOKEN, device="cpu")
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


# ---- the admin token -----------------------------------------------------------------------------------------


def test_token_is_compared_with_hmac_compare_digest(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    compare_digest = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return compare_digest(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    assert client.post("/admin/reload", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.post("/admin/reload", headers=AUTH).status_code == 200
    assert len(calls) == 2 and calls[1] == (TOKEN.encode(), TOKEN.encode())


@pytest.mark.parametrize(
    "header",
    [
        f"Bearer {TOKEN[:-1]}",  # a prefix
        f"Bearer {TOKEN}x",  # an extension
        f"Bearer {TOKEN.lower()}",
        f"Basic {TOKEN}",  # the right secret in the wrong scheme
        TOKEN,  # no scheme
        "Bearer ",
    ],
)
def test_near_miss_tokens_are_refused(client: TestClient, header: str) -> None:
    response = client.post("/admin/reload", headers={"Authorization": header})
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "unauthorized"


def test_non_ascii_token_is_refused_not_a_500(client: TestClient) -> None:
    response = client.post("/admin/reload", headers={"Authorization": "Bearer t\u00f6ken".encode()})
    assert response.status_code == 401, response.text


def test_token_never_appears_in_logs_metrics_or_responses(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    responses = [
        client.post("/admin/reload", headers=AUTH),
        client.post("/admin/reload", headers=AUTH, json={"run_id": "no-such-run"}),
        client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}x"}),
        client.get("/model"),
        client.get("/metrics"),
    ]
    for response in responses:
        assert TOKEN not in response.text
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert TOKEN not in logged
    assert TOKEN not in repr(client.app.state.settings)  # type: ignore[attr-defined]
    assert TOKEN not in str(client.app.state.settings.model_dump())  # type: ignore[attr-defined]


# ---- no filesystem paths from clients ------------------------------------------------------------------------


def test_no_operation_takes_a_path_like_parameter(client: TestClient) -> None:
    """Walk the OpenAPI document: no query/path parameter or body field is named like a filesystem path."""
    schema = client.get("/openapi.json").json()
    names: list[str] = []
    for item in schema["paths"].values():
        for operation in item.values():
            names += [p["name"] for p in operation.get("parameters", [])]
    for component in schema["components"]["schemas"].values():
        if component["title"].endswith("Request") or component["title"] in {"PredictPair", "RatingIn"}:
            names += list(component.get("properties", {}))
    offending = [n for n in names if any(word in n.lower() for word in PATH_WORDS)]
    assert not offending, offending
    run_id = schema["components"]["schemas"]["ReloadRequest"]["properties"]["run_id"]
    assert "pattern" in str(run_id), "the run id must be validated by a pattern"


@pytest.mark.parametrize(
    ("run_id", "status"),
    [
        ("../outside-run", 422),
        ("..", 422),
        ("/etc", 422),
        ("/etc/passwd", 422),
        ("a/../../outside-run", 422),
        ("run\\..\\x", 422),
        (".", 422),
        (f"{TMP_PREFIX}half-written", 422),  # temporary runs never load, even complete ones
        ("%2e%2e%2foutside-run", 422),
        ("run\x00id", 422),
        ("x" * 200, 422),
        ("", 422),
        ("~", 422),
        (LATEST, 404),  # the link is not a run id: reload without run_id follows it
        ("outside-run", 404),  # a complete run, but not under the model root
        (MANIFEST, 404),
    ],
)
def test_reload_takes_run_ids_only_never_paths(
    client: TestClient, tiny_bundle_dir: Path, run_id: str, status: int
) -> None:
    response = client.post("/admin/reload", headers=AUTH, json={"run_id": run_id})
    assert response.status_code == status, response.text
    assert set(response.json()) == {"detail", "code"}
    assert client.get("/model").json()["run_id"] == tiny_bundle_dir.name
    assert 'outcome="ok"' not in client.get("/metrics").text


def test_reload_ignores_query_and_header_paths(client: TestClient, tiny_bundle_dir: Path) -> None:
    """Paths smuggled elsewhere do nothing: unknown body fields and query parameters are refused by name,
    headers ignored, and the served run stays as it was."""
    response = client.post("/admin/reload", headers=AUTH, json={"run_id": None, "path": "/tmp"})
    assert response.status_code == 422
    response = client.post("/admin/reload?model_dir=/etc&path=/etc", headers={**AUTH, "X-Model-Dir": "/etc"})
    assert response.status_code == 422 and "model_dir" in response.json()["detail"], response.text
    assert client.get("/model").json()["run_id"] == tiny_bundle_dir.name
    response = client.post("/admin/reload", headers={**AUTH, "X-Model-Dir": "/etc"})
    assert response.status_code == 200 and response.json()["run_id"] == tiny_bundle_dir.name


# ---- CORS ----------------------------------------------------------------------------------------------------


def test_cors_allows_only_the_configured_origins(model_root: Path) -> None:
    settings = Settings(model_dir=model_root / LATEST, cors_origins="https://shop.example")  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as cors_client:
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization",
        }
        evil = cors_client.options("/admin/reload", headers={"Origin": "https://evil.example", **preflight})
        assert "access-control-allow-origin" not in evil.headers
        good = cors_client.options("/admin/reload", headers={"Origin": "https://shop.example", **preflight})
        assert good.headers["access-control-allow-origin"] == "https://shop.example"
        assert "access-control-allow-credentials" not in good.headers
        simple = cors_client.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in simple.headers


def test_cors_is_off_by_default_for_every_route(client: TestClient) -> None:
    headers = {"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}
    for path in ("/predict", "/recommend", "/admin/reload"):
        assert "access-control-allow-origin" not in client.options(path, headers=headers).headers
    assert (
        "access-control-allow-origin"
        not in client.get("/health", headers={"Origin": "https://x.example"}).headers
    )


# ---- error bodies --------------------------------------------------------------------------------------------


def test_unexpected_errors_return_no_trace_and_no_internals(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    loaded = client.app.state.holder.current  # type: ignore[attr-defined]

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"boom in {loaded.recommender.bundle.path}")

    monkeypatch.setattr(loaded.recommender, "predict", explode)
    monkeypatch.setattr(loaded.recommender, "predict_one", explode)
    with caplog.at_level(logging.ERROR):
        response = client.post("/predict", json={"user_id": 1, "movie_id": 10})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error", "code": "internal_error"}
    assert "boom" in caplog.text  # operators get the trace in the log


def test_error_bodies_name_no_internal_paths(client: TestClient, model_root: Path) -> None:
    broken = model_root / "broken-run"
    shutil.copytree(model_root / LATEST, broken)
    (broken / "catalogue.csv").unlink()
    responses = [
        client.post("/admin/reload", headers=AUTH, json={"run_id": "broken-run"}),
        client.post("/admin/reload", headers=AUTH, json={"run_id": "no-such-run"}),
        client.get("/nope/../../etc/passwd"),
        client.post("/predict", content=b"{", headers={"Content-Type": "application/json"}),
        client.get("/recommend/1?genre=/etc/passwd"),
    ]
    assert responses[0].status_code == 422 and "catalogue.csv" in responses[0].json()["detail"]
    for response in responses:
        assert response.status_code < 500
        text = response.text
        assert str(model_root) not in text and str(model_root.resolve()) not in text
        assert str(Path.cwd()) not in text and "site-packages" not in text and "Traceback" not in text
        assert set(response.json()) == {"detail", "code"}


def test_docs_and_schema_leak_no_settings(client: TestClient, model_root: Path) -> None:
    text = client.get("/openapi.json").text
    assert TOKEN not in text and str(model_root) not in text
    model = client.get("/model").json()
    assert str(model_root) not in str(model) and str(model_root.resolve()) not in str(model)
