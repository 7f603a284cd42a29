"""The rules of risk sharing (政银担): guarantee programmes, the cover a financing request asks
for and the financing gets at acceptance, the claims of a covered default and a guarantor's
payment of its claim, and the risk compensation pool (top-ups, payments in order, recoveries).
Every money movement is a ledger entry (:mod:`services.api.risk.ledger`).

**Loss** (docs/risk.md): the principal the bank advanced and was not paid back — the financing's
``advance`` minus what was paid to the bank on its receivables (``repaid``), never below zero.
Interest (the discount) and fees are the bank's own risk and are not covered.

**Allocation**: each party's exact part is ``loss × share`` (shares are exact decimals summing to
1). Each gets the integer part (minor units, rounded down); the remaining minor units — fewer
than the number of parties — go one each to the largest fractional parts, ties to the earlier
line of the programme's ``loss_shares``. The parts sum exactly to the loss, and none is more than
one minor unit from its exact value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from qilian.kit import ids
from qilian.kit.errors import Conflict, Forbidden, InvalidInput, NotFound
from qilian.kit.money import Money, MoneyError
from services.api.audit import service as audit
from services.api.auth.models import Principal
from services.api.financing.models import FinancingRecord, FinancingRequest, FinancingState
from services.api.organizations.models import Organization, Role
from services.api.risk import ledger
from services.api.risk.models import (
    ClaimState,
    EntryKind,
    GuaranteeCover,
    GuaranteeProgramme,
    GuaranteeRequest,
    Party,
    RiskClaim,
)
from services.api.webhooks import service as webhooks

log = structlog.get_logger(__name__)

SYSTEM_ACTOR = "qilian"
LIVE_FINANCING_STATES = (
    FinancingState.registering.value,
    FinancingState.awaiting_disbursement.value,
    FinancingState.funded.value,
)
NEVER_FUNDED_STATES = (FinancingState.lapsed.value, FinancingState.rolled_back.value)


class ClaimConflict(Conflict):
    slug, title = "claim-state", "Not possible in the claim's current state"


def now() -> datetime:
    return datetime.now(UTC)


def field_error(field: str, message: str, where: str = "body") -> InvalidInput:
    return InvalidInput(message, errors=[{"field": field, "in": where, "message": message}])


# ---------------------------------------------------------------- shares and allocation


@dataclass(frozen=True)
class LossShare:
    party: Party
    share: Decimal
    organization_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "party": self.party.value,
            "organization_id": self.organization_id,
            "share": str(self.share),
        }

    @classmethod
    def of(cls, data: dict[str, Any]) -> LossShare:
        return cls(Party(data["party"]), Decimal(data["share"]), data.get("organization_id"))


def check_shares(shares: Sequence[LossShare], field: str = "loss_shares") -> None:
    """Each share above 0 and at most 1, the guarantor, the bank and the pool at most once each,
    an ``other`` party names its organisation (once), and the shares sum to exactly 1."""
    if not shares:
        raise field_error(field, "at least one loss share")
    seen: set[tuple[str, str | None]] = set()
    for i, s in enumerate(shares):
        where = f"{field}[{i}].share"
        if not s.share.is_finite() or not Decimal(0) < s.share <= Decimal(1):
            raise field_error(where, "a share is above 0 and at most 1")
        if s.share.normalize().as_tuple().exponent < -10:  # type: ignore[operator]
            raise field_error(where, "a share has at most 10 decimals")
        if s.party == Party.other and not s.organization_id:
            raise field_error(
                f"{field}[{i}].organization_id", "an other party names its organisation"
            )
        if s.party != Party.other and s.organization_id is not None:
            raise field_error(
                f"{field}[{i}].organization_id", "only an other party names an organisation"
            )
        key = (s.party.value, s.organization_id)
        if key in seen:
            raise field_error(f"{field}[{i}].party", f"{s.party.value} appears twice")
        seen.add(key)
    total = sum((s.share for s in shares), Decimal(0))
    if total != Decimal(1):
        raise field_error(field, f"the loss shares must sum to exactly 1 (they sum to {total})")


def allocate(loss_minor: int, shares: Sequence[Decimal]) -> list[int]:
    """Split ``loss_minor`` by ``shares`` (exact, summing to 1): largest remainder, ties to the
    earlier share. The parts sum exactly to ``loss_minor``."""
    if loss_minor < 0:
        raise ValueError("a loss is not negative")
    exact = [Fraction(loss_minor) * Fraction(s) for s in shares]
    if sum(Fraction(s) for s in shares) != 1:
        raise ValueError("shares must sum to 1")
    parts = [int(e) for e in exact]  # floor: every exact part is ≥ 0
    remainder = loss_minor - sum(parts)
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in order[:remainder]:
        parts[i] += 1
    return parts


# ---------------------------------------------------------------- programmes


@dataclass(frozen=True)
class ProgrammeTerms:
    name: str
    currency: str
    max_amount: Any | None  # a decimal amount in ``currency``
    clusters: list[str]
    green_only: bool
    fee_rate: Decimal
    loss_shares: list[LossShare]


async def create_programme(
    session: AsyncSession, principal: Principal, terms: ProgrammeTerms
) -> GuaranteeProgramme:
    max_minor = None
    if terms.max_amount is not None:
        try:
            max_minor = Money.of(terms.max_amount, terms.currency).minor
        except MoneyError as exc:
            raise field_error("max_amount.amount", str(exc)) from None
        if max_minor <= 0:
            raise field_error("max_amount.amount", "max_amount is positive")
    if not Decimal(0) <= terms.fee_rate < Decimal(1):
        raise field_error("fee_rate", "fee_rate is at least 0 and below 1")
    check_shares(terms.loss_shares)
    if not any(s.party == Party.guarantor for s in terms.loss_shares):
        raise field_error("loss_shares", "the guarantor bears a share of its own programme")
    for i, s in enumerate(terms.loss_shares):
        named = s.organization_id
        if named is not None and await session.get(Organization, named) is None:
            raise field_error(
                f"loss_shares[{i}].organization_id", f"there is no organisation {s.organization_id}"
            )
    programme = GuaranteeProgramme(
        id=ids.new_id("gpr"),
        guarantor_id=principal.organization_id,
        name=terms.name,
        currency=terms.currency,
        max_amount_minor=max_minor,
        clusters=sorted(set(terms.clusters)),
        green_only=terms.green_only,
        fee_rate=terms.fee_rate,
        loss_shares=[s.to_json() for s in terms.loss_shares],
        active=True,
    )
    session.add(programme)
    await session.flush()
    await audit.append(
        session,
        principal,
        "guarantee_programme.created",
        object_type="guarantee_programme",
        object_id=programme.id,
        details={"loss_shares": programme.loss_shares, "fee_rate": str(programme.fee_rate)},
    )
    return programme


async def get_programme(session: AsyncSession, programme_id: str) -> GuaranteeProgramme:
    programme = await session.get(GuaranteeProgramme, programme_id)
    if programme is None:
        raise NotFound(f"there is no guarantee programme {programme_id}")
    return programme


def list_programmes_query(guarantor_id: str | None, active: bool | None) -> Any:
    query = select(GuaranteeProgramme)
    if guarantor_id is not None:
        query = query.where(col(GuaranteeProgramme.guarantor_id) == guarantor_id)
    if active is not None:
        query = query.where(col(GuaranteeProgramme.active) == active)
    return query


def ineligibility(
    programme: GuaranteeProgramme,
    currency: str,
    face_value_minor: int,
    debtor: Organization,
    supplier: Organization,
) -> str | None:
    """Why the programme cannot cover this request, or None."""
    if not programme.active:
        return "the programme is closed"
    if programme.currency != currency:
        return f"the programme covers {programme.currency} only"
    if programme.max_amount_minor is not None and face_value_minor > programme.max_amount_minor:
        limit = Money(programme.max_amount_minor, programme.currency)
        return f"the programme covers requests of at most {limit}"
    if programme.clusters and (debtor.cluster or "") not in programme.clusters:
        return f"the programme covers the clusters {', '.join(programme.clusters)} only"
    if programme.green_only and not supplier.green:
        return "the programme covers green suppliers only"
    return None


async def ask_cover(session: AsyncSession, request: FinancingRequest, programme_id: str) -> None:
    """A new financing request asks for the programme's cover (422 naming ``programme_id`` when
    the programme does not exist or the request is not eligible)."""
    programme = await session.get(GuaranteeProgramme, programme_id)
    if programme is None:
        raise field_error("programme_id", f"there is no guarantee programme {programme_id}")
    debtor = await session.get(Organization, request.debtor_id)
    supplier = await session.get(Organization, request.requester_id)
    assert debtor is not None
    assert supplier is not None
    why = ineligibility(programme, request.currency, request.face_value_minor, debtor, supplier)
    if why is not None:
        raise field_error("programme_id", f"the request is not eligible: {why}")
    session.add(GuaranteeRequest(request_id=request.id, programme_id=programme.id))
    await session.flush()


def round_minor(exact_minor: Fraction, currency: str) -> int:
    """An exact amount in minor units, rounded half-even to a whole minor unit once, through the
    kit's one rounding place (the decimal context is wide enough for the division to be exact
    whenever the result terminates, so a tie is seen as a tie)."""
    with localcontext() as ctx:
        ctx.prec = 80
        amount = Decimal(exact_minor.numerator) / Decimal(exact_minor.denominator)
        amount *= Money(1, currency).amount  # one minor unit as an amount: 0.01 for CNY
    return Money.rounded(amount, currency).minor


def guarantee_fee(covered_minor: int, fee_rate: Decimal, days: int, currency: str) -> int:
    """The guarantee fee: covered amount × annual fee rate × days / 365, rounded once."""
    return round_minor(Fraction(covered_minor) * Fraction(fee_rate) * days / 365, currency)


async def programme_views(
    session: AsyncSession, request_ids: Sequence[str]
) -> dict[str, dict[str, Any] | None]:
    """What a bank pricing each request sees of the cover it asks for (``None`` when it asks
    for none), in two queries for the whole list."""
    out: dict[str, dict[str, Any] | None] = dict.fromkeys(request_ids)
    if not out:
        return out
    asked = (
        (
            await session.execute(
                select(GuaranteeRequest).where(col(GuaranteeRequest.request_id).in_(sorted(out)))
            )
        )
        .scalars()
        .all()
    )
    if not asked:
        return out
    programmes = {
        p.id: p
        for p in (
            await session.execute(
                select(GuaranteeProgramme).where(
                    col(GuaranteeProgramme.id).in_(sorted({a.programme_id for a in asked}))
                )
            )
        ).scalars()
    }
    for a in asked:
        programme = programmes[a.programme_id]
        out[a.request_id] = {
            "programme_id": programme.id,
            "name": programme.name,
            "guarantor_id": programme.guarantor_id,
            "fee_rate": str(programme.fee_rate.normalize()),
            "loss_shares": programme.loss_shares,
        }
    return out


async def attach_cover(session: AsyncSession, financing: FinancingRecord) -> GuaranteeCover | None:
    """At acceptance: the cover the request asked for, its shares frozen, and the guarantee fee
    posted (the supplier owes it to the guarantor)."""
    asked = await session.get(GuaranteeRequest, financing.request_id)
    if asked is None:
        return None
    programme = await session.get(GuaranteeProgramme, asked.programme_id)
    assert programme is not None
    covered = financing.advance_minor
    fee = guarantee_fee(covered, programme.fee_rate, financing.days, financing.currency)
    cover = GuaranteeCover(
        financing_id=financing.id,
        programme_id=programme.id,
        guarantor_id=programme.guarantor_id,
        currency=financing.currency,
        covered_minor=covered,
        fee_rate=programme.fee_rate,
        fee_minor=fee,
        loss_shares=list(programme.loss_shares),
        attached_at=financing.accepted_at,
    )
    session.add(cover)
    await session.flush()
    if fee > 0:
        entry = await ledger.post(
            session,
            EntryKind.guarantee_fee,
            financing.currency,
            [
                ledger.debit(ledger.fees_receivable(financing.supplier_id, cover.currency), fee),
                ledger.credit(ledger.fee_income(programme.guarantor_id, cover.currency), fee),
            ],
            actor=SYSTEM_ACTOR,
            financing_id=financing.id,
            memo=f"guarantee fee of {programme.id}",
        )
        cover.fee_entry_id = entry.id
        session.add(cover)
        await session.flush()
    return cover


async def reverse_fee(session: AsyncSession, financing_id: str) -> bool:
    """A covered financing that was never funded (lapsed, rolled back): its fee is reversed
    (idempotent)."""
    cover = (
        await session.execute(
            select(GuaranteeCover)
            .where(col(GuaranteeCover.financing_id) == financing_id)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if cover is None or cover.fee_reversed or cover.fee_entry_id is None:
        return False
    financing = await session.get(FinancingRecord, financing_id)
    if financing is None or financing.state not in NEVER_FUNDED_STATES:
        return False
    await ledger.post(
        session,
        EntryKind.fee_reversal,
        cover.currency,
        [
            ledger.debit(ledger.fee_income(cover.guarantor_id, cover.currency), cover.fee_minor),
            ledger.credit(
                ledger.fees_receivable(financing.supplier_id, cover.currency), cover.fee_minor
            ),
        ],
        actor=SYSTEM_ACTOR,
        financing_id=financing_id,
        memo=f"the financing was {financing.state}: fee reversed",
    )
    cover.fee_reversed = True
    session.add(cover)
    await session.flush()
    return True


def fee_reversals_due() -> Any:
    return select(col(GuaranteeCover.financing_id)).where(
        col(GuaranteeCover.fee_reversed).is_(False),
        col(GuaranteeCover.fee_entry_id).is_not(None),
        col(GuaranteeCover.financing_id).in_(
            select(col(FinancingRecord.id)).where(
                col(FinancingRecord.state).in_(NEVER_FUNDED_STATES)
            )
        ),
    )


async def cover_view(session: AsyncSession, financing_id: str) -> dict[str, Any] | None:
    """The ``guarantee`` of a financing: its cover, frozen shares and, after a default, claims."""
    cover = await session.get(GuaranteeCover, financing_id)
    if cover is None:
        return None

    def money(minor: int) -> dict[str, str]:
        return Money(minor, cover.currency).to_json()

    claims = list(
        (
            await session.execute(
                select(RiskClaim)
                .where(col(RiskClaim.financing_id) == financing_id)
                .order_by(col(RiskClaim.line))
            )
        ).scalars()
    )
    return {
        "programme_id": cover.programme_id,
        "guarantor_id": cover.guarantor_id,
        "covered": money(cover.covered_minor),
        "fee_rate": str(cover.fee_rate.normalize()),
        "fee": money(cover.fee_minor),
        "fee_reversed": cover.fee_reversed,
        "loss_shares": cover.loss_shares,
        "attached_at": cover.attached_at.isoformat(),
        "claims": [claim_json(c) for c in claims],
    }


def covered_by(guarantor_id: str) -> Any:
    """The financings a guarantor's covers cover (a subquery)."""
    return select(col(GuaranteeCover.financing_id)).where(
        col(GuaranteeCover.guarantor_id) == guarantor_id
    )


