"""receivables, their events, invoices, core firm payment terms and bulk invoice imports

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "core_firm_terms",
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("payment_terms_days", sa.Integer(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "payment_terms_days IS NULL OR payment_terms_days BETWEEN 0 AND 3650",
            name=op.f("ck_core_firm_terms_payment_terms_days_range"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["platform.organizations.id"],
            name=op.f("fk_core_firm_terms_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_core_firm_terms")),
        schema="platform",
    )
    op.create_table(
        "invoice_imports",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=1000), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed')",
            name=op.f("ck_invoice_imports_status_known"),
        ),
        sa.CheckConstraint(
            "done >= 0 AND done <= total", name=op.f("ck_invoice_imports_done_within_total")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["platform.organizations.id"],
            name=op.f("fk_invoice_imports_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_imports")),
        sa.UniqueConstraint("organization_id", "sha256", name="uq_invoice_imports_org_sha256"),
        schema="platform",
    )
    op.create_table(
        "invoices",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("format", sa.String(length=20), nullable=False),
        sa.Column("invoice_number", sa.String(length=200), nullable=False),
        sa.Column("number_key", sa.String(length=200), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("seller_tax_id", sa.String(length=64), nullable=False),
        sa.Column("buyer_tax_id", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("receivable_id", sa.String(length=40), nullable=True),
        sa.Column("parsed", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('invoice', 'credit_note')", name=op.f("ck_invoices_kind_known")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["platform.organizations.id"],
            name=op.f("fk_invoices_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("fingerprint", name="uq_invoices_fingerprint"),
        schema="platform",
    )
    op.create_index(
        "ix_invoices_organization_id",
        "invoices",
        ["organization_id", "id"],
        unique=False,
        schema="platform",
    )
    op.create_index(
        "ix_invoices_parties_number",
        "invoices",
        ["seller_tax_id", "buyer_tax_id", "number_key"],
        unique=False,
        schema="platform",
    )
    op.create_index(
        op.f("ix_invoices_receivable_id"),
        "invoices",
        ["receivable_id"],
        unique=False,
        schema="platform",
    )
    op.create_index(
        op.f("ix_invoices_sha256"), "invoices", ["sha256"], unique=False, schema="platform"
    )
    op.create_table(
        "invoice_import_rows",
        sa.Column("import_id", sa.String(length=40), nullable=False),
        sa.Column("row", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("invoice_id", sa.String(length=40), nullable=True),
        sa.Column("receivable_id", sa.String(length=40), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.String(length=1000), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('created', 'diluted', 'duplicate', 'refused')",
            name=op.f("ck_invoice_import_rows_outcome_known"),
        ),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["platform.invoice_imports.id"],
            name=op.f("fk_invoice_import_rows_import_id_invoice_imports"),
        ),
        sa.PrimaryKeyConstraint("import_id", "row", name=op.f("pk_invoice_import_rows")),
        schema="platform",
    )
    op.create_table(
        "receivables",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("invoice_id", sa.String(length=40), nullable=False),
        sa.Column("parent_id", sa.String(length=40), nullable=True),
        sa.Column("creditor_id", sa.String(length=40), nullable=False),
        sa.Column("holder_id", sa.String(length=40), nullable=False),
        sa.Column("debtor_id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("face_value_minor", sa.BigInteger(), nullable=False),
        sa.Column("open_amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("due_date_source", sa.String(length=20), nullable=False),
        sa.Column("confirmation", sa.String(length=20), nullable=False),
        sa.Column("financing", sa.String(length=20), nullable=False),
        sa.Column("settlement", sa.String(length=20), nullable=False),
        sa.Column("dispute", sa.String(length=20), nullable=False),
        sa.Column("event_seq", sa.Integer(), nullable=False),
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
            "confirmation IN ('pending', 'confirmed', 'rejected', 'cancelled')",
            name=op.f("ck_receivables_confirmation_known"),
        ),
        sa.CheckConstraint(
            "dispute IN ('none', 'open', 'resolved')", name=op.f("ck_receivables_dispute_known")
        ),
        sa.CheckConstraint(
            "due_date_source IN ('invoice', 'payment_terms')",
            name=op.f("ck_receivables_due_date_source_known"),
        ),
        sa.CheckConstraint(
            "financing IN ('unfinanced', 'in_auction', 'financed')",
            name=op.f("ck_receivables_financing_known"),
        ),
        sa.CheckConstraint(
            "settlement IN ('open', 'partially_paid', 'paid', 'overdue', 'written_off')",
            name=op.f("ck_receivables_settlement_known"),
        ),
        sa.CheckConstraint(
            "due_date >= issue_date", name=op.f("ck_receivables_due_not_before_issue")
        ),
        sa.CheckConstraint("event_seq >= 0", name=op.f("ck_receivables_event_seq_not_negative")),
        sa.CheckConstraint("face_value_minor > 0", name=op.f("ck_receivables_face_value_positive")),
        sa.CheckConstraint(
            "open_amount_minor >= 0 AND open_amount_minor <= face_value_minor",
            name=op.f("ck_receivables_open_amount_within_face_value"),
        ),
        sa.ForeignKeyConstraint(
            ["creditor_id"],
            ["platform.organizations.id"],
            name=op.f("fk_receivables_creditor_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["debtor_id"],
            ["platform.organizations.id"],
            name=op.f("fk_receivables_debtor_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["holder_id"],
            ["platform.organizations.id"],
            name=op.f("fk_receivables_holder_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["platform.invoices.id"],
            name=op.f("fk_receivables_invoice_id_invoices"),
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["platform.receivables.id"],
            name=op.f("fk_receivables_parent_id_receivables"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_receivables")),
        sa.UniqueConstraint("invoice_id", name=op.f("uq_receivables_invoice_id")),
        schema="platform",
    )
    op.create_index(
        "ix_receivables_creditor_id",
        "receivables",
        ["creditor_id", "id"],
        unique=False,
        schema="platform",
    )
    op.create_index(
        "ix_receivables_debtor_id",
        "receivables",
        ["debtor_id", "id"],
        unique=False,
        schema="platform",
    )
    op.create_index(
        op.f("ix_receivables_due_date"),
        "receivables",
        ["due_date"],
        unique=False,
        schema="platform",
    )
    op.create_index(
        "ix_receivables_holder_id",
        "receivables",
        ["holder_id", "id"],
        unique=False,
        schema="platform",
    )
    op.create_table(
        "receivable_events",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("receivable_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.CheckConstraint("seq >= 1", name=op.f("ck_receivable_events_seq_positive")),
        sa.ForeignKeyConstraint(
            ["receivable_id"],
            ["platform.receivables.id"],
            name=op.f("fk_receivable_events_receivable_id_receivables"),
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_receivable_events")),
        sa.UniqueConstraint("receivable_id", "seq", name="uq_receivable_events_receivable_seq"),
        schema="platform",
    )


def downgrade() -> None:
    op.drop_table("receivable_events", schema="platform")
    op.drop_index("ix_receivables_holder_id", table_name="receivables", schema="platform")
    op.drop_index(op.f("ix_receivables_due_date"), table_name="receivables", schema="platform")
    op.drop_index("ix_receivables_debtor_id", table_name="receivables", schema="platform")
    op.drop_index("ix_receivables_creditor_id", table_name="receivables", schema="platform")
    op.drop_table("receivables", schema="platform")
    op.drop_table("invoice_import_rows", schema="platform")
    op.drop_index(op.f("ix_invoices_sha256"), table_name="invoices", schema="platform")
    op.drop_index(op.f("ix_invoices_receivable_id"), table_name="invoices", schema="platform")
    op.drop_index("ix_invoices_parties_number", table_name="invoices", schema="platform")
    op.drop_index("ix_invoices_organization_id", table_name="invoices", schema="platform")
    op.drop_table("invoices", schema="platform")
    op.drop_table("invoice_imports", schema="platform")
    op.drop_table("core_firm_terms", schema="platform")
