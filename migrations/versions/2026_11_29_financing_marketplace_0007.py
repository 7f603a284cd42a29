"""financing marketplace: requests and their items, offers, financings, registry operations;
receivables.financier_id

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "financing_requests",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("requester_id", sa.String(length=40), nullable=False),
        sa.Column("debtor_id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("face_value_minor", sa.BigInteger(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("closes_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("min_advance_rate", sa.Numeric(precision=10, scale=8), nullable=True),
        sa.Column("recourse", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("state_reason", sa.String(length=200), nullable=True),
        sa.Column("accepted_offer_id", sa.String(length=40), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "recourse IN ('any', 'recourse', 'non_recourse')",
            name=op.f("ck_financing_requests_request_recourse_known"),
        ),
        sa.CheckConstraint(
            "state IN ('open', 'accepted', 'funded', 'repaid', 'defaulted', 'cancelled', "
            "'expired', 'lapsed', 'rolled_back')",
            name=op.f("ck_financing_requests_request_state_known"),
        ),
        sa.CheckConstraint(
            "face_value_minor > 0", name=op.f("ck_financing_requests_request_face_value_positive")
        ),
        sa.CheckConstraint(
            "min_advance_rate IS NULL OR (min_advance_rate > 0 AND min_advance_rate <= 1)",
            name=op.f("ck_financing_requests_request_min_advance_rate_range"),
        ),
        sa.ForeignKeyConstraint(
            ["debtor_id"],
            ["platform.organizations.id"],
            name=op.f("fk_financing_requests_debtor_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["requester_id"],
            ["platform.organizations.id"],
            name=op.f("fk_financing_requests_requester_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_financing_requests")),
        schema="platform",
    )
    op.create_index(
        "ix_financing_requests_open_closes_at",
        "financing_requests",
        ["closes_at"],
        unique=False,
        schema="platform",
        postgresql_where=sa.text("state = 'open'"),
    )
    op.create_index(
        "ix_financing_requests_requester",
        "financing_requests",
        ["requester_id", "id"],
        unique=False,
        schema="platform",
    )
    op.create_table(
        "offers",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("bank_id", sa.String(length=40), nullable=False),
        sa.Column("advance_rate", sa.Numeric(precision=10, scale=8), nullable=False),
        sa.Column("annual_rate", sa.Numeric(precision=10, scale=8), nullable=False),
        sa.Column("fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("day_count", sa.String(length=10), nullable=False),
        sa.Column("recourse", sa.Boolean(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("replaces_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "day_count IN ('ACT/360', 'ACT/365')", name=op.f("ck_offers_offer_day_count_known")
        ),
        sa.CheckConstraint(
            "state IN ('active', 'accepted', 'withdrawn', 'expired', 'lost', 'replaced')",
            name=op.f("ck_offers_offer_state_known"),
        ),
        sa.CheckConstraint(
            "advance_rate > 0 AND advance_rate <= 1",
            name=op.f("ck_offers_offer_advance_rate_range"),
        ),
        sa.CheckConstraint(
            "annual_rate >= 0 AND annual_rate < 1", name=op.f("ck_offers_offer_annual_rate_range")
        ),
        sa.CheckConstraint("fee_minor >= 0", name=op.f("ck_offers_offer_fee_not_negative")),
        sa.ForeignKeyConstraint(
            ["bank_id"], ["platform.organizations.id"], name=op.f("fk_offers_bank_id_organizations")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["platform.financing_requests.id"],
            name=op.f("fk_offers_request_id_financing_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offers")),
        schema="platform",
    )
    op.create_index(
        "ix_offers_active_expires_at",
        "offers",
        ["expires_at"],
        unique=False,
        schema="platform",
        postgresql_where=sa.text("state = 'active'"),
    )
    op.create_index("ix_offers_bank", "offers", ["bank_id", "id"], unique=False, schema="platform")
    op.create_index(
        "ix_offers_request", "offers", ["request_id", "id"], unique=False, schema="platform"
    )
    op.create_index(
        "uq_offers_accepted_request",
        "offers",
        ["request_id"],
        unique=True,
        schema="platform",
        postgresql_where=sa.text("state = 'accepted'"),
    )
    op.create_index(
        "uq_offers_active_bank_request",
        "offers",
        ["request_id", "bank_id"],
        unique=True,
        schema="platform",
        postgresql_where=sa.text("state = 'active'"),
    )
    op.create_table(
        "financing_request_items",
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("receivable_id", sa.String(length=40), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("live", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "amount_minor > 0", name=op.f("ck_financing_request_items_request_item_amount_positive")
        ),
        sa.ForeignKeyConstraint(
            ["receivable_id"],
            ["platform.receivables.id"],
            name=op.f("fk_financing_request_items_receivable_id_receivables"),
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["platform.financing_requests.id"],
            name=op.f("fk_financing_request_items_request_id_financing_requests"),
        ),
        sa.PrimaryKeyConstraint(
            "request_id", "receivable_id", name=op.f("pk_financing_request_items")
        ),
        schema="platform",
    )
    op.create_index(
        "ix_financing_request_items_receivable",
        "financing_request_items",
        ["receivable_id"],
        unique=False,
        schema="platform",
    )
    op.create_index(
        "uq_financing_request_items_live_receivable",
        "financing_request_items",
        ["receivable_id"],
        unique=True,
        schema="platform",
        postgresql_where=sa.text("live"),
    )
    op.create_table(
        "financings",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("offer_id", sa.String(length=40), nullable=False),
        sa.Column("bank_id", sa.String(length=40), nullable=False),
        sa.Column("supplier_id", sa.String(length=40), nullable=False),
        sa.Column("debtor_id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("face_value_minor", sa.BigInteger(), nullable=False),
        sa.Column("advance_minor", sa.BigInteger(), nullable=False),
        sa.Column("discount_minor", sa.BigInteger(), nullable=False),
        sa.Column("fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("net_proceeds_minor", sa.BigInteger(), nullable=False),
        sa.Column("effective_annual_rate", sa.Numeric(precision=20, scale=8), nullable=False),
        sa.Column("advance_rate", sa.Numeric(precision=10, scale=8), nullable=False),
        sa.Column("annual_rate", sa.Numeric(precision=10, scale=8), nullable=False),
        sa.Column("day_count", sa.String(length=10), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("recourse", sa.Boolean(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("state", sa.String(length=30), nullable=False),
        sa.Column("state_reason", sa.String(length=200), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fund_by", sa.DateTime(timezone=True), nullable=True),
        sa.Column("funded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disbursement_reference", sa.String(length=200), nullable=True),
        sa.Column("repaid_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("recourse_claim_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "state IN ('registering', 'awaiting_disbursement', 'funded', 'repaid', 'defaulted', "
            "'lapsed', 'rolled_back')",
            name=op.f("ck_financings_financing_state_known"),
        ),
        sa.CheckConstraint(
            "advance_minor > 0 AND net_proceeds_minor > 0 AND discount_minor >= 0 "
            "AND fee_minor >= 0 AND repaid_minor >= 0 AND recourse_claim_minor >= 0",
            name=op.f("ck_financings_financing_amounts_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["bank_id"],
            ["platform.organizations.id"],
            name=op.f("fk_financings_bank_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["debtor_id"],
            ["platform.organizations.id"],
            name=op.f("fk_financings_debtor_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["offer_id"], ["platform.offers.id"], name=op.f("fk_financings_offer_id_offers")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["platform.financing_requests.id"],
            name=op.f("fk_financings_request_id_financing_requests"),
        ),
        sa.ForeignKeyConstraint(
            ["supplier_id"],
            ["platform.organizations.id"],
            name=op.f("fk_financings_supplier_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_financings")),
        sa.UniqueConstraint("offer_id", name=op.f("uq_financings_offer_id")),
        sa.UniqueConstraint("request_id", name=op.f("uq_financings_request_id")),
        schema="platform",
    )
    op.create_index(
        "ix_financings_awaiting_fund_by",
        "financings",
        ["fund_by"],
        unique=False,
        schema="platform",
        postgresql_where=sa.text("state = 'awaiting_disbursement'"),
    )
    op.create_index(
        "ix_financings_bank", "financings", ["bank_id", "id"], unique=False, schema="platform"
    )
    op.create_index(
        "ix_financings_debtor", "financings", ["debtor_id", "id"], unique=False, schema="platform"
    )
    op.create_index(
        "ix_financings_funded_due",
        "financings",
        ["due_date"],
        unique=False,
        schema="platform",
        postgresql_where=sa.text("state = 'funded'"),
    )
    op.create_index(
        "ix_financings_supplier",
        "financings",
        ["supplier_id", "id"],
        unique=False,
        schema="platform",
    )
    op.create_table(
        "financing_registry_operations",
        sa.Column("operation_id", sa.String(length=40), nullable=False),
        sa.Column("financing_id", sa.String(length=40), nullable=False),
        sa.Column("receivable_id", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.SmallInteger(), nullable=True),
        sa.Column("outcome", sa.String(length=10), nullable=True),
        sa.Column("error", sa.String(length=100), nullable=True),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "action IN ('register', 'release')",
            name=op.f("ck_financing_registry_operations_registry_action_known"),
        ),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('done', 'refused')",
            name=op.f("ck_financing_registry_operations_registry_outcome_known"),
        ),
        sa.ForeignKeyConstraint(
            ["financing_id"],
            ["platform.financings.id"],
            name=op.f("fk_financing_registry_operations_financing_id_financings"),
        ),
        sa.ForeignKeyConstraint(
            ["receivable_id"],
            ["platform.receivables.id"],
            name=op.f("fk_financing_registry_operations_receivable_id_receivables"),
        ),
        sa.PrimaryKeyConstraint("operation_id", name=op.f("pk_financing_registry_operations")),
        schema="platform",
    )
    op.create_index(
        "ix_financing_registry_operations_financing",
        "financing_registry_operations",
        ["financing_id"],
        unique=False,
        schema="platform",
    )
    op.add_column(
        "receivables",
        sa.Column("financier_id", sa.String(length=40), nullable=True),
        schema="platform",
    )
    op.create_index(
        "ix_receivables_financier_id",
        "receivables",
        ["financier_id", "id"],
        unique=False,
        schema="platform",
        postgresql_where=sa.text("financier_id IS NOT NULL"),
    )
    op.create_foreign_key(
        op.f("fk_receivables_financier_id_organizations"),
        "receivables",
        "organizations",
        ["financier_id"],
        ["id"],
        source_schema="platform",
        referent_schema="platform",
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("fk_receivables_financier_id_organizations"),
        "receivables",
        schema="platform",
        type_="foreignkey",
    )
    op.drop_index("ix_receivables_financier_id", table_name="receivables", schema="platform")
    op.drop_column("receivables", "financier_id", schema="platform")
    for table in (
        "financing_registry_operations",
        "financings",
        "financing_request_items",
        "offers",
        "financing_requests",
    ):
        op.drop_table(table, schema="platform")
