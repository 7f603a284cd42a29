"""The qilian-proof/1 bundle and its offline verification."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.ledger.records import merkle
from services.ledger.records.bundle import Check, ProofBundle, all_ok, verify_bundle_offline
from services.ledger.records.canonical import (
    ReceivableEventRecord,
    entry_id,
    record_hash,
)
from services.ledger.records.keccak import keccak256, to_hex

CONTRACT_CHECKSUMMED = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def make_records(count: int, tag: str = "") -> list[ReceivableEventRecord]:
    """A receivable's first ``count`` events; salts derive from ``tag`` so runs are repeatable."""
    records = []
    prev: str | None = None
    for seq in range(1, count + 1):
        record = ReceivableEventRecord.model_validate(
            {
                "event_id": f"evt_{seq:032x}",
                "receivable_id": "rcv_" + "2" * 32,
                "seq": seq,
                "type": "created" if seq == 1 else "transferred",
                "at": f"2025-02-01T10:00:{seq % 60:02d}.000000Z",
                "actor": "org_" + "3" * 32,
                "data": {"amount": f"{seq}00.00", "currency": "CNY", "to": f"org_{seq:032x}"},
                "prev": prev,
                "salt": to_hex(keccak256(f"salt-{tag}-{seq}".encode())),
            }
        )
        prev = to_hex(record_hash(record))
        records.append(record)
    return records


def make_bundles(count: int, tag: str = "") -> list[dict[str, Any]]:
    records = make_records(count, tag)
    values = [(entry_id(r.event_id), record_hash(r)) for r in records]
    tree = merkle.build(values)
    return [
        {
            "format": "qilian-proof/1",
            "chain_id": 31337,
            "contract": CONTRACT_CHECKSUMMED,
            "batch_id": 12,
            "tx_hash": "0x" + "77" * 32,
            "block_number": 345,
            "root": to_hex(tree.root),
            "leaf_encoding": ["bytes32", "bytes32"],
            "entry_id": to_hex(values[i][0]),
            "record_hash": to_hex(values[i][1]),
            "proof": [to_hex(node) for node in tree.proof(i)],
            "record": record.model_dump(mode="json"),
        }
        for i, record in enumerate(records)
    ]


def make_record(bundle: dict[str, Any]) -> ReceivableEventRecord:
    return ReceivableEventRecord.model_validate(bundle["record"])


def by_name(checks: list[Check]) -> dict[str, bool]:
    return {check.name: check.ok for check in checks}


def test_a_genuine_bundle_passes_every_offline_check():
    for bundle in make_bundles(7):
        checks = verify_bundle_offline(bundle)
        assert by_name(checks) == {
            "bundle_format": True,
            "record_hash": True,
            "entry_id": True,
            "merkle_proof": True,
        }
        assert all_ok(checks)
        assert all(check.status == "ok" for check in checks)


def test_a_bundle_is_accepted_as_json_text_bytes_object_or_model():
    bundle = make_bundles(3)[1]
    text = json.dumps(bundle)
    for form in (text, text.encode(), bundle, ProofBundle.model_validate(bundle)):
        assert all_ok(verify_bundle_offline(form))


def test_a_single_leaf_batch_verifies_with_an_empty_proof():
    [bundle] = make_bundles(1)
    assert bundle["proof"] == []
    assert bundle["root"] == to_hex(
        merkle.build(
            [(entry_id(bundle["record"]["event_id"]), record_hash(make_record(bundle)))]
        ).root
    )
    assert all_ok(verify_bundle_offline(bundle))


def test_a_changed_amount_in_the_record_fails_record_hash_and_proof():
    bundle = make_bundles(4)[2]
    bundle["record"]["data"]["amount"] = "999999.00"
    checks = by_name(verify_bundle_offline(bundle))
    assert checks == {
        "bundle_format": True,
        "record_hash": False,
        "entry_id": True,
        "merkle_proof": False,
    }


def test_a_record_with_its_hash_updated_to_match_still_fails_the_proof():
    bundle = make_bundles(4)[2]
    bundle["record"]["data"]["amount"] = "999999.00"
    bundle["record_hash"] = to_hex(record_hash(make_record(bundle)))
    checks = by_name(verify_bundle_offline(bundle))
    assert checks["record_hash"] is True
    assert checks["merkle_proof"] is False


