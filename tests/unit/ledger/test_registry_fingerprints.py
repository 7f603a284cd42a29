"""FinancingRegistry on-chain values: fingerprints and financing refs as documented, the key
derived in development only, and nothing in clear in what goes on chain."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pydantic import SecretStr, ValidationError
from web3 import Web3

from qilian.kit.settings import Settings
from services.ledger.registry.chain import Call, RegistryChain
from services.ledger.registry.fingerprints import (
    financing_ref,
    on_chain_values,
    part_fingerprint,
    whole_fingerprint,
)
from services.ledger.registry.service import OperationRequest

KEY = "a-shared-registry-key"
INVOICE = hashlib.sha256(b"91630100MA0000001X|91630100MA0000002Y|0001234|2026-11-01").hexdigest()
FINANCING = "fin_0123456789abcdef0123456789abcdef"
RECEIVABLE = "rcv_fedcba9876543210fedcba9876543210"
ANY_ADDRESS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
DEV_KEY = "0x" + "11" * 32


def reference(key: str, message: str) -> bytes:
    """The documented formula with another keccak implementation (web3's)."""
    return bytes(Web3.keccak(hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()))


def test_whole_fingerprint_is_keccak_of_the_hmac_of_the_invoice_fingerprint():
    assert whole_fingerprint(KEY, INVOICE) == reference(KEY, INVOICE)


def test_part_fingerprint_binds_the_invoice_and_the_receivable():
    assert part_fingerprint(KEY, INVOICE, RECEIVABLE) == reference(
        KEY, f"{INVOICE}:part:{RECEIVABLE}"
    )
    other = part_fingerprint(KEY, INVOICE, "rcv_" + "0" * 32)
    assert other != part_fingerprint(KEY, INVOICE, RECEIVABLE)
    assert part_fingerprint(KEY, INVOICE, RECEIVABLE) != whole_fingerprint(KEY, INVOICE)


def test_financing_ref_is_keccak_of_the_financing_id():
    assert financing_ref(FINANCING) == bytes(Web3.keccak(text=FINANCING))


def test_another_key_gives_other_fingerprints():
    assert whole_fingerprint(KEY, INVOICE) != whole_fingerprint(KEY + "x", INVOICE)
    assert part_fingerprint(KEY, INVOICE, RECEIVABLE) != part_fingerprint(
        "other", INVOICE, RECEIVABLE
    )


def test_on_chain_values_of_a_whole_and_of_a_part():
    whole = on_chain_values(
        KEY,
        invoice_fingerprint=INVOICE,
        financing_id=FINANCING,
        receivable_id=RECEIVABLE,
        part=False,
    )
    assert whole.fingerprint == "0x" + reference(KEY, INVOICE).hex()
    assert whole.invoice_fingerprint is None
    assert whole.financing_ref == Web3.keccak(text=FINANCING).to_0x_hex()
    part = on_chain_values(
        KEY,
        invoice_fingerprint=INVOICE,
        financing_id=FINANCING,
        receivable_id=RECEIVABLE,
        part=True,
    )
    assert part.invoice_fingerprint == whole.fingerprint
    assert part.fingerprint == "0x" + reference(KEY, f"{INVOICE}:part:{RECEIVABLE}").hex()


@pytest.mark.parametrize("bad", ["", INVOICE[:-1], INVOICE + "0", INVOICE.upper(), "z" * 64])
def test_a_malformed_invoice_fingerprint_is_refused(bad: str):
    with pytest.raises(ValueError, match="invoice_fingerprint"):
        on_chain_values(
            KEY,
            invoice_fingerprint=bad,
            financing_id=FINANCING,
            receivable_id=RECEIVABLE,
            part=False,
        )


def clear_forms() -> list[bytes]:
    """Every way the clear values could appear in a transaction's input."""
    forms = [INVOICE.encode(), bytes.fromhex(INVOICE), FINANCING.encode(), RECEIVABLE.encode()]
    forms += [FINANCING.removeprefix("fin_").encode(), RECEIVABLE.removeprefix("rcv_").encode()]
    forms += [bytes.fromhex(FINANCING.removeprefix("fin_"))]
    forms += [bytes.fromhex(RECEIVABLE.removeprefix("rcv_"))]
    forms += [hashlib.sha256(INVOICE.encode()).digest()]  # an unkeyed hash of it
    forms += [bytes(Web3.keccak(text=INVOICE)), bytes(Web3.keccak(hexstr=INVOICE))]
    return forms


@pytest.mark.parametrize(
    ("action", "part", "reason"),
    [
        ("register", False, None),
        ("register", True, None),
        ("release", False, 1),
        ("release", True, 3),
    ],
)
def test_nothing_in_clear_goes_on_chain(action: str, part: bool, reason: int | None):
    values = on_chain_values(
        KEY,
        invoice_fingerprint=INVOICE,
        financing_id=FINANCING,
        receivable_id=RECEIVABLE,
        part=part,
    )
    call = Call(
        action, values.fingerprint, values.invoice_fingerprint, values.financing_ref, reason
    )
    data = RegistryChain("http://127.0.0.1:9", ANY_ADDRESS, DEV_KEY).calldata(call)
    assert bytes.fromhex(values.fingerprint[2:]) in data  # the keyed value is what is sent
    for clear in clear_forms():
        assert clear not in data


def test_development_derives_a_registry_key_from_the_secret_key():
    one = Settings(env="development", secret_key="s1").registry_key.get_secret_value()
    again = Settings(env="test", secret_key="s1").registry_key.get_secret_value()
    other = Settings(env="development", secret_key="s2").registry_key.get_secret_value()
    assert one == again
    assert one != other
    assert one != "s1"
    expected = hmac.new(b"s1", b"qilian-registry-key", hashlib.sha256).hexdigest()
    assert one == expected


def test_a_configured_registry_key_is_used_as_given():
    settings = Settings(env="development", registry_key=SecretStr("given"))
    assert settings.registry_key.get_secret_value() == "given"
    assert "given" not in repr(settings)


def test_production_refuses_to_start_without_a_registry_key():
    with pytest.raises(ValidationError, match="QILIAN_REGISTRY_KEY"):
        Settings(env="production", secret_key="a-real-secret", anchorer_private_key=DEV_KEY)
    settings = Settings(
        env="production",
        secret_key="a-real-secret",
        anchorer_private_key=DEV_KEY,
        registry_key=SecretStr("shared"),
    )
    assert settings.registry_key.get_secret_value() == "shared"


def request(**overrides: object) -> dict[str, object]:
    payload: dict[str, object] = {
        "operation_id": "rop_1",
        "action": "register",
        "financing_id": FINANCING,
        "receivable_id": RECEIVABLE,
        "invoice_fingerprint": INVOICE,
        "part": False,
        "reason": None,
    }
    payload.update(overrides)
    return payload


def test_a_well_formed_request_is_accepted():
    assert OperationRequest.model_validate(request()).action == "register"
    assert OperationRequest.model_validate(request(action="release", reason=2)).reason == 2


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"action": "finance"}, "action"),
        ({"action": "release", "reason": None}, "reason"),
        ({"action": "release", "reason": 5}, "reason"),
        ({"reason": 1}, "reason"),
        ({"invoice_fingerprint": "abc"}, "invoice_fingerprint"),
        ({"part": "yes"}, "part"),
        ({"operation_id": ""}, "operation_id"),
    ],
)
def test_a_malformed_request_is_refused_naming_the_field(overrides: dict[str, object], field: str):
    with pytest.raises(ValidationError, match=field):
        OperationRequest.model_validate(request(**overrides))
