"""Settings of the anchoring pipeline, on top of the shared :class:`~qilian.kit.settings.Settings`.

Read from ``QILIAN_*`` like the rest. Service functions take a plain ``Settings`` (tests pass a
``model_copy`` pointing at their own chain) and widen it with :func:`anchoring_settings`, which
keeps every value of the given settings and reads only the anchoring fields from the environment.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from qilian.kit.settings import Settings


class AnchoringSettings(Settings):
    """Batching, finality and reconciliation of the ledger's anchoring."""

    batch_max_leaves: int = Field(default=10_000, ge=1, le=2**32 - 1)
    batch_max_wait_seconds: float = Field(default=2.0, ge=0)
    records_per_pass: int = Field(default=5000, ge=1)
    finality: Literal["depth", "finalized"] = Field(
        default="depth",
        description="depth: after `confirmations` blocks; finalized: by the finalized tag",
    )
    confirmations: int = Field(default=2, ge=1, description="blocks including the anchoring one")
    receipt_wait_seconds: float = Field(default=5.0, ge=0)
    redeploy_missing_contract: bool | None = Field(
        default=None,
        description="redeploy and re-anchor from batch 1 when the contract has no code; "
        "default: only when env is development",
    )

    @property
    def may_redeploy(self) -> bool:
        if self.redeploy_missing_contract is not None:
            return self.redeploy_missing_contract
        return self.env == "development"


def anchoring_settings(settings: Settings) -> AnchoringSettings:
    """``settings`` widened with the anchoring fields (from the environment or defaults)."""
    if isinstance(settings, AnchoringSettings):
        return settings
    return AnchoringSettings(**settings.model_dump())
