"""Settings shared by every service: one ``pydantic-settings`` base, read from ``QILIAN_*``.

Defaults work for ``make run`` (development). A secret left at its development default refuses to
start outside development.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from qilian.kit.anvil import DEV_CHAIN_ID, DEV_PRIVATE_KEY

REPO_ROOT = Path(__file__).resolve().parents[2]
DEV_SECRET_KEY = "dev-only-secret-key-change-me"  # noqa: S105 - a public development default


class Settings(BaseSettings):
    """What api, ledger, worker and the CLI all read."""

    model_config = SettingsConfigDict(env_prefix="QILIAN_", env_file=None, extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    service_name: str = "qilian"
    log_level: str = "INFO"
    log_json: bool = False

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/qilian"
    database_pool_size: int = 5
    broker_url: str = "amqp://guest:guest@127.0.0.1:5672//"
    task_queue: str = "celery"

    rpc_url: str = "http://127.0.0.1:8545"
    chain_id: int = DEV_CHAIN_ID
    anchorer_private_key: str = DEV_PRIVATE_KEY
    anchor_address: str | None = Field(
        default=None, description="ReceivableAnchor address; else the ledger's deployment record"
    )
    registry_address: str | None = Field(
        default=None, description="FinancingRegistry address; else the ledger's deployment record"
    )
    var_dir: Path = REPO_ROOT / "var"

    # FinancingRegistry: on-chain fingerprints are keccak256(HMAC-SHA256(registry_key, …)); every
    # platform sharing the registry shares this key. Unset: derived from secret_key (development
    # and test only; production must set it)
    registry_key: SecretStr = Field(default=SecretStr(""), description="registry HMAC key")

    secret_key: str = DEV_SECRET_KEY
    api_url: str = "http://127.0.0.1:8000"
    ledger_url: str = "http://127.0.0.1:8001"

    # the worker's Prometheus endpoint (off when unset); with a prefork pool, set
    # PROMETHEUS_MULTIPROC_DIR so that every pool process's counts are collected
    worker_metrics_port: int | None = None
    worker_metrics_host: str = "127.0.0.1"

    # outbox relay
    outbox_batch_size: int = 500
    outbox_redelivery_seconds: float = 30.0
    outbox_max_attempts: int = 20
    outbox_retention_days: float = 7.0  # delivered rows are deleted after this long
    audit_checkpoint_seconds: float = 60.0  # the audit head to the ledger this often; 0: never
    relay_interval_seconds: float = 1.0
    # the ledger reads back from the chain what it anchored and registered this often
    reconcile_interval_seconds: float = 60.0

    @model_validator(mode="after")
    def _refuse_dev_secrets_outside_development(self) -> Self:
        if self.env == "production":
            if self.secret_key == DEV_SECRET_KEY:
                raise ValueError("QILIAN_SECRET_KEY is the development default; set a real secret")
            if self.anchorer_private_key == DEV_PRIVATE_KEY:
                raise ValueError(
                    "QILIAN_ANCHORER_PRIVATE_KEY is anvil's public development key; set a real key"
                )
            if not self.registry_key.get_secret_value():
                raise ValueError("QILIAN_REGISTRY_KEY is not set; set the registry's shared key")
        return self

    @model_validator(mode="after")
    def _derive_development_registry_key(self) -> Self:
        if not self.registry_key.get_secret_value() and self.env != "production":
            derived = hmac.new(self.secret_key.encode(), b"qilian-registry-key", hashlib.sha256)
            self.registry_key = SecretStr(derived.hexdigest())
        return self

    def contract_address(self, name: str) -> str | None:
        """An explicitly configured contract address (production pins them)."""
        return {
            "ReceivableAnchor": self.anchor_address,
            "FinancingRegistry": self.registry_address,
        }.get(name)


@lru_cache
def get_settings() -> Settings:
    return Settings()