async def guarantees(session: AsyncSession, guarantor_id: str, financing_id: str) -> bool:
    cover = await session.get(GuaranteeCover, financing_id)
    return cover is not None and cover.guarantor_id == guarantor_id


def claim_json(claim: RiskClaim) -> dict[str, Any]:
    return {
        "id": claim.id,
        "financing_id": claim.financing_id,
        "party": claim.party,
        "organization_id": claim.organization_id,
        "bank_id": claim.bank_id,
        "share": str(claim.share),
        "loss": Money(claim.loss_minor, claim.currency).to_json(),
        "amount": Money(claim.amount_minor, claim.currency).to_json(),
        "recovered": Money(claim.recovered_minor, claim.currency).to_json(),
        "state": claim.state,
        "raised_at": claim.raised_at.isoformat(),
        "paid_at": claim.paid_at.isoformat() if claim.paid_at else None,
        "payment_entry_id": claim.payment_entry_id,
        "payment_reference": claim.payment_reference,
    }


# ---------------------------------------------------------------- defaults and claims


def loss_of(financing: FinancingRecord) -> int:
    """Unpaid principal owed to the bank: the advance less what the bank was paid."""
    return max(0, financing.advance_minor - financing.repaid_minor)


async def on_default(session: AsyncSession, financing: FinancingRecord) -> list[RiskClaim]:
    """A covered financing defaulted: one claim per loss share (idempotent). The pool's claim is
    paid at once when the pool's balance covers it and nothing is queued before it."""
    cover = await session.get(GuaranteeCover, financing.id)
    if cover is None:
        return []
    existing = (
        await session.execute(
            select(func.count())
            .select_from(RiskClaim)
            .where(col(RiskClaim.financing_id) == financing.id)
        )
    ).scalar_one()
    if existing:
        return []
    loss = loss_of(financing)
    if loss == 0:
        return []
    shares = [LossShare.of(s) for s in cover.loss_shares]
    parts = allocate(loss, [s.share for s in shares])
    at = now()
    claims: list[RiskClaim] = []
    for line, (share, amount) in enumerate(zip(shares, parts, strict=True), start=1):
        org = {
            Party.guarantor: cover.guarantor_id,
            Party.bank: financing.bank_id,
            Party.pool: None,
            Party.other: share.organization_id,
        }[share.party]
        state = {
            Party.bank: ClaimState.borne,
            Party.pool: ClaimState.queued,
        }.get(share.party, ClaimState.raised)
        claims.append(
            RiskClaim(
                id=ids.new_id("clm"),
                financing_id=financing.id,
                line=line,
                party=share.party.value,
                organization_id=org,
                bank_id=financing.bank_id,
                currency=financing.currency,
                share=share.share,
                loss_minor=loss,
                amount_minor=amount,
                state=state.value,
                raised_at=at,
            )
        )
    session.add_all(claims)
    await session.flush()
    owed = [c for c in claims if c.party != Party.bank and c.amount_minor > 0]
    if owed:
        await ledger.post(
            session,
            EntryKind.claim_raised,
            financing.currency,
            [
                ledger.debit(
                    ledger.default_losses(financing.bank_id, financing.currency),
                    sum(c.amount_minor for c in owed),
                ),
                *[
                    ledger.credit(
                        ledger.claims_payable(c.party, c.organization_id, c.currency),
                        c.amount_minor,
                    )
                    for c in owed
                ],
            ],
            actor=SYSTEM_ACTOR,
            financing_id=financing.id,
            memo=f"loss of {Money(loss, financing.currency)} shared ({cover.programme_id})",
        )
    log.info("risk_claims_raised", financing_id=financing.id, loss_minor=loss, parts=parts)
    await pay_queued(session, financing.currency)
    return claims


