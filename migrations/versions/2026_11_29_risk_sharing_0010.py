"""risk sharing: guarantee programmes, covers, claims, the risk ledger, early warnings

The ledger's rules live in the database: a line's insert moves its account's balance (and is
refused when the account's currency differs from the entry's), the balance stays within the
account's limits (CHECK), every entry balances at commit (deferred constraint triggers on
entries and lines), and entries and lines are append-only (UPDATE, DELETE, TRUNCATE refused).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEDGER_TABLES = ("risk_ledger_entries", "risk_ledger_lines")

TRIGGERS = [
    """
    CREATE FUNCTION platform.risk_ledger_refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'platform.% is append-only: % refused', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    *[
        f"""
        CREATE TRIGGER {table}_append_only
            BEFORE UPDATE OR DELETE ON platform.{table}
            FOR EACH ROW EXECUTE FUNCTION platform.risk_ledger_refuse_change()
        """
        for table in LEDGER_TABLES
    ],
    *[
        f"""
        CREATE TRIGGER {table}_no_truncate
            BEFORE TRUNCATE ON platform.{table}
            FOR EACH STATEMENT EXECUTE FUNCTION platform.risk_ledger_refuse_change()
        """
        for table in LEDGER_TABLES
    ],
    """
    CREATE FUNCTION platform.risk_ledger_apply_line() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE
        entry_currency text;
        account_currency text;
    BEGIN
        SELECT currency INTO entry_currency
            FROM platform.risk_ledger_entries WHERE id = NEW.entry_id;
        UPDATE platform.risk_accounts
            SET balance_minor = balance_minor + NEW.debit_minor - NEW.credit_minor
            WHERE id = NEW.account_id
            RETURNING currency INTO account_currency;
        IF account_currency IS DISTINCT FROM entry_currency THEN
            RAISE EXCEPTION 'ledger line %/%: account % is in %, the entry in %',
                NEW.entry_id, NEW.line, NEW.account_id, account_currency, entry_currency
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE TRIGGER risk_ledger_lines_apply
        AFTER INSERT ON platform.risk_ledger_lines
        FOR EACH ROW EXECUTE FUNCTION platform.risk_ledger_apply_line()
    """,
    """
    CREATE FUNCTION platform.risk_ledger_check_balanced() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE
        entry text;
        debits bigint;
        credits bigint;
        lines integer;
    BEGIN
        IF TG_TABLE_NAME = 'risk_ledger_entries' THEN
            entry := NEW.id;
        ELSE
            entry := NEW.entry_id;
        END IF;
        SELECT coalesce(sum(debit_minor), 0), coalesce(sum(credit_minor), 0), count(*)
            INTO debits, credits, lines
            FROM platform.risk_ledger_lines WHERE entry_id = entry;
        IF lines < 2 OR debits <> credits THEN
            RAISE EXCEPTION 'ledger entry % does not balance: debits %, credits %, % lines',
                entry, debits, credits, lines
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END
    $$
    """,
    *[
        f"""
        CREATE CONSTRAINT TRIGGER {table}_balanced
            AFTER INSERT ON platform.{table}
            DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION platform.risk_ledger_check_balanced()
        """
        for table in LEDGER_TABLES
    ],
]


