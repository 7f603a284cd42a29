"""ledger anchoring: records, batches, accounts; inbox processed_at and error

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 06:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "event_inbox",
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        schema="ledger",
    )
    op.add_column(
        "event_inbox",
        sa.Column("error", sa.String(length=1000), nullable=True),
        schema="ledger",
    )
    op.create_table(
        "accounts",
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("next_nonce", sa.BigInteger(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_accounts")),
        schema="ledger",
    )
    op.create_table(
        "batches",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.String(length=66), nullable=False),
        sa.Column("leaf_count", sa.Integer(), nullable=False),
        sa.Column("dump", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("contract", sa.String(length=42), nullable=True),
        sa.Column("sender", sa.String(length=42), nullable=True),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("nonce", sa.BigInteger(), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("block_hash", sa.String(length=66), nullable=True),
        sa.Column("gas_used", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("anchored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("final_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.CheckConstraint("id >= 1 AND leaf_count >= 1", name=op.f("ck_batches_positive")),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'anchored', 'final')", name=op.f("ck_batches_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
        schema="ledger",
    )
    op.create_index(
        "ix_batches_open",
        "batches",
        ["id"],
        unique=False,
        schema="ledger",
        postgresql_where=sa.text("status <> 'final'"),
    )
    op.create_table(
        "records",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("receivable_id", sa.String(length=128), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("record", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("record_hash", sa.String(length=66), nullable=False),
        sa.Column("entry_id", sa.String(length=66), nullable=False),
        sa.Column("batch_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("seq >= 1", name=op.f("ck_records_seq_positive")),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["ledger.batches.id"], name=op.f("fk_records_batch_id_batches")
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_records")),
        sa.UniqueConstraint("receivable_id", "seq", name="uq_records_receivable_id_seq"),
        schema="ledger",
    )
    op.create_index("ix_records_batch_id", "records", ["batch_id"], unique=False, schema="ledger")
    op.create_index(
        "ix_records_unbatched",
        "records",
        ["created_at"],
        unique=False,
        schema="ledger",
        postgresql_where=sa.text("batch_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_records_unbatched",
        table_name="records",
        schema="ledger",
        postgresql_where=sa.text("batch_id IS NULL"),
    )
    op.drop_index("ix_records_batch_id", table_name="records", schema="ledger")
    op.drop_table("records", schema="ledger")
    op.drop_index(
        "ix_batches_open",
        table_name="batches",
        schema="ledger",
        postgresql_where=sa.text("status <> 'final'"),
    )
    op.drop_table("batches", schema="ledger")
    op.drop_table("accounts", schema="ledger")
    op.drop_column("event_inbox", "error", schema="ledger")
    op.drop_column("event_inbox", "processed_at", schema="ledger")