async def pay_queued(session: AsyncSession, currency: str, limit: int = 500) -> list[RiskClaim]:
    """Pay the pool's queued claims in order (``seq``) while its balance covers the next one;
    the first that does not fit stops the queue (no claim overtakes an earlier one)."""
    pool = ledger.pool(currency)
    await ledger.lock(session)  # the ledger's lock before the pool's row: one order for all
    available = await ledger.balance(session, pool, lock=True)
    queued = (
        await session.execute(
            select(RiskClaim)
            .where(
                col(RiskClaim.state) == ClaimState.queued.value,
                col(RiskClaim.currency) == currency,
            )
            .order_by(col(RiskClaim.seq))
            .limit(limit)
            .with_for_update()
        )
    ).scalars()
    paid: list[RiskClaim] = []
    for claim in queued:
        if claim.amount_minor > available:
            break
        at = now()
        if claim.amount_minor > 0:
            entry = await ledger.post(
                session,
                EntryKind.claim_paid,
                currency,
                [
                    ledger.debit(
                        ledger.claims_payable(Party.pool.value, None, currency),
                        claim.amount_minor,
                    ),
                    ledger.credit(pool, claim.amount_minor),
                ],
                actor=SYSTEM_ACTOR,
                financing_id=claim.financing_id,
                claim_id=claim.id,
                memo=f"the pool pays its share to {claim.bank_id}",
            )
            claim.payment_entry_id = entry.id
        available -= claim.amount_minor
        claim.state = ClaimState.paid.value
        claim.paid_at = at
        session.add(claim)
        paid.append(claim)
    await webhooks.publish_each(
        session,
        "risk_claim.paid",
        [(c.bank_id, _paid_event(c, Money(c.amount_minor, currency), None)) for c in paid],
    )
    await session.flush()
    return paid


