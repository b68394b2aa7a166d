"""Bearer credentials of the protected routes, with one rule for every one of them.

- The route's secret is not configured: 403 with the route's own code (`writes_disabled`, `admin_disabled`):
  no credential could be accepted, so none is asked for.
- No credentials, or credentials that are none of the service's secrets: 401 `unauthorized` with
  `WWW-Authenticate: Bearer` (RFC 6750: authenticate, then try again).
- A valid credential of this service that does not open this route (the admin token on /users, the API key on
  /admin): 403 `forbidden` (authenticated, not allowed; trying again will not help).

Comparisons are constant-time (`hmac.compare_digest`).
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from app.errors import ApiError
from app.settings import Settings

CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _value(secret: SecretStr | None) -> str:
    return secret.get_secret_value() if secret is not None else ""


def _matches(given: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def check_bearer(
    settings: Settings,
    credentials: HTTPAuthorizationCredentials | None,
    secret: SecretStr | None,
    *,
    disabled: ApiError | None,
) -> None:
    """Apply the module's rule for a route opened by `secret`; `disabled` is raised when it is unset (None:
    the route is open without a secret, as /metrics is)."""
    expected = _value(secret)
    if not expected:
        if disabled is not None:
            raise disabled
        return
    given = credentials.credentials if credentials is not None else ""
    if _matches(given, expected):
        return
    others = (settings.api_key, settings.admin_token, settings.metrics_token)
    if given and any(_matches(given, _value(other)) for other in others if other is not secret):
        raise ApiError(403, "forbidden", "this credential does not open this endpoint")
    why = "missing" if not given else "wrong"
    raise ApiError(
        401, "unauthorized", f"{why} bearer credentials: send `Authorization: Bearer <key>`", CHALLENGE
    )


metrics_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="MetricsToken",
    description="`Authorization: Bearer <MOVIEREC_METRICS_TOKEN>`, when one is configured",
)


async def require_metrics_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(metrics_bearer)]
) -> None:
    """GET /metrics: open unless MOVIEREC_METRICS_TOKEN is set, then only with it."""
    settings: Settings = request.app.state.settings
    check_bearer(settings, credentials, settings.metrics_token, disabled=None)
