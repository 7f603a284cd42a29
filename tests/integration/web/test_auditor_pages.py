"""The auditor's page over HTTP with the ledger's answers controlled by the test (the real
ledger's verification is exercised by tests/browser against the whole stack): what the page shows
for each verdict, and the errors of its two forms."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from services.api.organizations.models import Role
from tests.integration.invoices.intake_helpers import new_party
from tests.integration.web.conftest import field_error, text_of
from tests.integration.web.test_pages import upload

CONTRACT = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
TX = "0x" + "ab" * 32
HASH = "0x" + "11" * 32
ENTRY = "0x" + "22" * 32
ROOT = "0x" + "33" * 32
SIBLING = "0x" + "44" * 32


def bundle(receivable_id: str, seq: int) -> dict[str, Any]:
    return {
        "format": "qilian-proof/1",
        "chain_id": 31337,
        "contract": CONTRACT,
        "batch_id": 7,
        "tx_hash": TX,
        "block_number": 42,
        "root": ROOT,
        "leaf_encoding": "standard-v1",
        "entry_id": ENTRY,
        "record_hash": HASH,
        "proof": [SIBLING],
        "record": {
            "schema": "qilian.receivable-event/1",
            "event_id": f"evt_{seq}",
            "receivable_id": receivable_id,
            "seq": seq,
            "type": "created" if seq == 1 else "confirmed",
            "at": "2026-01-15T08:00:00.000000Z",
            "actor": "org_x",
            "data": {},
            "prev": None if seq == 1 else HASH,
            "salt": "0x" + "55" * 32,
        },
    }


def ledger(receivable_id: str, ok: bool, seen: list[Any]) -> httpx.MockTransport:
    """Proofs of two events (the second pending) and a verification report saying ``ok``."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == f"/v1/proofs/receivables/{receivable_id}":
            events = [
                {"seq": 1, "event_id": "evt_1", "status": "final", "batch_id": 7,
                 "entry_id": ENTRY, "record_hash": HASH, "bundle": bundle(receivable_id, 1)},
                {"seq": 2, "event_id": "evt_2", "status": "pending", "batch_id": None,
                 "entry_id": ENTRY, "record_hash": HASH, "bundle": None},
            ]  # fmt: skip
            body = {"receivable_id": receivable_id, "all_anchored": False, "events": events}
            return httpx.Response(200, json=body)
        if request.url.path == "/v1/verify" and request.method == "POST":
            seen.append(json.loads(request.content))
            step = {"name": "verify_entry", "status": "ok" if ok else "failed", "detail": "d"}
            report = {
                "ok": ok,
                "rpc_chain_id": 31337,
                "bundles": [
                    {
                        "index": 0,
                        "source": "body[0]",
                        "ok": ok,
                        "event_id": "evt_1",
                        "receivable_id": receivable_id,
                        "seq": 1,
                        "batch_id": 7,
                        "record_hash": HASH,
                        "anchored_at": "2026-01-15T08:00:05Z",
                        "steps": [step],
                    }
                ],
                "histories": [
                    {
                        "receivable_id": receivable_id,
                        "seqs": [1],
                        "ok": ok,
                        "steps": [{"name": "prev of seq 1", "status": "ok", "detail": "first"}],
                    }
                ],
                "summary": "1 bundle",
            }
            return httpx.Response(200, json=report)
        return httpx.Response(404, json={"status": 404})

    return httpx.MockTransport(handle)