def test_another_event_id_fails_entry_id_and_proof():
    bundle = make_bundles(3)[0]
    bundle["record"]["event_id"] = "evt_" + "f" * 32
    checks = by_name(verify_bundle_offline(bundle))
    assert checks["entry_id"] is False
    assert checks["merkle_proof"] is False


def test_a_tampered_proof_fails_only_the_proof_check():
    bundle = make_bundles(5)[3]
    node = bundle["proof"][0]
    bundle["proof"][0] = node[:-1] + ("0" if node[-1] != "0" else "1")
    checks = by_name(verify_bundle_offline(bundle))
    assert checks == {
        "bundle_format": True,
        "record_hash": True,
        "entry_id": True,
        "merkle_proof": False,
    }


def test_another_root_fails_the_proof_check():
    bundle = make_bundles(5)[3]
    bundle["root"] = make_bundles(5, tag="other")[3]["root"]  # other salts, other root
    assert by_name(verify_bundle_offline(bundle))["merkle_proof"] is False


def test_proof_check_detail_names_the_roots_compared():
    bundle = make_bundles(2)[0]
    [proof_check] = [c for c in verify_bundle_offline(bundle) if c.name == "merkle_proof"]
    assert bundle["root"] in proof_check.detail


def test_a_float_in_the_record_is_reported_as_a_format_failure():
    bundle = make_bundles(2)[0]
    text = json.dumps(bundle).replace('"amount": "100.00"', '"amount": 100.0')
    checks = verify_bundle_offline(text)
    assert [c.name for c in checks] == ["bundle_format"]
    assert not all_ok(checks)
    assert "floats are refused" in checks[0].detail
    assert "record.data" in checks[0].detail


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("format", "qilian-proof/2"),
        ("leaf_encoding", ["bytes32", "uint256"]),
        ("root", "0x" + "AB" * 32),
        ("tx_hash", "0x1234"),
        ("proof", ["0x" + "00" * 31]),
        ("chain_id", 0),
        ("chain_id", "31337"),
        ("batch_id", 0),
        ("block_number", -1),
        ("contract", "0x5FbDB2315678afecb367f032d93F642f64180aA3"),
        ("contract", "0x1234"),
        ("unexpected", "field"),
    ],
)
def test_malformed_bundles_are_refused(field, value):
    bundle = make_bundles(2)[0]
    bundle[field] = value
    with pytest.raises(ValidationError):
        ProofBundle.model_validate(bundle)
    checks = verify_bundle_offline(bundle)
    assert [(c.name, c.ok) for c in checks] == [("bundle_format", False)]
    assert field in checks[0].detail


def test_contract_address_is_written_in_lowercase():
    bundle = ProofBundle.model_validate(make_bundles(1)[0])
    assert bundle.contract == CONTRACT_CHECKSUMMED.lower()


def test_bundle_json_has_the_specified_fields_in_order_and_round_trips():
    bundle = ProofBundle.model_validate(make_bundles(3)[1])
    data = json.loads(bundle.model_dump_json())
    assert list(data) == [
        "format",
        "chain_id",
        "contract",
        "batch_id",
        "tx_hash",
        "block_number",
        "root",
        "leaf_encoding",
        "entry_id",
        "record_hash",
        "proof",
        "record",
    ]
    assert data["leaf_encoding"] == ["bytes32", "bytes32"]
    assert data["record"]["schema"] == "qilian.receivable-event/1"
    assert ProofBundle.model_validate_json(bundle.model_dump_json()) == bundle


def test_all_ok_is_false_for_no_checks():
    assert not all_ok([])


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_changing_any_single_hex_digit_of_a_bundle_hash_fails_verification(data):
    bundles = make_bundles(data.draw(st.integers(2, 9)))
    bundle = bundles[data.draw(st.integers(0, len(bundles) - 1))]
    fields = [
        "root",
        "entry_id",
        "record_hash",
        "salt",
        *(f"proof{i}" for i in range(len(bundle["proof"]))),
    ]
    field = data.draw(st.sampled_from(fields))
    holder: Any
    key: Any
    if field == "salt":
        holder, key = bundle["record"], "salt"
    elif field.startswith("proof"):
        holder, key = bundle["proof"], int(field.removeprefix("proof"))
    else:
        holder, key = bundle, field
    text = holder[key]
    position = data.draw(st.integers(2, 65))
    replacement = data.draw(
        st.sampled_from("0123456789abcdef").filter(lambda c: c != text[position])
    )
    holder[key] = text[:position] + replacement + text[position + 1 :]
    assert not all_ok(verify_bundle_offline(bundle))
