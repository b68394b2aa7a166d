"""POST /admin/reload: swap in another run from the model root, guarded by a bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth import check_bearer
from app.dependencies import HolderDep, MetricsDep, SettingsDep
from app.errors import ApiError
from app.schemas import ErrorResponse, ReloadRequest, ReloadResponse
from app.state import UnknownRunError
from movierec.errors import ArtifactError

router = APIRouter(prefix="/admin", tags=["admin"])
_bearer = HTTPBearer(auto_error=False)


def require_admin(
    settings: SettingsDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """MOVIEREC_ADMIN_TOKEN, by the one rule of app/auth.py; without a configured token the endpoint is off."""
    disabled = ApiError(
        403, "admin_disabled", "admin endpoints are disabled: set MOVIEREC_ADMIN_TOKEN to enable them"
    )
    check_bearer(settings, credentials, settings.admin_token, disabled=disabled)


@router.post(
    "/reload",
    response_model=ReloadResponse,
    dependencies=[Depends(require_admin)],
    responses={
        401: {"model": ErrorResponse},
        403: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
        413: {"model": ErrorResponse},
        422: {"model": ErrorResponse},
    },
)
def reload(
    holder: HolderDep, settings: SettingsDep, metrics: MetricsDep, body: ReloadRequest | None = None
) -> ReloadResponse:
    """Load a run by id (default: `latest`), validate it, and swap it in; a bad run leaves the old one serving."""
    # Plain def: loading reads files and builds arrays, so it runs in the threadpool, not on the event loop.
    run_id = body.run_id if body is not None else None
    current = holder.current
    device = current.device if current is not None else "cpu"
    try:
        previous, new = holder.reload(settings, device, run_id)
    except (ArtifactError, UnknownRunError):
        metrics.reloads.labels("refused").inc()
        raise
    metrics.reloads.labels("ok").inc()
    loaded = holder.current
    assert loaded is not None
    metrics.set_model(new, loaded.recommender.kind)
    return ReloadResponse(previous_run_id=previous, run_id=new)
