"""risk claims: a guarantor records paying its claim (entry kind guarantor_payment, reference);
at most one payment entry per claim

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = "'top_up', 'guarantee_fee', 'fee_reversal', 'claim_raised', 'claim_paid', 'recovery'"
CHECK = "ck_risk_ledger_entries_entry_kind_known"


def upgrade() -> None:
    op.drop_constraint(op.f(CHECK), "risk_ledger_entries", type_="check", schema="platform")
    op.create_check_constraint(
        op.f(CHECK),
        "risk_ledger_entries",
        f"kind IN ({KINDS}, 'guarantor_payment')",
        schema="platform",
    )
    op.add_column(
        "risk_claims",
        sa.Column("payment_reference", sa.String(length=200), nullable=True),
        schema="platform",
    )
    op.create_index(
        "uq_risk_ledger_entries_claim_payment",
        "risk_ledger_entries",
        ["claim_id"],
        unique=True,
        schema="platform",
        postgresql_where=sa.text("kind IN ('claim_paid', 'guarantor_payment')"),
    )


def downgrade() -> None:
    # fails while a guarantor_payment entry exists (the CHECK validates existing rows, and the
    # append-only triggers refuse deleting them): a ledger with payments stays on this revision
    op.drop_index("uq_risk_ledger_entries_claim_payment", "risk_ledger_entries", schema="platform")
    op.drop_column("risk_claims", "payment_reference", schema="platform")
    op.drop_constraint(op.f(CHECK), "risk_ledger_entries", type_="check", schema="platform")
    op.create_check_constraint(
        op.f(CHECK), "risk_ledger_entries", f"kind IN ({KINDS})", schema="platform"
    )
