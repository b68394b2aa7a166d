"""One credential rule on every protected route (app/auth.py), found from the OpenAPI document's security.

- secret unset: 403 with the route's own code; missing or wrong credentials: 401 + `WWW-Authenticate: Bearer`;
  another valid credential of the service: 403 `forbidden`; the right one: not refused for credentials.
- /metrics is open, and documented as open, until MOVIEREC_METRICS_TOKEN is set; then it follows the rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings

KEYS = {
    "api_key": "the-api-key-0123",
    "admin_token": "the-admin-token-0123",
    "metrics_token": "the-metrics-0123",
}
DISABLED_CODE = {"api_key": "writes_disabled", "admin_token": "admin_disabled"}


def _client(model_dir: Path, db_dir: Path, **secrets: str) -> TestClient:
    """A client of its own ratings database: the right key really writes and forgets."""
    url = f"sqlite:///{db_dir / 'auth.db'}"
    settings = Settings(model_dir=model_dir, device="cpu", database_url=url, **secrets)  # type: ignore[arg-type]
    return TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.fixture
def secured(tiny_bundle_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    with _client(tiny_bundle_dir, tmp_path, **KEYS) as client:
        yield client


def _secret_of(path: str) -> str:
    if path == "/metrics":
        return "metrics_token"
    return "admin_token" if path.startswith("/admin") else "api_key"


def _protected(client: TestClient) -> list[tuple[str, str, str]]:
    """(method, concrete path, secret setting) of every operation the document says needs credentials."""
    document = client.get("/openapi.json").json()
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if operation.get("security"):
                concrete = path.replace("{user_id}", "1").replace("{movie_id}", "1")
                found.append((method.upper(), concrete, _secret_of(path)))
    return found


def test_every_protected_route_follows_the_one_rule(secured: TestClient) -> None:
    protected = _protected(secured)
    assert {secret for _, _, secret in protected} == set(KEYS), protected
    for method, path, secret in protected:
        for given, status in (
            (None, 401),
            ("not-a-key-of-this-service", 401),
            *((KEYS[other], 403) for other in KEYS if other != secret),
        ):
            headers = {} if given is None else {"Authorization": f"Bearer {given}"}
            response = secured.request(method, path, headers=headers)
            assert response.status_code == status, (method, path, given, response.text)
            body = response.json()
            assert body["code"] == ("unauthorized" if status == 401 else "forbidden"), body
            if status == 401:
                assert response.headers["www-authenticate"] == "Bearer"
        right = secured.request(method, path, headers={"Authorization": f"Bearer {KEYS[secret]}"})
        assert right.status_code not in (401, 403), (method, path, right.text)


def test_an_unset_secret_turns_its_routes_off_with_their_own_code(
    tiny_bundle_dir: Path, tmp_path: Path
) -> None:
    with _client(tiny_bundle_dir, tmp_path, metrics_token=KEYS["metrics_token"]) as client:
        protected = _protected(client)
        for method, path, secret in protected:
            if secret in DISABLED_CODE:
                response = client.request(method, path, headers={"Authorization": "Bearer anything"})
                assert response.status_code == 403, (method, path, response.text)
                assert response.json()["code"] == DISABLED_CODE[secret]


def test_metrics_are_open_and_documented_as_open_without_a_token(
    tiny_bundle_dir: Path, tmp_path: Path
) -> None:
    with _client(tiny_bundle_dir, tmp_path) as client:
        assert client.get("/metrics").status_code == 200
        operation = client.get("/openapi.json").json()["paths"]["/metrics"]["get"]
        assert "security" not in operation and not {"401", "403"} & set(operation["responses"])


def test_metrics_need_their_token_once_it_is_set(secured: TestClient) -> None:
    assert secured.get("/metrics").status_code == 401
    assert (
        secured.get("/metrics", headers={"Authorization": f"Bearer {KEYS['admin_token']}"}).status_code == 403
    )
    response = secured.get("/metrics", headers={"Authorization": f"Bearer {KEYS['metrics_token']}"})
    assert response.status_code == 200 and "movierec_requests_total" in response.text
    operation = secured.get("/openapi.json").json()["paths"]["/metrics"]["get"]
    assert operation["security"] and {"401", "403"} <= set(operation["responses"])
