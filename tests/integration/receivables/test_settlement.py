"""Settlement: the debtor's payments (full, partial, short, over) are allocated and never lost,
owed to the holder (or, when financed, to the financier); receivables go overdue after the due
date plus the grace; the holder writes off; disputes freeze split and transfer until resolved;
a credit note reduces the open amount with its own event."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from qilian.kit import db
from services.api.organizations.models import Role
from services.api.receivables import lifecycle, repository
from services.api.receivables.models import Financing
from services.api.receivables.tasks import sweep_overdue
from tests.integration.invoices.intake_helpers import Party, new_party
from tests.integration.receivables.lifecycle_helpers import call, confirmed, events, upload


@pytest.fixture
async def parties(db_engine: None) -> dict[str, Party]:
    return {
        "supplier": await new_party(Role.supplier),
        "tier2": await new_party(Role.supplier),
        "core": await new_party(Role.core_firm),
        "bank": await new_party(Role.bank),
    }


def pay(amount: str, reference: str = "BANK-REF-1", **extra: Any) -> dict[str, Any]:
    return {"amount": amount, "paid_at": "2026-03-15", "reference": reference, **extra}


async def _pay(http: Any, core: Party, rid: str, body: dict[str, Any]) -> Any:
    return await call(http, core, "POST", f"/v1/receivables/{rid}/payments", body)


async def test_partial_then_full_payment(http, parties):
    rid = await confirmed(http, parties["supplier"], parties["core"], payable="119.00")
    first = await _pay(http, parties["core"], rid, pay("19.00"))
    assert first.status_code == 201, first.text
    assert first.json()["payment"]["kind"] == "partial"
    assert first.json()["receivable"]["states"]["settlement"] == "partially_paid"
    assert first.json()["receivable"]["open_amount"]["amount"] == "100.00"
    assert first.json()["payment"]["payee_id"] == parties["supplier"].org.id
    second = await _pay(http, parties["core"], rid, pay("100.00", "BANK-REF-2"))
    assert second.json()["payment"]["kind"] == "full"
    assert second.json()["receivable"]["states"]["settlement"] == "paid"
    late = await _pay(http, parties["core"], rid, pay("1.00", "BANK-REF-3"))
    assert late.status_code == 409
    assert late.json()["states"]["settlement"] == "paid"
    history = await events(http, parties["supplier"], rid)
    assert [e["type"] for e in history][-2:] == ["payment_recorded", "payment_recorded"]
    assert history[-1]["data"]["owed_to"] == "holder"
    listed = await call(http, parties["supplier"], "GET", f"/v1/receivables/{rid}/payments")
    assert [p["reference"] for p in listed.json()] == ["BANK-REF-1", "BANK-REF-2"]


async def test_over_payment_keeps_the_excess_unapplied(http, parties):
    rid = await confirmed(http, parties["supplier"], parties["core"], payable="119.00")
    response = await _pay(http, parties["core"], rid, pay("120.50"))
    assert response.status_code == 201
    payment = response.json()["payment"]
    assert payment["kind"] == "over"
    assert (payment["applied"]["amount"], payment["unapplied"]["amount"]) == ("119.00", "1.50")
    assert response.json()["receivable"]["states"]["settlement"] == "paid"


async def test_short_payment_leaves_the_rest_owed(http, parties):
    rid = await confirmed(http, parties["supplier"], parties["core"], payable="119.00")
    response = await _pay(http, parties["core"], rid, pay("110.00", final=True))
    assert response.json()["payment"]["kind"] == "short"
    assert response.json()["receivable"]["open_amount"]["amount"] == "9.00"
    assert (await events(http, parties["core"], rid))[-1]["data"]["short_by"] == {
        "amount": "9.00",
        "currency": "EUR",
    }


async def test_only_the_debtor_pays_a_confirmed_held_receivable(http, parties):
    pending = (await upload(http, parties["supplier"], parties["core"]))["id"]
    assert (await _pay(http, parties["core"], pending, pay("1.00"))).status_code == 409
    rid = await confirmed(http, parties["supplier"], parties["core"], payable="119.00")
    assert (await _pay(http, parties["supplier"], rid, pay("1.00"))).status_code == 403
    split = await call(
        http,
        parties["supplier"],
        "POST",
        f"/v1/receivables/{rid}/split",
        {"parts": [{"amount": "100.00"}, {"amount": "19.00"}]},
    )
    refused = await _pay(http, parties["core"], rid, pay("1.00"))
    assert refused.status_code == 409
    assert refused.json()["reason"] == "not_held"
    part = split.json()["children"][1]["id"]
    assert (await _pay(http, parties["core"], part, pay("19.00"))).status_code == 201


async def test_a_financed_receivable_is_paid_to_the_financier(http, parties):
    rid = await confirmed(http, parties["supplier"], parties["core"], payable="119.00")
    bank = parties["bank"].org.id

    async with db.transaction() as session:
        row = await repository.lock(session, rid)
        assert row is not None
        row.financing = Financing.financed.value
        row.financier_id = bank
    response = await _pay(http, parties["core"], rid, pay("119.00"))
    assert response.status_code == 201
    assert response.json()["payment"]["payee_id"] == bank
    assert (await events(http, parties["core"], rid))[-1]["data"]["owed_to"] == "financier"


async def test_overdue_after_due_date_and_grace_then_paid(http, parties):
    rid = await confirmed(
        http, parties["supplier"], parties["core"], issue="2026-01-02", due="2026-01-05"
    )
    assert await sweep_overdue(date(2026, 1, 6), grace_days=1) == 0
    assert await sweep_overdue(date(2026, 1, 7), grace_days=1) >= 1
    assert await sweep_overdue(date(2026, 1, 7), grace_days=1) == 0
    got = await call(http, parties["supplier"], "GET", f"/v1/receivables/{rid}")
    assert got.json()["states"]["settlement"] == "overdue"
    overdue = (await events(http, parties["supplier"], rid))[-1]
    assert overdue["type"] == "overdue"
    assert overdue["actor"] == "system"
    partial = await _pay(http, parties["core"], rid, pay("19.00"))
    assert partial.json()["receivable"]["states"]["settlement"] == "overdue"
    rest = await _pay(http, parties["core"], rid, pay("100.00"))
    assert rest.json()["receivable"]["states"]["settlement"] == "paid"


async def test_holder_writes_off_once(http, parties):
    rid = await confirmed(http, parties["supplier"], parties["core"], payable="119.00")
    body = {"reason": "debtor insolvent"}
    path = f"/v1/receivables/{rid}/write-off"
    assert (await call(http, parties["bank"], "POST", path, body)).status_code == 404
    response = await call(http, parties["supplier"], "POST", path, body)
    assert response.status_code == 200
    assert response.json()["states"]["settlement"] == "written_off"
    again = await call(http, parties["supplier"], "POST", path, body)
    assert again.status_code == 409
    assert again.json()["states"]["settlement"] == "written_off"
    assert (await _pay(http, parties["core"], rid, pay("1.00"))).status_code == 409


async def test_a_dispute_freezes_split_and_transfer_until_resolved(http, parties):
    supplier, core = parties["supplier"], parties["core"]
    rid = await confirmed(http, supplier, core, payable="119.00")
    opened = await call(
        http, core, "POST", f"/v1/receivables/{rid}/disputes", {"reason": "short delivery"}
    )
    assert opened.status_code == 201, opened.text
    dispute = opened.json()["dispute"]
    assert opened.json()["receivable"]["states"]["dispute"] == "open"
    twice = await call(http, supplier, "POST", f"/v1/receivables/{rid}/disputes", {"reason": "x"})
    assert twice.status_code == 409
    body = {"parts": [{"amount": "100.00"}, {"amount": "19.00"}]}
    frozen = await call(http, supplier, "POST", f"/v1/receivables/{rid}/split", body)
    assert frozen.status_code == 409
    assert frozen.json()["states"]["dispute"] == "open"
    moved = await call(
        http,
        supplier,
        "POST",
        f"/v1/receivables/{rid}/transfer",
        {"to_organization_id": parties["tier2"].org.id},
    )
    assert moved.status_code == 409
    async with db.transaction() as session:
        row = await repository.get(session, rid)
        assert row is not None
        assert not lifecycle.financeable(row)
    stranger = await call(
        http, parties["tier2"], "POST", f"/v1/disputes/{dispute['id']}/resolve", {"resolution": "x"}
    )
    assert stranger.status_code == 404
    resolved = await call(
        http,
        supplier,
        "POST",
        f"/v1/disputes/{dispute['id']}/resolve",
        {"resolution": "credit note for the missing goods"},
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["dispute"]["status"] == "resolved"
    again = await call(
        http, core, "POST", f"/v1/disputes/{dispute['id']}/resolve", {"resolution": "x"}
    )
    assert again.status_code == 409
    assert (
        await call(http, supplier, "POST", f"/v1/receivables/{rid}/split", body)
    ).status_code == 201
    types = [e["type"] for e in await events(http, supplier, rid)]
    assert types == ["created", "confirmed", "dispute_opened", "dispute_resolved", "split"]
    listed = await call(http, core, "GET", f"/v1/receivables/{rid}/disputes")
    assert [d["status"] for d in listed.json()] == ["resolved"]
