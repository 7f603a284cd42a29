"""audit checkpoints (the audit chain's head, anchored by the ledger); merges 0002 and 0003

Revision ID: 0004
Revises: 0002, 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = ("0002", "0003")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("audit_seq", sa.BigInteger(), nullable=False),
        sa.Column("audit_hash", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_checkpoints")),
        sa.UniqueConstraint("audit_seq", name=op.f("uq_audit_checkpoints_audit_seq")),
        sa.UniqueConstraint("event_id", name=op.f("uq_audit_checkpoints_event_id")),
        schema="platform",
    )


def downgrade() -> None:
    op.drop_table("audit_checkpoints", schema="platform")
