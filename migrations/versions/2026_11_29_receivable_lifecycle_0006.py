"""receivable lifecycle: vouchers (holding axis, lineage, amounts moved to parts), payments,
disputes

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add = lambda column: op.add_column("receivables", column, schema="platform")  # noqa: E731
    add(sa.Column("root_id", sa.String(length=40), nullable=True))
    add(sa.Column("tier", sa.Integer(), server_default="1", nullable=False))
    add(sa.Column("depth", sa.Integer(), server_default="0", nullable=False))
    add(sa.Column("holding", sa.String(length=20), server_default="held", nullable=False))
    add(sa.Column("paid_minor", sa.BigInteger(), server_default="0", nullable=False))
    add(sa.Column("diluted_minor", sa.BigInteger(), server_default="0", nullable=False))
    add(sa.Column("moved_minor", sa.BigInteger(), server_default="0", nullable=False))
    # credit notes applied before this migration
    op.execute(
        "UPDATE platform.receivables SET diluted_minor = face_value_minor - open_amount_minor"
    )
    op.create_foreign_key(
        op.f("fk_receivables_root_id_receivables"),
        "receivables",
        "receivables",
        ["root_id"],
        ["id"],
        source_schema="platform",
        referent_schema="platform",
    )
    checks = {
        "holding_known": "holding IN ('held', 'split', 'transferred')",
        "amounts_not_negative": "paid_minor >= 0 AND diluted_minor >= 0 AND moved_minor >= 0",
        "value_conserved": (
            "open_amount_minor + paid_minor + diluted_minor + moved_minor = face_value_minor"
        ),
        "only_held_open_or_financed": (
            "holding = 'held' OR (financing = 'unfinanced' AND open_amount_minor = 0)"
        ),
        "root_with_parent": "(parent_id IS NULL) = (root_id IS NULL)",
        "tier_and_depth_valid": "tier >= 1 AND depth >= 0",
    }
    for name, condition in checks.items():
        op.create_check_constraint(
            op.f(f"ck_receivables_{name}"), "receivables", condition, schema="platform"
        )
    op.drop_constraint(
        op.f("uq_receivables_invoice_id"), "receivables", type_="unique", schema="platform"
    )
    op.create_index(
        "uq_receivables_root_invoice",
        "receivables",
        ["invoice_id"],
        unique=True,
        schema="platform",
        postgresql_where=sa.text("parent_id IS NULL"),
    )
    op.create_index("ix_receivables_root_id", "receivables", ["root_id"], schema="platform")
    op.create_index("ix_receivables_parent_id", "receivables", ["parent_id"], schema="platform")

    op.create_table(
        "receivable_payments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("receivable_id", sa.String(length=40), nullable=False),
        sa.Column("payer_id", sa.String(length=40), nullable=False),
        sa.Column("payee_id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("applied_minor", sa.BigInteger(), nullable=False),
        sa.Column("unapplied_minor", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("paid_at", sa.Date(), nullable=False),
        sa.Column("reference", sa.String(length=140), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_receivable_payments_amount_positive")),
        sa.CheckConstraint(
            "applied_minor >= 0 AND unapplied_minor >= 0 "
            "AND applied_minor + unapplied_minor = amount_minor",
            name=op.f("ck_receivable_payments_allocation_complete"),
        ),
        sa.CheckConstraint(
            "kind IN ('full', 'partial', 'short', 'over')",
            name=op.f("ck_receivable_payments_kind_known"),
        ),
        sa.ForeignKeyConstraint(
            ["receivable_id"],
            ["platform.receivables.id"],
            name=op.f("fk_receivable_payments_receivable_id_receivables"),
        ),
        sa.ForeignKeyConstraint(
            ["payer_id"],
            ["platform.organizations.id"],
            name=op.f("fk_receivable_payments_payer_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["payee_id"],
            ["platform.organizations.id"],
            name=op.f("fk_receivable_payments_payee_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_receivable_payments")),
        schema="platform",
    )
    op.create_index(
        op.f("ix_receivable_payments_receivable_id"),
        "receivable_payments",
        ["receivable_id"],
        schema="platform",
    )

    op.create_table(
        "receivable_disputes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("receivable_id", sa.String(length=40), nullable=False),
        sa.Column("opened_by", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("resolution", sa.String(length=1000), nullable=True),
        sa.Column("resolved_by", sa.String(length=40), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'resolved')", name=op.f("ck_receivable_disputes_status_known")
        ),
        sa.CheckConstraint(
            "(status = 'open') = (resolved_at IS NULL)",
            name=op.f("ck_receivable_disputes_resolved_when_closed"),
        ),
        sa.ForeignKeyConstraint(
            ["receivable_id"],
            ["platform.receivables.id"],
            name=op.f("fk_receivable_disputes_receivable_id_receivables"),
        ),
        sa.ForeignKeyConstraint(
            ["opened_by"],
            ["platform.organizations.id"],
            name=op.f("fk_receivable_disputes_opened_by_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by"],
            ["platform.organizations.id"],
            name=op.f("fk_receivable_disputes_resolved_by_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_receivable_disputes")),
        schema="platform",
    )
    op.create_index(
        "uq_receivable_disputes_open",
        "receivable_disputes",
        ["receivable_id"],
        unique=True,
        schema="platform",
        postgresql_where=sa.text("status = 'open'"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_receivable_disputes_open", table_name="receivable_disputes", schema="platform"
    )
    op.drop_table("receivable_disputes", schema="platform")
    op.drop_index(
        op.f("ix_receivable_payments_receivable_id"),
        table_name="receivable_payments",
        schema="platform",
    )
    op.drop_table("receivable_payments", schema="platform")
    op.drop_index("ix_receivables_parent_id", table_name="receivables", schema="platform")
    op.drop_index("ix_receivables_root_id", table_name="receivables", schema="platform")
    op.drop_index("uq_receivables_root_invoice", table_name="receivables", schema="platform")
    op.create_unique_constraint(
        op.f("uq_receivables_invoice_id"), "receivables", ["invoice_id"], schema="platform"
    )
    for name in (
        "tier_and_depth_valid",
        "root_with_parent",
        "only_held_open_or_financed",
        "value_conserved",
        "amounts_not_negative",
        "holding_known",
    ):
        op.drop_constraint(
            op.f(f"ck_receivables_{name}"), "receivables", type_="check", schema="platform"
        )
    op.drop_constraint(
        op.f("fk_receivables_root_id_receivables"),
        "receivables",
        type_="foreign_key",
        schema="platform",
    )
    for column in (
        "moved_minor",
        "diluted_minor",
        "paid_minor",
        "holding",
        "depth",
        "tier",
        "root_id",
    ):
        op.drop_column("receivables", column, schema="platform")