def _paid_event(claim: RiskClaim, amount: Money, reference: str | None) -> dict[str, Any]:
    """``risk_claim.paid`` for the bank owed: by the pool (no reference) or by its guarantor."""
    assert claim.paid_at is not None
    return {
        "claim_id": claim.id,
        "financing_id": claim.financing_id,
        "party": claim.party,
        "organization_id": claim.organization_id,
        "amount": amount.to_json(),
        "reference": reference,
        "paid_at": claim.paid_at.isoformat(),
    }


# why a claim that is not ``raised`` cannot be paid by its guarantor: (reason, detail)
_NOT_PAYABLE: dict[str, tuple[str, str]] = {
    ClaimState.paid.value: ("already_paid", "the claim is paid already"),
    ClaimState.borne.value: ("borne_by_bank", "the bank's own share is borne by the bank"),
    ClaimState.queued.value: ("pool_claim", "the pool's share is paid from the pool"),
}


async def record_claim_payment(
    session: AsyncSession, principal: Principal, claim_id: str, amount: Money, reference: str
) -> RiskClaim:
    """The guarantor that owes a ``raised`` claim records paying it to the bank: exactly the
    claim's open amount, one balanced entry (Dr ``claims_payable:<guarantor>`` / Cr
    ``guarantor_payments:<guarantor>``), the claim ``paid``. The claim's row is the lock: of two
    concurrent payments one pays, the other finds it paid (409).

    404 for a claim the caller may not see (neither its own nor one of a financing it covers);
    409 for a claim that is not ``raised`` (paid, the bank's, the pool's); 403 for another
    party's claim of a financing the caller covers; 422 naming ``amount.currency`` or
    ``amount.amount`` for anything but the open amount."""
    claim = (
        await session.execute(
            select(RiskClaim)
            .where(col(RiskClaim.id) == claim_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    org = principal.organization_id
    if claim is None or not (
        claim.organization_id == org or await guarantees(session, org, claim.financing_id)
    ):
        raise NotFound(f"there is no claim {claim_id}")
    if claim.state != ClaimState.raised:
        reason, detail = _NOT_PAYABLE.get(claim.state, ("state", f"the claim is {claim.state}"))
        raise ClaimConflict(detail, extra={"state": claim.state, "reason": reason})
    if claim.organization_id != org:
        raise Forbidden("only the party that owes a claim records its payment")
    if amount.currency != claim.currency:
        raise field_error("amount.currency", f"the claim is in {claim.currency}")
    open_amount = Money(claim.amount_minor - claim.recovered_minor, claim.currency)
    if amount != open_amount:
        raise field_error("amount.amount", f"the payment is the claim's open amount, {open_amount}")
    if open_amount.minor > 0:
        entry = await ledger.post(
            session,
            EntryKind.guarantor_payment,
            claim.currency,
            [
                ledger.debit(
                    ledger.claims_payable(claim.party, claim.organization_id, claim.currency),
                    open_amount.minor,
                ),
                ledger.credit(ledger.guarantor_payments(org, claim.currency), open_amount.minor),
            ],
            actor=org,
            financing_id=claim.financing_id,
            claim_id=claim.id,
            memo=reference,
        )
        claim.payment_entry_id = entry.id
    claim.state = ClaimState.paid.value
    claim.paid_at = now()
    claim.payment_reference = reference
    session.add(claim)
    await session.flush()
    await audit.append(
        session,
        principal,
        "risk_claim.paid",
        object_type="risk_claim",
        object_id=claim.id,
        details={
            "amount": open_amount.to_json(),
            "reference": reference,
            "entry_id": claim.payment_entry_id,
        },
    )
    await webhooks.publish(
        session, [claim.bank_id], "risk_claim.paid", _paid_event(claim, open_amount, reference)
    )
    log.info("risk_claim_paid", claim_id=claim.id, amount_minor=open_amount.minor)
    return claim


def queued_currencies() -> Any:
    return (
        select(col(RiskClaim.currency))
        .where(col(RiskClaim.state) == ClaimState.queued.value)
        .distinct()
    )


# ---------------------------------------------------------------- the pool


async def top_up(
    session: AsyncSession, principal: Principal, amount: Money, reference: str
) -> tuple[int, list[RiskClaim]]:
    """Government money into the pool; queued claims are paid from it in order. Returns the
    new balance and the claims paid."""
    if amount.minor <= 0:
        raise field_error("amount.amount", "a top-up is positive")
    await ledger.post(
        session,
        EntryKind.top_up,
        amount.currency,
        [
            ledger.debit(ledger.pool(amount.currency), amount.minor),
            ledger.credit(ledger.pool_contributions(amount.currency), amount.minor),
        ],
        actor=principal.organization_id,
        memo=reference,
    )
    paid = await pay_queued(session, amount.currency)
    await audit.append(
        session,
        principal,
        "risk_pool.topped_up",
        object_type="risk_pool",
        object_id=amount.currency,
        details={"amount": amount.to_json(), "reference": reference, "claims_paid": len(paid)},
    )
    return await ledger.balance(session, ledger.pool(amount.currency)), paid


async def record_recovery(
    session: AsyncSession, principal: Principal, claim_id: str, amount: Money, reference: str
) -> RiskClaim:
    """Money recovered on a defaulted financing returns the pool's paid part: at most what the
    pool paid on the claim, less what was recovered already."""
    claim = (
        await session.execute(
            select(RiskClaim).where(col(RiskClaim.id) == claim_id).with_for_update()
        )
    ).scalar_one_or_none()
    if claim is None or claim.party != Party.pool:
        raise NotFound(f"there is no pool claim {claim_id}")
    if claim.state != ClaimState.paid:
        raise ClaimConflict(f"the claim is {claim.state}", extra={"state": claim.state})
    if amount.currency != claim.currency:
        raise field_error("amount.currency", f"the claim is in {claim.currency}")
    if amount.minor <= 0:
        raise field_error("amount.amount", "a recovery is positive")
    if claim.recovered_minor + amount.minor > claim.amount_minor:
        left = Money(claim.amount_minor - claim.recovered_minor, claim.currency)
        raise field_error("amount.amount", f"at most {left} is left to recover on this claim")
    await ledger.post(
        session,
        EntryKind.recovery,
        claim.currency,
        [
            ledger.debit(ledger.pool(claim.currency), amount.minor),
            ledger.credit(ledger.pool_recoveries(claim.currency), amount.minor),
        ],
        actor=principal.organization_id,
        financing_id=claim.financing_id,
        claim_id=claim.id,
        memo=reference,
    )
    claim.recovered_minor += amount.minor
    session.add(claim)
    await session.flush()
    await pay_queued(session, claim.currency)
    await audit.append(
        session,
        principal,
        "risk_pool.recovery",
        object_type="risk_claim",
        object_id=claim.id,
        details={"amount": amount.to_json(), "reference": reference},
    )
    return claim


@dataclass(frozen=True)
class PoolState:
    currency: str
    balance_minor: int
    exposure_minor: int  # pool share × covered amount over live covers
    queued_count: int
    queued_minor: int


async def pool_exposure(session: AsyncSession, currency: str) -> int:
    """The pool's share of the covered amount of live covers, rounded half-even once."""
    rows = (
        await session.execute(
            select(GuaranteeCover)
            .join(FinancingRecord, col(FinancingRecord.id) == col(GuaranteeCover.financing_id))
            .where(
                col(GuaranteeCover.currency) == currency,
                col(FinancingRecord.state).in_(LIVE_FINANCING_STATES),
            )
        )
    ).scalars()
    exact = Fraction(0)
    for cover in rows:
        for s in cover.loss_shares:
            if s["party"] == Party.pool.value:
                exact += Fraction(cover.covered_minor) * Fraction(Decimal(s["share"]))
    return round_minor(exact, currency)


async def pool_state(session: AsyncSession, currency: str) -> PoolState:
    balance = await ledger.balance(session, ledger.pool(currency))
    queued = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(col(RiskClaim.amount_minor)), 0)).where(
                col(RiskClaim.state) == ClaimState.queued.value,
                col(RiskClaim.currency) == currency,
            )
        )
    ).one()
    return PoolState(
        currency, balance, await pool_exposure(session, currency), int(queued[0]), int(queued[1])
    )


def claims_query(principal: Principal, state: ClaimState | None) -> Any:
    """Regulator and operator: every claim; a bank: claims owed to it; a guarantor: its own."""
    query = select(RiskClaim)
    if principal.role == Role.bank:
        query = query.where(col(RiskClaim.bank_id) == principal.organization_id)
    elif principal.role == Role.guarantor:
        query = query.where(col(RiskClaim.organization_id) == principal.organization_id)
    if state is not None:
        query = query.where(col(RiskClaim.state) == state.value)
    return query


def today() -> date:
    return now().date()
