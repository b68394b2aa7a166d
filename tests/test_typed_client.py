"""A typed Python client generated from the live `/openapi.json` calls every endpoint.

What a frontend team does: uvicorn on 127.0.0.1 serves the tiny bundle, `openapi-python-client` generates a
package from the document the server publishes, and every operation is called through that package, its
request bodies built from the generated models and its responses parsed into them. A schema the generator
cannot read, a parameter it cannot express, or a response that does not parse into its declared model fails
here. The operation table must name every operation of the document, so a new endpoint needs a call here.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from servers import serving_a_copy

from movierec.artifacts import load_bundle

KEY = "typed-client-key"
PACKAGE = "movierec_api_client"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tiny_model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving_a_copy(tiny_model_root, tmp_path_factory.mktemp("typed-client-models"), KEY) as base:
        yield base


@pytest.fixture(scope="module")
def client_package(server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The package `openapi-python-client` generates from the live document, imported."""
    out = tmp_path_factory.mktemp("generated") / PACKAGE
    generator = Path(sys.executable).with_name("openapi-python-client")
    run = subprocess.run(
        [
            str(generator),
            "generate",
            "--url",
            f"{server}/openapi.json",
            "--meta",
            "none",
            "--output-path",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        # Its post-generation hooks run ruff, installed beside it.
        env={**os.environ, "PATH": f"{generator.parent}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "warning" not in (run.stdout + run.stderr).lower(), run.stdout + run.stderr
    sys.path.insert(0, str(out.parent))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out.parent))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def _operations(package: ModuleType) -> dict[str, ModuleType]:
    """Generated operation modules by name (the snake_case operationId)."""
    api = importlib.import_module(f"{package.__name__}.api")
    found = {}
    for tag in pkgutil.iter_modules(api.__path__):
        tag_package = importlib.import_module(f"{api.__name__}.{tag.name}")
        for op in pkgutil.iter_modules(tag_package.__path__):
            found[op.name] = importlib.import_module(f"{tag_package.__name__}.{op.name}")
    return found


def test_every_endpoint_through_the_generated_client(
    client_package: ModuleType, server: str, tiny_bundle_dir: Path
) -> None:
    bundle = load_bundle(tiny_bundle_dir)
    user, movie, other = (
        int(bundle.user_ids.ids[0]),
        int(bundle.movie_ids.ids[0]),
        int(bundle.movie_ids.ids[1]),
    )
    models = importlib.import_module(f"{PACKAGE}.models")
    client_module = importlib.import_module(f"{PACKAGE}.client")
    plain = client_module.Client(base_url=server, raise_on_unexpected_status=True)
    authed = client_module.AuthenticatedClient(base_url=server, token=KEY, raise_on_unexpected_status=True)
    ratings = [{"movie_id": movie, "rating": 4.5}, {"movie_id": other, "rating": 2.0}]

    def body(model: str, data: dict[str, Any]) -> Any:
        return getattr(models, model).from_dict(data)

    # operationId module -> (client, keyword arguments). Order matters only for the ratings calls.
    calls: dict[str, Callable[[], tuple[Any, dict[str, Any]]]] = {
        # PredictRequest is one of two shapes (`oneOf` with `not`), which the generator types as Any.
        "predict_predict_post": lambda: (plain, {"body": {"user_id": user, "movie_id": movie}}),
        "recommend_for_user_recommend_user_id_get": lambda: (plain, {"user_id": user, "k": 5, "genre": []}),
        "recommend_for_ratings_recommend_post": lambda: (
            plain,
            {"body": body("FoldInRequest", {"ratings": ratings, "k": 5})},
        ),
        "bias_ranking_movies_bias_ranking_get": lambda: (plain, {"limit": 5}),
        "movie_movies_movie_id_get": lambda: (plain, {"movie_id": movie}),
        "similar_movies_movie_id_similar_get": lambda: (plain, {"movie_id": movie, "k": 3}),
        "health_health_get": lambda: (plain, {}),
        "ready_ready_get": lambda: (plain, {}),
        "model_info_model_get": lambda: (plain, {}),
        "genres_genres_get": lambda: (plain, {}),
        "metrics_metrics_get": lambda: (plain, {}),
        "reload_admin_reload_post": lambda: (authed, {"body": body("ReloadRequest", {})}),
        "put_movie_movies_movie_id_put": lambda: (
            authed,
            {
                "movie_id": 9_000_001,
                "body": body("NewMovieRequest", {"title": "Premiere", "genres": ["Drama"], "year": 2024}),
            },
        ),
        "put_rating_users_user_id_ratings_movie_id_put": lambda: (
            authed,
            {"user_id": user, "movie_id": movie, "body": body("RatingBody", {"rating": 3.5})},
        ),
        "list_ratings_users_user_id_ratings_get": lambda: (authed, {"user_id": user, "limit": 10}),
        "export_user_users_user_id_export_get": lambda: (authed, {"user_id": user}),
        "delete_rating_users_user_id_ratings_movie_id_delete": lambda: (
            authed,
            {"user_id": user, "movie_id": movie},
        ),
        "forget_user_users_user_id_delete": lambda: (authed, {"user_id": user}),
        "search_movies_movies_get": lambda: (plain, {"q": "synthetic", "limit": 5}),
        "predict_for_session_predict_for_ratings_post": lambda: (
            plain,
            {"body": body("SessionPredictRequest", {"ratings": ratings, "movie_ids": [movie, other]})},
        ),
        "explain_explain_post": lambda: (
            plain,
            {"body": body("ExplainRequest", {"ratings": ratings, "movie_ids": [other]})},
        ),
        "model_history_model_history_get": lambda: (plain, {}),
    }
    operations = _operations(client_package)
    assert set(operations) == set(calls), "every operation of the document needs a call in this test"
    for name, call in calls.items():
        client, kwargs = call()
        response = operations[name].sync_detailed(client=client, **kwargs)
        assert 200 <= response.status_code < 300, (name, response.status_code, response.content[:300])
        if response.status_code != 204 and name != "metrics_metrics_get":
            # The body parsed into the generated model (or list) the document declares.
            assert response.parsed is not None, (name, response.content[:300])
            assert not isinstance(response.parsed, models.ErrorResponse), name
