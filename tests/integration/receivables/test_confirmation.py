"""Confirmation (确权): only the debtor core firm confirms or rejects, once; bulk confirmation of
its queue; a core firm with a signing address must sign (EIP-712), the demo key's signature
verifies with ``cast wallet verify --data`` and any other key's signature is refused."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from qilian.cli import sign
from qilian.cli.main import app as cli
from qilian.cli.seed import seed_demo, write_credentials
from qilian.kit import db
from qilian.kit.anvil import tool_path
from services.api.organizations.models import Organization, Role
from services.api.receivables import signatures
from tests.integration.auth.conftest import Org
from tests.integration.invoices.intake_helpers import Party, new_party
from tests.integration.receivables.lifecycle_helpers import (
    ANCHOR,
    CHAIN_ID,
    call,
    chain_ledger,
    events,
    upload,
)


@pytest.fixture
async def parties(db_engine: None) -> dict[str, Party]:
    return {
        "supplier": await new_party(Role.supplier),
        "core": await new_party(Role.core_firm),
        "other_core": await new_party(Role.core_firm),
    }


async def test_debtor_confirms_once_and_the_event_is_in_the_history(http, parties):
    rid = (await upload(http, parties["supplier"], parties["core"]))["id"]
    response = await call(http, parties["core"], "POST", f"/v1/receivables/{rid}/confirm")
    assert response.status_code == 200, response.text
    assert response.json()["states"]["confirmation"] == "confirmed"
    again = await call(http, parties["core"], "POST", f"/v1/receivables/{rid}/confirm", {})
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["states"]["confirmation"] == "confirmed"
    history = await events(http, parties["supplier"], rid)
    assert [e["type"] for e in history] == ["created", "confirmed"]
    assert [e["seq"] for e in history] == [1, 2]
    assert history[1]["actor"] == parties["core"].org.id


async def test_only_the_debtor_confirms_or_rejects(http, parties):
    rid = (await upload(http, parties["supplier"], parties["core"]))["id"]
    path = f"/v1/receivables/{rid}/confirm"
    assert (await call(http, parties["supplier"], "POST", path, {})).status_code == 403
    assert (await call(http, parties["other_core"], "POST", path, {})).status_code == 404
    reject = f"/v1/receivables/{rid}/reject"
    body = {"reason": "no such delivery"}
    assert (await call(http, parties["other_core"], "POST", reject, body)).status_code == 404
    response = await call(http, parties["core"], "POST", reject, body)
    assert response.status_code == 200
    assert response.json()["states"]["confirmation"] == "rejected"
    late = await call(http, parties["core"], "POST", path, {})
    assert late.status_code == 409
    assert late.json()["states"]["confirmation"] == "rejected"
    history = await events(http, parties["core"], rid)
    assert history[-1]["type"] == "rejected"
    assert history[-1]["data"]["reason"] == "no such delivery"


async def test_bulk_confirmation_of_the_queue(http, parties):
    rids = [(await upload(http, parties["supplier"], parties["core"]))["id"] for _ in range(3)]
    first = await call(
        http,
        parties["core"],
        "POST",
        "/v1/receivables/bulk-confirm",
        {"items": [{"receivable_id": rids[0]}, {"receivable_id": "rcv_nope"}]},
    )
    assert first.status_code == 200, first.text
    assert (first.json()["confirmed"], first.json()["refused"]) == (1, 1)
    assert [r["status"] for r in first.json()["results"]] == [200, 404]
    rest = await call(
        http, parties["core"], "POST", "/v1/receivables/bulk-confirm", {"all_pending": True}
    )
    assert rest.status_code == 200
    assert {r["receivable_id"] for r in rest.json()["results"]} == set(rids[1:])
    for rid in rids:
        got = await call(http, parties["supplier"], "GET", f"/v1/receivables/{rid}")
        assert got.json()["states"]["confirmation"] == "confirmed"
    nothing = await call(
        http, parties["core"], "POST", "/v1/receivables/bulk-confirm", {"all_pending": True}
    )
    assert nothing.json()["results"] == []


async def _register_signer(core: Party, address: str) -> None:
    async with db.transaction() as session:
        org = await session.get(Organization, core.org.id)
        assert org is not None
        org.signing_address = address
        session.add(org)


async def test_a_signing_core_firm_must_sign_and_only_its_key_counts(app, http, parties):
    app.state.ledger_transport = httpx.MockTransport(chain_ledger)
    key, stranger = "0x" + "21" * 32, "0x" + "42" * 32
    await _register_signer(parties["core"], signatures.address_of(key))
    rid = (await upload(http, parties["supplier"], parties["core"]))["id"]
    path = f"/v1/receivables/{rid}/confirm"
    unsigned = await call(http, parties["core"], "POST", path, {})
    assert unsigned.status_code == 422
    assert unsigned.json()["reason"] == "signature_required"
    message = await call(
        http, parties["supplier"], "GET", f"/v1/receivables/{rid}/confirmation-message"
    )
    typed = message.json()["typed_data"]
    assert typed["domain"] == {
        "name": "Qilian",
        "version": "1",
        "chainId": CHAIN_ID,
        "verifyingContract": ANCHOR,
    }
    forged = await call(
        http, parties["core"], "POST", path, {"signature": signatures.sign(typed, stranger)}
    )
    assert forged.status_code == 422
    assert forged.json()["reason"] == "signature_mismatch"
    garbage = await call(http, parties["core"], "POST", path, {"signature": "0x" + "00" * 65})
    assert garbage.status_code == 422
    signature = signatures.sign(typed, key)
    good = await call(http, parties["core"], "POST", path, {"signature": signature})
    assert good.status_code == 200, good.text
    confirmed = (await events(http, parties["supplier"], rid))[-1]
    assert confirmed["type"] == "confirmed"
    assert confirmed["data"]["signature"] == signature
    assert confirmed["data"]["signer"] == signatures.address_of(key)
    assert confirmed["data"]["eip712"] == typed


def _cast_verify(address: str, typed: dict[str, Any], signature: str, tmp_path: Any) -> int:
    path = tmp_path / "typed.json"
    path.write_text(json.dumps(typed))
    done = subprocess.run(
        [
            tool_path("cast"),
            "wallet",
            "verify",
            "--address",
            address,
            "--data",
            "--from-file",
            str(path),
            signature,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode


async def test_demo_core_firm_signature_verifies_with_cast_and_others_are_refused(
    app, http, tmp_path, db_engine
):
    app.state.ledger_transport = httpx.MockTransport(chain_ledger)
    async with db.transaction() as session:
        organizations = await seed_demo(session, tmp_path / "demo-credentials.json")
    demo = next(o for o in organizations if o["role"] == "core_firm")
    assert demo["signing_address"] == signatures.address_of(demo["signing_key"])
    core = Party(
        Org(demo["id"], Role.core_firm, demo["client_id"], demo["client_secret"]),
        demo["tax_id"],
        demo["name"],
    )
    supplier = await new_party(Role.supplier)
    rid = (await upload(http, supplier, core))["id"]
    message = await call(http, core, "GET", f"/v1/receivables/{rid}/confirmation-message")
    assert message.json()["signing_address"] == demo["signing_address"]
    (tmp_path / "message.json").write_text(json.dumps(message.json()))
    key_file = tmp_path / "core.key"
    key_file.write_text(demo["signing_key"] + "\n")
    signed = CliRunner().invoke(
        cli,
        [
            "sign-confirmation",
            "--key-file",
            str(key_file),
            "--typed-data",
            str(tmp_path / "message.json"),
        ],
    )
    assert signed.exit_code == 0, signed.output
    signature = signed.output.strip()
    typed = message.json()["typed_data"]
    assert _cast_verify(demo["signing_address"], typed, signature, tmp_path) == 0
    other = signatures.sign(typed, "0x" + "77" * 32)
    assert _cast_verify(demo["signing_address"], typed, other, tmp_path) != 0
    path = f"/v1/receivables/{rid}/confirm"
    refused = await call(http, core, "POST", path, {"signature": other})
    assert refused.status_code == 422
    accepted = await call(http, core, "POST", path, {"signature": signature})
    assert accepted.status_code == 200, accepted.text
    stored = (await events(http, core, rid))[-1]["data"]
    assert (
        _cast_verify(demo["signing_address"], stored["eip712"], stored["signature"], tmp_path) == 0
    )


async def test_sign_confirmation_fetches_signs_and_confirms_over_the_api(app, http, tmp_path):
    app.state.ledger_transport = httpx.MockTransport(chain_ledger)
    async with db.transaction() as session:
        organizations = await seed_demo(session, tmp_path / "demo-credentials.json")
    demo = next(o for o in organizations if o["role"] == "core_firm")
    core = Party(
        Org(demo["id"], Role.core_firm, demo["client_id"], demo["client_secret"]),
        demo["tax_id"],
        demo["name"],
    )
    rid = (await upload(http, await new_party(Role.supplier), core))["id"]
    typed, signature, answer = await sign.fetch_and_confirm(
        "https://test",
        rid,
        demo["client_id"],
        demo["client_secret"],
        demo["signing_key"],
        True,
        transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 40000)),
    )
    assert answer is not None
    assert answer["status"] == 200, answer
    assert answer["body"]["states"]["confirmation"] == "confirmed"
    assert signatures.recover(typed, signature) == demo["signing_address"]


async def test_reseeding_keeps_each_demo_core_firms_signing_key(tmp_path, db_engine):
    credentials = tmp_path / "demo-credentials.json"
    async with db.transaction() as session:
        first = await seed_demo(session, credentials)
    write_credentials(credentials, {"organizations": first})
    async with db.transaction() as session:
        second = await seed_demo(session, credentials)
    keys = [(o["id"], o.get("signing_key")) for o in first]
    assert keys == [(o["id"], o.get("signing_key")) for o in second]
    cores = [o for o in second if o["role"] == "core_firm"]
    assert cores
    assert all(o["signing_address"] == signatures.address_of(o["signing_key"]) for o in cores)
    async with db.transaction() as session:
        for entry in cores:
            org = await session.get(Organization, entry["id"])
            assert org is not None
            assert org.signing_address == entry["signing_address"]


async def test_overlapping_bulk_confirmations_confirm_each_receivable_once(http, parties):
    rids = [(await upload(http, parties["supplier"], parties["core"]))["id"] for _ in range(6)]
    forward = {"items": [{"receivable_id": r} for r in rids]}
    backward = {"items": [{"receivable_id": r} for r in reversed(rids)]}
    answers = await asyncio.gather(
        *(
            call(http, parties["core"], "POST", "/v1/receivables/bulk-confirm", body)
            for body in (forward, backward, forward, backward)
        )
    )
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    assert sum(a.json()["confirmed"] for a in answers) == len(rids)
    assert [r["receivable_id"] for r in answers[1].json()["results"]] == list(reversed(rids))
    for rid in rids:
        history = await events(http, parties["supplier"], rid)
        assert [e["type"] for e in history] == ["created", "confirmed"]


async def test_the_supplier_cancels_a_pending_receivable_and_nothing_after_confirmation(
    http, parties
):
    body = {"reason": "sent by mistake"}
    rid = (await upload(http, parties["supplier"], parties["core"]))["id"]
    path = f"/v1/receivables/{rid}/cancel"
    assert (await call(http, parties["core"], "POST", path, body)).status_code == 403
    response = await call(http, parties["supplier"], "POST", path, body)
    assert response.status_code == 200, response.text
    assert response.json()["states"]["confirmation"] == "cancelled"
    confirm = await call(http, parties["core"], "POST", f"/v1/receivables/{rid}/confirm", {})
    assert confirm.status_code == 409
    history = await events(http, parties["supplier"], rid)
    assert [e["type"] for e in history] == ["created", "cancelled"]

    confirmed_id = (await upload(http, parties["supplier"], parties["core"]))["id"]
    ok = await call(http, parties["core"], "POST", f"/v1/receivables/{confirmed_id}/confirm", {})
    assert ok.status_code == 200
    late = await call(
        http, parties["supplier"], "POST", f"/v1/receivables/{confirmed_id}/cancel", body
    )
    assert late.status_code == 409
    assert late.json()["states"]["confirmation"] == "confirmed"