def upgrade() -> None:
    op.create_table(
        "risk_alerts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("rule", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=120), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("summary", sa.String(length=500), nullable=False),
        sa.Column("facts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_alerts")),
        sa.UniqueConstraint("rule", "subject", "period", name="uq_risk_alerts_rule_subject_period"),
        schema="platform",
    )
    op.create_index(
        "ix_risk_alerts_raised_at",
        "risk_alerts",
        ["raised_at", "id"],
        unique=False,
        schema="platform",
    )
    op.create_table(
        "risk_ledger_entries",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("financing_id", sa.String(length=40), nullable=True),
        sa.Column("claim_id", sa.String(length=40), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("memo", sa.String(length=500), nullable=True),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint(
            "kind IN ('top_up', 'guarantee_fee', 'fee_reversal', 'claim_raised', 'claim_paid', "
            "'recovery')",
            name=op.f("ck_risk_ledger_entries_entry_kind_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_ledger_entries")),
        sa.UniqueConstraint("seq", name="uq_risk_ledger_entries_seq"),
        schema="platform",
    )
    op.create_index(
        "ix_risk_ledger_entries_financing",
        "risk_ledger_entries",
        ["financing_id"],
        unique=False,
        schema="platform",
    )
    op.create_table(
        "guarantee_programmes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("guarantor_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("max_amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("clusters", sa.ARRAY(sa.String(length=20)), nullable=False),
        sa.Column("green_only", sa.Boolean(), nullable=False),
        sa.Column("fee_rate", sa.Numeric(precision=10, scale=8), nullable=False),
        sa.Column("loss_shares", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "fee_rate >= 0 AND fee_rate < 1",
            name=op.f("ck_guarantee_programmes_programme_fee_rate_range"),
        ),
        sa.CheckConstraint(
            "max_amount_minor IS NULL OR max_amount_minor > 0",
            name=op.f("ck_guarantee_programmes_programme_max_amount_positive"),
        ),
        sa.ForeignKeyConstraint(
            ["guarantor_id"],
            ["platform.organizations.id"],
            name=op.f("fk_guarantee_programmes_guarantor_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guarantee_programmes")),
        schema="platform",
    )
    op.create_index(
        "ix_guarantee_programmes_guarantor",
        "guarantee_programmes",
        ["guarantor_id", "id"],
        unique=False,
        schema="platform",
    )
    op.create_table(
        "risk_accounts",
        sa.Column("id", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("balance_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("min_balance_minor", sa.BigInteger(), nullable=True),
        sa.Column("max_balance_minor", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "(min_balance_minor IS NULL OR balance_minor >= min_balance_minor) AND "
            "(max_balance_minor IS NULL OR balance_minor <= max_balance_minor)",
            name=op.f("ck_risk_accounts_account_within_limits"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["platform.organizations.id"],
            name=op.f("fk_risk_accounts_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_accounts")),
        schema="platform",
    )
    op.create_table(
        "guarantee_requests",
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("programme_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["programme_id"],
            ["platform.guarantee_programmes.id"],
            name=op.f("fk_guarantee_requests_programme_id_guarantee_programmes"),
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["platform.financing_requests.id"],
            name=op.f("fk_guarantee_requests_request_id_financing_requests"),
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_guarantee_requests")),
        schema="platform",
    )
    op.create_index(
        op.f("ix_guarantee_requests_programme_id"),
        "guarantee_requests",
        ["programme_id"],
        unique=False,
        schema="platform",
    )
    op.create_table(
        "risk_ledger_lines",
        sa.Column("entry_id", sa.String(length=40), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(length=120), nullable=False),
        sa.Column("debit_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("credit_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint(
            "(debit_minor > 0 AND credit_minor = 0) OR (credit_minor > 0 AND debit_minor = 0)",
            name=op.f("ck_risk_ledger_lines_line_one_side_positive"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["platform.risk_accounts.id"],
            name=op.f("fk_risk_ledger_lines_account_id_risk_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["platform.risk_ledger_entries.id"],
            name=op.f("fk_risk_ledger_lines_entry_id_risk_ledger_entries"),
        ),
        sa.PrimaryKeyConstraint("entry_id", "line", name=op.f("pk_risk_ledger_lines")),
        schema="platform",
    )
    op.create_index(
        "ix_risk_ledger_lines_account",
        "risk_ledger_lines",
        ["account_id"],
        unique=False,
        schema="platform",
    )
    op.create_table(
        "guarantee_covers",
        sa.Column("financing_id", sa.String(length=40), nullable=False),
        sa.Column("programme_id", sa.String(length=40), nullable=False),
        sa.Column("guarantor_id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("covered_minor", sa.BigInteger(), nullable=False),
        sa.Column("fee_rate", sa.Numeric(precision=10, scale=8), nullable=False),
        sa.Column("fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("loss_shares", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("fee_entry_id", sa.String(length=40), nullable=True),
        sa.Column("fee_reversed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("attached_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "covered_minor > 0 AND fee_minor >= 0",
            name=op.f("ck_guarantee_covers_cover_amounts_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["financing_id"],
            ["platform.financings.id"],
            name=op.f("fk_guarantee_covers_financing_id_financings"),
        ),
        sa.ForeignKeyConstraint(
            ["guarantor_id"],
            ["platform.organizations.id"],
            name=op.f("fk_guarantee_covers_guarantor_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["programme_id"],
            ["platform.guarantee_programmes.id"],
            name=op.f("fk_guarantee_covers_programme_id_guarantee_programmes"),
        ),
        sa.PrimaryKeyConstraint("financing_id", name=op.f("pk_guarantee_covers")),
        schema="platform",
    )
    op.create_index(
        "ix_guarantee_covers_guarantor",
        "guarantee_covers",
        ["guarantor_id", "financing_id"],
        unique=False,
        schema="platform",
    )
    op.create_index(
        "ix_guarantee_covers_programme",
        "guarantee_covers",
        ["programme_id"],
        unique=False,
        schema="platform",
    )
    op.create_table(
        "risk_claims",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("financing_id", sa.String(length=40), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("party", sa.String(length=20), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=True),
        sa.Column("bank_id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("share", sa.Numeric(precision=12, scale=10), nullable=False),
        sa.Column("loss_minor", sa.BigInteger(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("recovered_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("payment_entry_id", sa.String(length=40), nullable=True),
        sa.CheckConstraint(
            "party IN ('guarantor', 'bank', 'pool', 'other')",
            name=op.f("ck_risk_claims_claim_party_known"),
        ),
        sa.CheckConstraint(
            "state IN ('borne', 'raised', 'queued', 'paid')",
            name=op.f("ck_risk_claims_claim_state_known"),
        ),
        sa.CheckConstraint(
            "amount_minor >= 0 AND loss_minor > 0 AND recovered_minor >= 0 "
            "AND recovered_minor <= amount_minor",
            name=op.f("ck_risk_claims_claim_amounts_valid"),
        ),
        sa.CheckConstraint(
            "share > 0 AND share <= 1", name=op.f("ck_risk_claims_claim_share_range")
        ),
        sa.ForeignKeyConstraint(
            ["bank_id"],
            ["platform.organizations.id"],
            name=op.f("fk_risk_claims_bank_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["financing_id"],
            ["platform.guarantee_covers.financing_id"],
            name=op.f("fk_risk_claims_financing_id_guarantee_covers"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["platform.organizations.id"],
            name=op.f("fk_risk_claims_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_claims")),
        sa.UniqueConstraint("financing_id", "line", name="uq_risk_claims_financing_line"),
        schema="platform",
    )
    op.create_index(
        "ix_risk_claims_queued",
        "risk_claims",
        ["currency", "seq"],
        unique=False,
        schema="platform",
        postgresql_where=sa.text("state = 'queued'"),
    )
    for statement in TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    for table in LEDGER_TABLES:
        for trigger in ("balanced", "no_truncate", "append_only"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_{trigger} ON platform.{table}")
    op.execute("DROP TRIGGER IF EXISTS risk_ledger_lines_apply ON platform.risk_ledger_lines")
    for function in ("check_balanced", "apply_line", "refuse_change"):
        op.execute(f"DROP FUNCTION IF EXISTS platform.risk_ledger_{function}()")
    op.drop_index(
        "ix_risk_claims_queued",
        table_name="risk_claims",
        schema="platform",
        postgresql_where=sa.text("state = 'queued'"),
    )
    op.drop_table("risk_claims", schema="platform")
    op.drop_index("ix_guarantee_covers_programme", table_name="guarantee_covers", schema="platform")
    op.drop_index("ix_guarantee_covers_guarantor", table_name="guarantee_covers", schema="platform")
    op.drop_table("guarantee_covers", schema="platform")
    op.drop_index("ix_risk_ledger_lines_account", table_name="risk_ledger_lines", schema="platform")
    op.drop_table("risk_ledger_lines", schema="platform")
    op.drop_index(
        op.f("ix_guarantee_requests_programme_id"),
        table_name="guarantee_requests",
        schema="platform",
    )
    op.drop_table("guarantee_requests", schema="platform")
    op.drop_table("risk_accounts", schema="platform")
    op.drop_index(
        "ix_guarantee_programmes_guarantor", table_name="guarantee_programmes", schema="platform"
    )
    op.drop_table("guarantee_programmes", schema="platform")
    op.drop_index(
        "ix_risk_ledger_entries_financing", table_name="risk_ledger_entries", schema="platform"
    )
    op.drop_table("risk_ledger_entries", schema="platform")
    op.drop_index("ix_risk_alerts_raised_at", table_name="risk_alerts", schema="platform")
    op.drop_table("risk_alerts", schema="platform")
