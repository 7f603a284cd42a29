"""Vouchers: the holder splits a confirmed receivable into parts summing exactly to its open
amount (minimum part, maximum depth), transfers a part or the whole to another supplier, and
the lineage shows the tree (all of it to the core firm). A split or transferred-away parent is
frozen; two concurrent splits, or a split racing a transfer, leave exactly one winner."""

from __future__ import annotations

import asyncio

import pytest

from qilian.kit import db
from services.api.organizations.models import Role
from services.api.receivables import lifecycle, repository
from services.api.receivables.settings import ReceivableSettings
from tests.integration.invoices.intake_helpers import Party, new_party, token
from tests.integration.receivables.lifecycle_helpers import call, confirmed, events, upload


@pytest.fixture
async def parties(db_engine: None) -> dict[str, Party]:
    return {
        "supplier": await new_party(Role.supplier),
        "tier2": await new_party(Role.supplier),
        "tier3": await new_party(Role.supplier),
        "core": await new_party(Role.core_firm),
        "bank": await new_party(Role.bank),
    }


def split_body(*amounts: str) -> dict[str, object]:
    return {"parts": [{"amount": a} for a in amounts]}


async def test_split_conserves_value_and_freezes_the_parent(http, parties):
    rid = await confirmed(http, parties["supplier"], parties["core"], payable="119.00")
    response = await call(
        http,
        parties["supplier"],
        "POST",
        f"/v1/receivables/{rid}/split",
        split_body("100.00", "19.00"),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["parent"]["states"]["holding"] == "split"
    assert body["parent"]["open_amount"]["amount"] == "0.00"
    children = body["children"]
    assert [c["face_value"]["amount"] for c in children] == ["100.00", "19.00"]
    for child in children:
        assert child["parent_id"] == rid
        assert child["root_id"] == rid
        assert child["states"]["confirmation"] == "confirmed"
        assert (child["tier"], child["depth"]) == (1, 1)
        assert child["holder_id"] == parties["supplier"].org.id
        assert [e["type"] for e in await events(http, parties["supplier"], child["id"])] == [
            "created"
        ]
    again = await call(
        http,
        parties["supplier"],
        "POST",
        f"/v1/receivables/{rid}/split",
        split_body("1.00", "118.00"),
    )
    assert again.status_code == 409
    assert again.json()["states"]["holding"] == "split"
    transfer = await call(
        http,
        parties["supplier"],
        "POST",
        f"/v1/receivables/{rid}/transfer",
        {"to_organization_id": parties["tier2"].org.id},
    )
    assert transfer.status_code == 409
    history = await events(http, parties["supplier"], rid)
    assert history[-1]["type"] == "split"
    assert [p["receivable_id"] for p in history[-1]["data"]["parts"]] == [c["id"] for c in children]
    async with db.transaction() as session:
        parent = await repository.get(session, rid)
        assert parent is not None
        assert not lifecycle.financeable(parent)
        for child in children:
            part = await repository.get(session, child["id"])
            assert part is not None
            assert lifecycle.financeable(part)


@pytest.mark.parametrize(
    ("amounts", "status"),
    [
        (("100.00", "18.99"), 422),  # short of the open amount
        (("100.00", "19.01"), 422),  # more than the open amount
        (("118.50", "0.50"), 422),  # below the minimum part (1.00)
        (("119.00",), 422),  # one part is no split
        (("59.505", "59.495"), 422),  # more decimals than EUR has
    ],
)
async def test_invalid_splits_are_refused(http, parties, amounts, status):
    rid = await confirmed(http, parties["supplier"], parties["core"], payable="119.00")
    response = await call(
        http, parties["supplier"], "POST", f"/v1/receivables/{rid}/split", split_body(*amounts)
    )
    assert response.status_code == status, response.text
    got = await call(http, parties["supplier"], "GET", f"/v1/receivables/{rid}")
    assert got.json()["states"]["holding"] == "held"


async def test_only_the_holder_splits_only_a_confirmed_receivable(http, parties):
    pending = (await upload(http, parties["supplier"], parties["core"]))["id"]
    response = await call(
        http,
        parties["supplier"],
        "POST",
        f"/v1/receivables/{pending}/split",
        split_body("100.00", "19.00"),
    )
    assert response.status_code == 409
    assert response.json()["states"]["confirmation"] == "pending"
    rid = await confirmed(http, parties["supplier"], parties["core"])
    stranger = await call(
        http,
        parties["tier2"],
        "POST",
        f"/v1/receivables/{rid}/split",
        split_body("100.00", "19.00"),
    )
    assert stranger.status_code == 404


async def test_maximum_depth(app, http, parties):
    app.state.receivable_settings = ReceivableSettings(max_depth=2)
    rid = await confirmed(http, parties["supplier"], parties["core"], payable="119.00")
    path = "/v1/receivables/{}/split"
    first = await call(
        http, parties["supplier"], "POST", path.format(rid), split_body("100.00", "19.00")
    )
    child = first.json()["children"][0]["id"]
    second = await call(
        http, parties["supplier"], "POST", path.format(child), split_body("50.00", "50.00")
    )
    grandchild = second.json()["children"][0]["id"]
    third = await call(
        http, parties["supplier"], "POST", path.format(grandchild), split_body("25.00", "25.00")
    )
    assert third.status_code == 409
    assert third.json()["reason"] == "too_deep"


async def test_partial_transfer_splits_first_and_lineage_reaches_tier_3(http, parties):
    supplier, tier2, tier3, core = (
        parties["supplier"],
        parties["tier2"],
        parties["tier3"],
        parties["core"],
    )
    rid = await confirmed(http, supplier, core, payable="119.00")
    response = await call(
        http,
        supplier,
        "POST",
        f"/v1/receivables/{rid}/transfer",
        {"to_organization_id": tier2.org.id, "amount": "40.00"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["parent"]["states"]["holding"] == "split"
    moved, kept = body["transferred"], body["remainder"]
    assert moved["holder_id"] == tier2.org.id
    assert moved["tier"] == 2
    assert moved["creditor_id"] == supplier.org.id
    assert moved["face_value"]["amount"] == "40.00"
    assert kept["holder_id"] == supplier.org.id
    assert kept["open_amount"]["amount"] == "79.00"
    # tier 2 passes the whole of its part on to tier 3
    whole = await call(
        http,
        tier2,
        "POST",
        f"/v1/receivables/{moved['id']}/transfer",
        {"to_organization_id": tier3.org.id},
    )
    assert whole.status_code == 201, whole.text
    tier3_part = whole.json()["transferred"]
    assert tier3_part["tier"] == 3
    assert tier3_part["holder_id"] == tier3.org.id
    assert whole.json()["remainder"] is None
    # the transferred-away part is frozen for tier 2
    again = await call(
        http, tier2, "POST", f"/v1/receivables/{moved['id']}/split", split_body("20.00", "20.00")
    )
    assert again.status_code == 409
    assert again.json()["states"]["holding"] == "transferred"
    # the core firm sees the whole tree (穿透)
    tree = await call(http, core, "GET", f"/v1/receivables/{tier3_part['id']}/lineage")
    assert tree.status_code == 200
    nodes = tree.json()["nodes"]
    assert tree.json()["root_id"] == rid
    assert len(nodes) == 5
    assert all(n["receivable"] is not None for n in nodes)
    held = [n for n in nodes if n["holding"] == "held"]
    assert (
        sum(int(n["receivable"]["open_amount"]["amount"].replace(".", "")) for n in held) == 11900
    )
    # tier 3 sees its part in full and its ancestors without details
    seen = await call(http, tier3, "GET", f"/v1/receivables/{tier3_part['id']}/lineage")
    by_id = {n["id"]: n for n in seen.json()["nodes"]}
    assert by_id[tier3_part["id"]]["receivable"] is not None
    assert by_id[rid]["receivable"] is None
    assert kept["id"] not in by_id
    # tier 3 does not see the root itself
    assert (await call(http, tier3, "GET", f"/v1/receivables/{rid}")).status_code == 404
    # transfers are refused to non-suppliers and to the holder itself
    for target in (parties["bank"].org.id, supplier.org.id):
        refused = await call(
            http,
            supplier,
            "POST",
            f"/v1/receivables/{kept['id']}/transfer",
            {"to_organization_id": target},
        )
        assert refused.status_code == 422, target


async def test_two_concurrent_splits_one_wins(app, http, parties):
    rid = await confirmed(http, parties["supplier"], parties["core"], payable="119.00")
    path = f"/v1/receivables/{rid}/split"
    results = await asyncio.gather(
        *(
            call(http, parties["supplier"], "POST", path, split_body("60.00", "59.00"))
            for _ in range(8)
        )
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses == [201] + [409] * 7, [r.text for r in results]
    tree = await call(http, parties["core"], "GET", f"/v1/receivables/{rid}/lineage")
    assert len(tree.json()["nodes"]) == 3


async def test_split_racing_transfer_one_wins(http, parties):
    for _ in range(3):
        rid = await confirmed(http, parties["supplier"], parties["core"], payable="119.00")
        split = call(
            http,
            parties["supplier"],
            "POST",
            f"/v1/receivables/{rid}/split",
            split_body("60.00", "59.00"),
        )
        transfer = call(
            http,
            parties["supplier"],
            "POST",
            f"/v1/receivables/{rid}/transfer",
            {"to_organization_id": parties["tier2"].org.id},
        )
        results = await asyncio.gather(split, transfer)
        assert sorted(r.status_code for r in results) == [201, 409], [r.text for r in results]
        tree = await call(http, parties["core"], "GET", f"/v1/receivables/{rid}/lineage")
        held = [n for n in tree.json()["nodes"] if n["holding"] == "held"]
        total = sum(int(n["receivable"]["open_amount"]["amount"].replace(".", "")) for n in held)
        assert total == 11900


async def test_a_retried_split_with_the_same_idempotency_key_splits_once(http, parties):
    rid = await confirmed(http, parties["supplier"], parties["core"], payable="119.00")
    headers = {**await token(http, parties["supplier"]), "Idempotency-Key": f"split-{rid}"}
    body = split_body("60.00", "59.00")
    first = await http.post(f"/v1/receivables/{rid}/split", json=body, headers=headers)
    again = await http.post(f"/v1/receivables/{rid}/split", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    tree = await call(http, parties["core"], "GET", f"/v1/receivables/{rid}/lineage")
    assert len(tree.json()["nodes"]) == 3
    held = await call(http, parties["supplier"], "GET", "/v1/receivables?holding=held")
    listed = {r["id"] for r in held.json()["items"]}
    assert {c["id"] for c in first.json()["children"]} <= listed
    assert rid not in listed
