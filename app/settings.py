"""Typed service settings, read from `MOVIEREC_*` environment variables (documented in the README)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service. Never instantiated at import time: use `get_settings()`."""

    model_config = SettingsConfigDict(env_prefix="MOVIEREC_", extra="ignore", protected_namespaces=())

    model_dir: Path = Field(
        Path("models/latest"), description="artifact directory (or the `latest` link) to serve"
    )
    model_root: Path | None = Field(
        None, description="where /admin/reload looks up run ids; default: model_dir's parent"
    )
    device: Literal["auto", "cpu", "gpu"] = "auto"
    admin_token: SecretStr | None = Field(
        None, description="bearer token of /admin/reload; unset disables it"
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list, description="comma-separated")
    max_batch: int = Field(10_000, ge=1, description="most pairs in one /predict batch")
    max_k: int = Field(100, ge=1, description="largest k / limit a list endpoint accepts")
    max_fold_in_ratings: int = Field(1_000, ge=1, description="most ratings in one POST /recommend")
    max_body_bytes: int = Field(2_000_000, ge=1_024, description="request bodies above this get 413")
    cold_start_min_ratings: int = Field(
        50, ge=0, description="min rating count of cold-start movies (artifacts without a ranker)"
    )
    fold_in_l2: float | None = Field(None, gt=0, description="fold-in L2; default: the value in the manifest")
    blas_threads: int = Field(1, ge=1, description="BLAS threads per process; 1 avoids oversubscription")
    threadpool_size: int = Field(40, ge=1, description="worker threads for blocking routes")
    verify_checksums: bool = Field(True, description="verify artifact file checksums at load")

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @property
    def resolved_model_root(self) -> Path:
        return self.model_root if self.model_root is not None else self.model_dir.parent


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