async def test_auditor_sees_verdicts_hashes_proof_path_batch_and_cast_commands(app, person):
    supplier = await person(Role.supplier)
    rid = await upload(supplier, await new_party(Role.core_firm))
    auditor = await person(Role.auditor)
    seen: list[Any] = []
    app.state.ledger_transport = ledger(rid, True, seen)
    page = await auditor.client.get(f"/web/audit?receivable_id={rid}&lang=en")
    assert page.status_code == 200, page.text
    assert seen == [[bundle(rid, 1)]]  # only the anchored event's bundle is verified
    assert re.search(r'id="verdict".*?data-verdict="VERIFIED"', page.text, re.S)
    assert 'id="event-1" data-verdict="VERIFIED"' in page.text
    assert 'id="event-2" data-verdict="PENDING"' in page.text
    assert f'id="history-{rid}"' in page.text
    for value in (HASH, ENTRY, ROOT, SIBLING, TX, CONTRACT):
        assert value in page.text
    text = text_of(page.text)
    assert "Block 42" in text
    commands = re.search(r'<pre class="commands"[^>]*>(.*?)</pre>', page.text, re.S)
    assert commands
    assert (
        f"{CONTRACT} &#34;verifyEntry(uint64,bytes32,bytes32,bytes32[])(bool,uint64,uint64)&#34;"
        in (commands.group(1))
        or "verifyEntry(uint64,bytes32,bytes32,bytes32[])" in commands.group(1)
    )
    assert f"[{SIBLING}]" in commands.group(1)
    app.state.ledger_transport = ledger(rid, False, [])
    failed = await auditor.client.get(f"/web/audit?receivable_id={rid}&lang=zh-CN")
    assert 'id="event-1" data-verdict="FAILED"' in failed.text
    assert "验证失败" in failed.text


async def test_auditor_forms_show_their_errors_next_to_the_field(app, person):
    auditor = await person(Role.auditor)
    missing = await auditor.client.get("/web/audit?receivable_id=rcv_nope&lang=en")
    assert missing.status_code == 404
    assert field_error(missing.text, "receivable_id") == "There is no such receivable."
    not_json = await auditor.post(
        "/web/audit/bundles?lang=en", files={"bundle": ("b.json", b"not json")}
    )
    assert not_json.status_code == 422
    assert field_error(not_json.text, "bundle") == "b.json: the file is not JSON"
    forged = await auditor.client.post(
        "/web/audit/bundles", files={"bundle": ("b.json", b"{}")}, data={"csrf_token": "x"}
    )
    assert forged.status_code == 403
    none = await auditor.post("/web/audit/bundles?lang=en")
    assert none.status_code == 422
    assert field_error(none.text, "bundle") == "Choose a proof bundle file."


async def test_auditor_page_says_when_the_ledger_is_down(person):
    supplier = await person(Role.supplier)
    rid = await upload(supplier, await new_party(Role.core_firm))
    auditor = await person(Role.auditor)
    page = await auditor.client.get(f"/web/audit?receivable_id={rid}&lang=en")
    assert page.status_code == 503
    assert "The ledger cannot be reached" in page.text


async def test_only_auditors_use_the_audit_pages(person):
    supplier = await person(Role.supplier)
    assert (await supplier.client.get("/web/audit")).status_code == 403


def test_bundles_are_found_in_every_shape_the_ledger_and_qilian_verify_accept():
    from services.api.web import verification

    one = bundle("rcv_x", 1)
    two = bundle("rcv_x", 2)
    proofs = {
        "receivable_id": "rcv_x",
        "events": [
            {"seq": 1, "bundle": one},
            {"seq": 2, "bundle": None},
            {"seq": 3, "bundle": two},
        ],
    }
    assert verification.bundles_of(one) == [one]
    assert verification.bundles_of([one, two]) == [one, two]
    assert verification.bundles_of(proofs) == [one, two]
    assert verification.bundles_of({"anything": 1}) == []
    assert verification.parse_upload(json.dumps([proofs]).encode()) == [one, two]


def test_cast_commands_carry_the_bundles_own_values():
    from services.api.web import verification

    commands = verification.cast_commands(bundle("rcv_x", 1), "http://127.0.0.1:8545")
    assert commands.startswith("RPC_URL=http://127.0.0.1:8545")
    assert 'cast keccak "evt_1"' in commands
    assert f'cast call {CONTRACT} "batches(uint64)(bytes32,uint64,uint64,uint32)" 7' in commands
    assert f"7 {ENTRY} {HASH}" in commands
    assert f'"[{SIBLING}]"' in commands
    assert f"cast receipt {TX} blockNumber" in commands
