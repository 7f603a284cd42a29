"""ledger: FinancingRegistry operations

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "registry_operations",
        sa.Column("operation_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("financing_id", sa.String(length=64), nullable=False),
        sa.Column("receivable_id", sa.String(length=64), nullable=False),
        sa.Column("part", sa.Boolean(), nullable=False),
        sa.Column("fingerprint", sa.String(length=66), nullable=False),
        sa.Column("invoice_fingerprint", sa.String(length=66), nullable=True),
        sa.Column("financing_ref", sa.String(length=66), nullable=False),
        sa.Column("reason", sa.SmallInteger(), nullable=True),
        sa.Column("state", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("contract", sa.String(length=42), nullable=True),
        sa.Column("sender", sa.String(length=42), nullable=True),
        sa.Column("nonce", sa.BigInteger(), nullable=True),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.String(length=100), nullable=True),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "action IN ('register', 'release')", name=op.f("ck_registry_operations_action")
        ),
        sa.CheckConstraint(
            "state IN ('pending', 'sent', 'done', 'refused')",
            name=op.f("ck_registry_operations_state"),
        ),
        sa.CheckConstraint(
            "(action = 'register' AND reason IS NULL)"
            " OR (action = 'release' AND reason BETWEEN 1 AND 4)",
            name=op.f("ck_registry_operations_reason"),
        ),
        sa.CheckConstraint(
            "part = (invoice_fingerprint IS NOT NULL)",
            name=op.f("ck_registry_operations_part_invoice"),
        ),
        sa.PrimaryKeyConstraint("operation_id", name=op.f("pk_registry_operations")),
        sa.UniqueConstraint("seq", name=op.f("uq_registry_operations_seq")),
        schema="ledger",
    )
    op.create_index(
        "ix_registry_operations_financing_id",
        "registry_operations",
        ["financing_id"],
        unique=False,
        schema="ledger",
    )
    op.create_index(
        "ix_registry_operations_open",
        "registry_operations",
        ["seq"],
        unique=False,
        schema="ledger",
        postgresql_where=sa.text("state IN ('pending', 'sent')"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_registry_operations_open",
        table_name="registry_operations",
        schema="ledger",
        postgresql_where=sa.text("state IN ('pending', 'sent')"),
    )
    op.drop_index(
        "ix_registry_operations_financing_id", table_name="registry_operations", schema="ledger"
    )
    op.drop_table("registry_operations", schema="ledger")
