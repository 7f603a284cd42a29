"""The risk-sharing ledger: double entry, hash-chained, append-only, verified.

Accounts are named by what they hold (``pool:CNY``; ``claims_payable:pool:CNY``). An account's
``balance_minor`` is debits − credits, maintained by a trigger on each inserted line and kept
within the account's limits by a CHECK (the pool never goes below zero; a payable never turns into
a receivable). An entry balances (a deferred constraint trigger checks it at commit), its lines
are one-sided and positive, and neither is ever changed (UPDATE/DELETE/TRUNCATE are refused).

Posting is serialised by a transaction-scoped advisory lock, so each entry's ``prev_hash`` is the
hash of the entry before it (``seq`` contiguous): a row changed later, even with the triggers
disabled by a superuser, no longer recomputes, and :func:`verify` names it.

The accounts and the entries of each flow:

- pool top-up: Dr ``pool`` / Cr ``pool_contributions``;
- guarantee fee (at acceptance): Dr ``guarantee_fees_receivable:<supplier>`` /
  Cr ``guarantee_fee_income:<guarantor>``; reversed when the financing is never funded;
- claim raised (default): Dr ``default_losses:<bank>`` / Cr ``claims_payable:<party>`` for each
  party that pays a share (guarantor, pool, others; the bank's own share is no entry);
- the pool pays a claim: Dr ``claims_payable:pool`` / Cr ``pool``;
- a guarantor records paying its claim to the bank (off the platform, by transfer): Dr
  ``claims_payable:<guarantor>`` / Cr ``guarantor_payments:<guarantor>``;
- a recovery returned to the pool: Dr ``pool`` / Cr ``pool_recoveries``.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import rfc8785
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from qilian.kit import ids
from services.api.risk.models import EntryKind, LedgerEntry, LedgerLine, RiskAccount

GENESIS_HASH: Final = "0" * 64
POST_LOCK: Final = 0x5149_4C49_414E_0A10  # pg_advisory_xact_lock key of the risk ledger


@dataclass(frozen=True)
class Account:
    """An account's identity and limits (created on first use)."""

    id: str
    kind: str
    currency: str
    organization_id: str | None = None
    min_balance_minor: int | None = None
    max_balance_minor: int | None = None


def pool(currency: str) -> Account:
    return Account(f"pool:{currency}", "pool", currency, min_balance_minor=0)


def pool_contributions(currency: str) -> Account:
    return Account(f"pool_contributions:{currency}", "pool_contributions", currency)


def pool_recoveries(currency: str) -> Account:
    return Account(f"pool_recoveries:{currency}", "pool_recoveries", currency)


def claims_payable(party: str, organization_id: str | None, currency: str) -> Account:
    owner = organization_id or party
    return Account(
        f"claims_payable:{owner}:{currency}",
        "claims_payable",
        currency,
        organization_id=organization_id,
        max_balance_minor=0,
    )


def guarantor_payments(guarantor_id: str, currency: str) -> Account:
    """What a guarantor paid banks on its claims, outside the platform (credits only)."""
    return Account(
        f"guarantor_payments:{guarantor_id}:{currency}",
        "guarantor_payments",
        currency,
        organization_id=guarantor_id,
        max_balance_minor=0,
    )


def default_losses(bank_id: str, currency: str) -> Account:
    return Account(
        f"default_losses:{bank_id}:{currency}",
        "default_losses",
        currency,
        organization_id=bank_id,
        min_balance_minor=0,
    )


def fee_income(guarantor_id: str, currency: str) -> Account:
    return Account(
        f"guarantee_fee_income:{guarantor_id}:{currency}",
        "guarantee_fee_income",
        currency,
        organization_id=guarantor_id,
        max_balance_minor=0,
    )


def fees_receivable(supplier_id: str, currency: str) -> Account:
    return Account(
        f"guarantee_fees_receivable:{supplier_id}:{currency}",
        "guarantee_fees_receivable",
        currency,
        organization_id=supplier_id,
        min_balance_minor=0,
    )


@dataclass(frozen=True)
class Line:
    account: Account
    debit_minor: int = 0
    credit_minor: int = 0


def debit(account: Account, minor: int) -> Line:
    return Line(account, debit_minor=minor)


def credit(account: Account, minor: int) -> Line:
    return Line(account, credit_minor=minor)


async def ensure_account(session: AsyncSession, account: Account) -> None:
    await session.execute(
        insert(RiskAccount)
        .values(
            id=account.id,
            kind=account.kind,
            organization_id=account.organization_id,
            currency=account.currency,
            min_balance_minor=account.min_balance_minor,
            max_balance_minor=account.max_balance_minor,
        )
        .on_conflict_do_nothing(index_elements=["id"])
    )


async def balance(session: AsyncSession, account: Account, *, lock: bool = False) -> int:
    """The account's balance (debits − credits); 0 for an account never used. ``lock`` holds
    its row until the transaction ends (the pool, while a payment is decided)."""
    await ensure_account(session, account)
    query = select(col(RiskAccount.balance_minor)).where(col(RiskAccount.id) == account.id)
    if lock:
        query = query.with_for_update()
    return int((await session.execute(query)).scalar_one())


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(entry: LedgerEntry, lines: Sequence[LedgerLine]) -> bytes:
    """RFC 8785 JSON of the entry (every column but ``hash``) and its lines in order."""
    document: dict[str, Any] = {
        "seq": entry.seq,
        "id": entry.id,
        "kind": entry.kind,
        "currency": entry.currency,
        "financing_id": entry.financing_id,
        "claim_id": entry.claim_id,
        "actor": entry.actor,
        "memo": entry.memo,
        "posted_at": _iso(entry.posted_at),
        "prev_hash": entry.prev_hash,
        "lines": [
            [ln.line, ln.account_id, ln.debit_minor, ln.credit_minor]
            for ln in sorted(lines, key=lambda x: x.line)
        ],
    }
    encoded: bytes = rfc8785.dumps(document)
    return encoded


