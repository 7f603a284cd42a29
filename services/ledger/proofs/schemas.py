"""Response bodies of the proof endpoints (the bundle itself is
:class:`~services.ledger.records.bundle.ProofBundle`, ``qilian-proof/1``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.ledger.records.bundle import ProofBundle

EventAnchorStatus = Literal["pending", "anchored", "final"]
"""An event's anchoring: ``pending`` (not yet in a mined batch), ``anchored`` (its batch's
transaction is mined in a canonical block), ``final`` (deep enough, see the finality policy)."""

BatchStatusName = Literal["pending", "sent", "anchored", "final"]

MAX_STATUS_EVENTS: Final = 500
"""At most this many event ids per ``POST /v1/anchoring/status``."""


class EventProof(BaseModel):
    """One event of a receivable: its anchoring status and, once anchored, its bundle.

    An event that is not anchored yet shows only its hashes: ``bundle`` is null.
    """

    model_config = ConfigDict(frozen=True)

    seq: int
    event_id: str
    status: EventAnchorStatus
    batch_id: int | None
    entry_id: str
    record_hash: str
    bundle: ProofBundle | None


class ReceivableProofs(BaseModel):
    """The proofs of a receivable's events in ``seq`` order (or only the newest event)."""

    model_config = ConfigDict(frozen=True)

    receivable_id: str
    all_anchored: bool = Field(description="every event listed has a bundle")
    events: list[EventProof]


class AnchorInfo(BaseModel):
    """A batch and where its root is on chain."""

    model_config = ConfigDict(frozen=True)

    batch_id: int
    status: BatchStatusName
    root: str
    leaf_count: int
    chain_id: int
    contract: str | None = Field(description="ReceivableAnchor address; null until first sent")
    tx_hash: str | None
    block_number: int | None
    block_hash: str | None
    created_at: datetime
    anchored_at: datetime | None
    final_at: datetime | None


class AnchoringStatusQuery(BaseModel):
    """The events whose anchoring status is asked for, in one request."""

    model_config = ConfigDict(frozen=True)

    event_ids: list[Annotated[str, StringConstraints(min_length=1, max_length=128)]] = Field(
        min_length=1,
        max_length=MAX_STATUS_EVENTS,
        description=f"1 to {MAX_STATUS_EVENTS} event ids",
    )


class EventStatus(BaseModel):
    """One event's anchoring without its proof: ``tx_hash`` and ``block_number`` once anchored."""

    model_config = ConfigDict(frozen=True)

    status: EventAnchorStatus
    batch_id: int | None
    tx_hash: str | None
    block_number: int | None


class AnchoringStatuses(BaseModel):
    """The status of each asked event the ledger holds a record of; the others are absent."""

    model_config = ConfigDict(frozen=True)

    events: dict[str, EventStatus]
