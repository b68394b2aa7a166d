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
    model_poll_seconds: float = Field(
        30.0,
        ge=0,
        description="how often to check whether model_dir (the `latest` link) moved to a new run, "
        "which is then loaded and swapped in; 0 disables polling",
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
    # Costly work (app/offload.py, app/batching.py): thresholds are costs measured on the served model.
    list_batching: Literal["auto", "on", "turn", "off"] = Field(
        "auto",
        description="score concurrent lists together (app/lists.py): on, in a thread; turn, on the event loop "
        "with the lists of the same loop turn; off, each alone; auto: on when one list costs at least "
        "list_batching_min_ms (measured at load), else turn",
    )
    list_batching_min_ms: float = Field(
        1.0, ge=0, description="auto list batching threshold (thread or turn)"
    )
    list_batch_max: int = Field(64, ge=1, description="most lists scored in one batch")
    heavy_threads: int = Field(
        4, ge=1, description="threads for costly requests (large batches, slow fold-ins)"
    )
    heavy_queue: int = Field(64, ge=0, description="costly requests that may wait; beyond: 503 + Retry-After")
    offload_min_body_bytes: int = Field(
        8_192,
        ge=0,
        description="/predict bodies of at least this size (about 200 pairs) are parsed and scored off the "
        "event loop",
    )
    log_level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        "info", description="level of the service's own log lines (`app`, `movierec`); uvicorn's are its own"
    )
    database_url: SecretStr = Field(
        SecretStr("sqlite:///data/movierec.db"),
        description="people's own ratings (SQLAlchemy URL; postgresql://... for PostgreSQL); the default is a "
        "SQLite file under data/ relative to the working directory",
    )
    database_statement_timeout_ms: int = Field(
        5_000,
        ge=0,
        description="PostgreSQL: longest a statement of the service may run (ms; 0: no limit); past it the "
        "request answers 503 database_unavailable instead of waiting on a hung server or a held lock",
    )
    database_busy_timeout_ms: int = Field(
        2_000,
        ge=0,
        le=60_000,
        description="longest a write waits for a database lock held elsewhere (a SQLite writer in another "
        "process, a backup, a PostgreSQL row or table lock) or for a free pooled connection, in ms; past it the "
        "request answers 503 database_busy with Retry-After instead of hanging",
    )
    api_key: SecretStr | None = Field(
        None, description="bearer key of the /users rating endpoints; unset disables them (403)"
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="bearer token GET /metrics requires (Prometheus: `authorization: {credentials: ...}` in "
        "the scrape config); unset leaves /metrics open, for a scrape from inside a private network",
    )
    list_queue: int = Field(
        256,
        ge=1,
        description="lists that may wait for the list batcher (MOVIEREC_LIST_BATCHING); beyond: 503 "
        "overloaded with Retry-After",
    )
    list_timeout_s: float = Field(
        10.0, gt=0, description="longest a list waits for the list batcher; past it: 503 overloaded"
    )
    version_mirror_max_users: int = Field(
        5_000_000,
        ge=0,
        description="PostgreSQL: most users whose versions each process holds, kept fresh by LISTEN/NOTIFY, so "
        "that a list needs no round trip (movierec/store/versions.py); beyond, or 0, versions are read per request",
    )
    user_cache_size: int = Field(
        10_000, ge=1, description="most re-solved user vectors (users with stored ratings) held per process"
    )
    list_cache_mb: float = Field(
        64.0,
        ge=0,
        le=65_536,
        description="MiB of finished GET /recommend answers held per process (app/list_cache.py); 0 turns the "
        "cache off",
    )

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