def chain_hash(entry: LedgerEntry, lines: Sequence[LedgerLine]) -> str:
    return hashlib.sha256(bytes.fromhex(entry.prev_hash) + canonical(entry, lines)).hexdigest()


async def lock(session: AsyncSession) -> None:
    """Hold the ledger's append lock until the transaction ends. Taken first by whoever will
    post and lock an account (the pool), so that every writer takes the locks in one order."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": POST_LOCK})


async def post(
    session: AsyncSession,
    kind: EntryKind,
    currency: str,
    lines: Sequence[Line],
    *,
    actor: str,
    financing_id: str | None = None,
    claim_id: str | None = None,
    memo: str | None = None,
) -> LedgerEntry:
    """Append one balanced entry at the head of the chain, in the caller's transaction."""
    if len(lines) < 2:
        raise ValueError("an entry has at least two lines")
    for ln in lines:
        if ln.account.currency != currency:
            raise ValueError(f"{ln.account.id} is not in {currency}")
        if not ((ln.debit_minor > 0) ^ (ln.credit_minor > 0)) or min(
            ln.debit_minor, ln.credit_minor
        ):
            raise ValueError("a line is a positive debit or a positive credit")
    if sum(ln.debit_minor for ln in lines) != sum(ln.credit_minor for ln in lines):
        raise ValueError("the entry does not balance")
    await lock(session)
    for account in sorted({ln.account for ln in lines}, key=lambda a: a.id):
        await ensure_account(session, account)
    last = (
        await session.execute(select(LedgerEntry).order_by(col(LedgerEntry.seq).desc()).limit(1))
    ).scalar_one_or_none()
    entry = LedgerEntry(
        id=ids.new_id("jnl"),
        seq=(last.seq + 1) if last else 1,
        kind=kind.value,
        currency=currency,
        financing_id=financing_id,
        claim_id=claim_id,
        actor=actor,
        memo=memo,
        posted_at=datetime.now(UTC),
        prev_hash=last.hash if last else GENESIS_HASH,
        hash="",
    )
    rows = [
        LedgerLine(
            entry_id=entry.id,
            line=i,
            account_id=ln.account.id,
            debit_minor=ln.debit_minor,
            credit_minor=ln.credit_minor,
        )
        for i, ln in enumerate(lines, start=1)
    ]
    entry.hash = chain_hash(entry, rows)
    session.add(entry)
    await session.flush()
    session.add_all(rows)
    await session.flush()
    return entry


# ---------------------------------------------------------------- verification


@dataclass
class Verification:
    """What :func:`verify` found: ``ok`` when every entry recomputes, balances and every stored
    balance equals the sum of its lines within its limits; ``problems`` names each failure."""

    ok: bool
    entries: int
    accounts: int
    head_hash: str
    problems: list[dict[str, Any]] = field(default_factory=list)


async def verify(session: AsyncSession, *, max_problems: int = 100) -> Verification:
    """Recompute the chain, each entry's balance and every account's balance from the lines."""
    problems: list[dict[str, Any]] = []

    def problem(**facts: Any) -> None:
        if len(problems) < max_problems:
            problems.append(facts)

    entries = list(
        (await session.execute(select(LedgerEntry).order_by(col(LedgerEntry.seq)))).scalars()
    )
    by_entry: dict[str, list[LedgerLine]] = defaultdict(list)
    for ln in (await session.execute(select(LedgerLine))).scalars():
        by_entry[ln.entry_id].append(ln)
    sums: dict[str, int] = defaultdict(int)
    prev = GENESIS_HASH
    for expected_seq, entry in enumerate(entries, start=1):
        lines = by_entry.pop(entry.id, [])
        if entry.seq != expected_seq:
            problem(entry_id=entry.id, seq=entry.seq, reason=f"seq gap: expected {expected_seq}")
        if entry.prev_hash != prev:
            problem(entry_id=entry.id, seq=entry.seq, reason="prev_hash is not the previous hash")
        if chain_hash(entry, lines) != entry.hash:
            problem(entry_id=entry.id, seq=entry.seq, reason="hash does not recompute")
        debits = sum(ln.debit_minor for ln in lines)
        credits = sum(ln.credit_minor for ln in lines)
        if len(lines) < 2 or debits != credits:
            problem(
                entry_id=entry.id,
                seq=entry.seq,
                reason="entry does not balance",
                debits=debits,
                credits=credits,
            )
        for ln in lines:
            sums[ln.account_id] += ln.debit_minor - ln.credit_minor
        prev = entry.hash
    for orphan in by_entry:
        problem(entry_id=orphan, reason="lines without an entry")
    accounts = list((await session.execute(select(RiskAccount))).scalars())
    for account in accounts:
        computed = sums.get(account.id, 0)
        if account.balance_minor != computed:
            problem(
                account_id=account.id,
                reason="stored balance differs from its lines",
                stored=account.balance_minor,
                computed=computed,
            )
        low, high = account.min_balance_minor, account.max_balance_minor
        if (low is not None and computed < low) or (high is not None and computed > high):
            problem(account_id=account.id, reason="balance beyond the account's limit")
    return Verification(not problems, len(entries), len(accounts), prev, problems)


__all__ = [
    "Account",
    "Line",
    "Verification",
    "balance",
    "credit",
    "debit",
    "post",
    "verify",
]
