"""Settings of invoice intake, read from ``QILIAN_INTAKE_*`` (defaults work for ``make run``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class IntakeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QILIAN_INTAKE_", env_file=None, extra="ignore")

    max_term_days: int = Field(default=180, ge=1, description="latest due date after issue")
    blob_store: Literal["local", "s3"] = "local"
    blob_dir: Path | None = Field(
        default=None, description="local blob store; default <QILIAN_VAR_DIR>/blobs"
    )
    s3_endpoint_url: str | None = None
    s3_bucket: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_prefix: str = "invoices/"
    import_chunk_size: int = Field(default=500, ge=1, le=10_000)
    max_import_bytes: int = 512 * 1024 * 1024
    max_import_rows: int = 100_000


@lru_cache
def get_intake_settings() -> IntakeSettings:
    return IntakeSettings()
