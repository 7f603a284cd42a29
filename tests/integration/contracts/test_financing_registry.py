"""FinancingRegistry on a real anvil: one active financing per fingerprint, whole invoices against
their split parts, releases, and every revert."""

from __future__ import annotations

import pytest
from web3 import Web3
from web3.exceptions import ContractCustomError

from services.ledger.chain.artifacts import deploy_contract, load_artifact

ZERO32 = b"\x00" * 32
ZERO_ADDRESS = "0x" + "00" * 20
INVOICE = Web3.keccak(text="invoice fingerprint")
PART_1 = Web3.keccak(text="part 1 fingerprint")
PART_2 = Web3.keccak(text="part 2 fingerprint")
OTHER_INVOICE = Web3.keccak(text="other invoice fingerprint")
REF_A = Web3.keccak(text="financing a")
REF_B = Web3.keccak(text="financing b")
REPAID, CANCELLED, DEFAULTED, OTHER = 1, 2, 3, 4


def block_time(registry, receipt) -> int:
    return int(registry.w3.eth.get_block(receipt["blockNumber"])["timestamp"])


def test_deployer_owns_the_registry_and_constructor_sets_the_registrar(registry, roles):
    assert registry.call("owner") == roles.address("deployer")
    assert registry.call("registrar") == roles.address("registrar")
    receipt = registry.w3.eth.get_transaction_receipt(registry.tx_hash)
    assert registry.events(receipt, "RegistrarChanged") == [
        {"previousRegistrar": ZERO_ADDRESS, "newRegistrar": roles.address("registrar")}
    ]


def test_constructor_refuses_the_zero_address_as_registrar(w3, roles, decode_error):
    with pytest.raises(ContractCustomError) as caught:
        deploy_contract(w3, "FinancingRegistry", roles.deployer, ZERO_ADDRESS)
    abi = load_artifact("FinancingRegistry").abi
    assert decode_error(abi, str(caught.value.data)) == ("ZeroAddress", ())


def test_unknown_fingerprint_is_not_financed(registry):
    assert registry.call("status", INVOICE) == [False, ZERO32, 0]
    assert registry.call("invoiceOf", INVOICE) == ZERO32
    assert registry.call("activePartCount", INVOICE) == 0


def test_registrar_registers_a_financing_and_status_shows_it(registry, roles):
    receipt = registry.transact(roles.registrar, "register", INVOICE, REF_A)
    since = block_time(registry, receipt)
    assert registry.call("status", INVOICE) == [True, REF_A, since]
    assert registry.call("invoiceOf", INVOICE) == ZERO32
    assert registry.events(receipt, "Registered") == [
        {"fingerprint": INVOICE, "financingRef": REF_A, "since": since}
    ]


@pytest.mark.parametrize("caller", ["stranger", "deployer", "anchorer"])
@pytest.mark.parametrize(
    ("fn", "args"),
    [
        ("register", (INVOICE, REF_A)),
        ("registerPart", (INVOICE, PART_1, REF_A)),
        ("release", (INVOICE, REF_A, REPAID)),
    ],
)
def test_anyone_but_the_registrar_is_refused(registry, roles, caller, fn, args):
    key = getattr(roles, caller)
    assert registry.revert(key, fn, *args) == ("NotRegistrar", (roles.address(caller),))


def test_zero_fingerprint_is_refused(registry, roles):
    r = roles.registrar
    assert registry.revert(r, "register", ZERO32, REF_A) == ("ZeroFingerprint", ())
    assert registry.revert(r, "registerPart", ZERO32, PART_1, REF_A) == ("ZeroFingerprint", ())
    assert registry.revert(r, "registerPart", INVOICE, ZERO32, REF_A) == ("ZeroFingerprint", ())


def test_zero_financing_ref_is_refused(registry, roles):
    r = roles.registrar
    assert registry.revert(r, "register", INVOICE, ZERO32) == ("ZeroFinancingRef", ())
    assert registry.revert(r, "registerPart", INVOICE, PART_1, ZERO32) == ("ZeroFinancingRef", ())


def test_second_financing_of_an_active_invoice_is_refused_naming_the_first(registry, roles):
    registry.transact(roles.registrar, "register", INVOICE, REF_A)
    for ref in (REF_B, REF_A):
        assert registry.revert(roles.registrar, "register", INVOICE, ref) == (
            "AlreadyFinanced",
            (INVOICE, REF_A),
        )


def test_release_with_another_financing_ref_is_refused_and_keeps_the_financing(registry, roles):
    receipt = registry.transact(roles.registrar, "register", INVOICE, REF_A)
    assert registry.revert(roles.registrar, "release", INVOICE, REF_B, REPAID) == (
        "FinancingRefMismatch",
        (INVOICE, REF_A, REF_B),
    )
    assert registry.call("status", INVOICE) == [True, REF_A, block_time(registry, receipt)]


def test_release_of_a_fingerprint_that_is_not_financed_is_refused(registry, roles):
    assert registry.revert(roles.registrar, "release", INVOICE, REF_A, REPAID) == (
        "NotFinanced",
        (INVOICE,),
    )
    registry.transact(roles.registrar, "register", INVOICE, REF_A)
    registry.transact(roles.registrar, "release", INVOICE, REF_A, REPAID)
    assert registry.revert(roles.registrar, "release", INVOICE, REF_A, REPAID) == (
        "NotFinanced",
        (INVOICE,),
    )


@pytest.mark.parametrize("reason", [0, 5, 255])
def test_release_with_an_unknown_reason_is_refused(registry, roles, reason):
    registry.transact(roles.registrar, "register", INVOICE, REF_A)
    assert registry.revert(roles.registrar, "release", INVOICE, REF_A, reason) == (
        "InvalidReason",
        (reason,),
    )


@pytest.mark.parametrize("reason", [REPAID, CANCELLED, DEFAULTED, OTHER])
def test_released_invoice_can_be_financed_again(registry, roles, reason):
    registry.transact(roles.registrar, "register", INVOICE, REF_A)
    receipt = registry.transact(roles.registrar, "release", INVOICE, REF_A, reason)
    assert registry.events(receipt, "Released") == [
        {"fingerprint": INVOICE, "financingRef": REF_A, "reason": reason}
    ]
    assert registry.call("status", INVOICE) == [False, ZERO32, 0]
    receipt = registry.transact(roles.registrar, "register", INVOICE, REF_B)
    assert registry.call("status", INVOICE) == [True, REF_B, block_time(registry, receipt)]


def test_parts_of_an_invoice_are_financed_independently(registry, roles):
    receipt = registry.transact(roles.registrar, "registerPart", INVOICE, PART_1, REF_A)
    since = block_time(registry, receipt)
    assert registry.events(receipt, "PartRegistered") == [
        {
            "invoiceFingerprint": INVOICE,
            "partFingerprint": PART_1,
            "financingRef": REF_A,
            "since": since,
        }
    ]
    registry.transact(roles.registrar, "registerPart", INVOICE, PART_2, REF_B)
    assert registry.call("activePartCount", INVOICE) == 2
    assert registry.call("status", PART_1) == [True, REF_A, since]
    assert registry.call("status", PART_2)[:2] == [True, REF_B]
    assert registry.call("invoiceOf", PART_1) == INVOICE
    assert registry.call("invoiceOf", PART_2) == INVOICE
    assert registry.call("status", INVOICE) == [False, ZERO32, 0]


def test_whole_invoice_cannot_be_financed_while_a_part_of_it_is_active(registry, roles):
    registry.transact(roles.registrar, "registerPart", INVOICE, PART_1, REF_A)
    registry.transact(roles.registrar, "registerPart", INVOICE, PART_2, REF_A)
    assert registry.revert(roles.registrar, "register", INVOICE, REF_B) == (
        "InvoicePartsFinanced",
        (INVOICE, 2),
    )
    registry.transact(roles.registrar, "release", PART_1, REF_A, REPAID)
    assert registry.call("activePartCount", INVOICE) == 1
    assert registry.revert(roles.registrar, "register", INVOICE, REF_B) == (
        "InvoicePartsFinanced",
        (INVOICE, 1),
    )
    registry.transact(roles.registrar, "release", PART_2, REF_A, CANCELLED)
    assert registry.call("activePartCount", INVOICE) == 0
    assert registry.call("invoiceOf", PART_2) == ZERO32
    registry.transact(roles.registrar, "register", INVOICE, REF_B)
    assert registry.call("status", INVOICE)[:2] == [True, REF_B]


def test_part_cannot_be_financed_while_the_whole_invoice_is_active(registry, roles):
    registry.transact(roles.registrar, "register", INVOICE, REF_A)
    assert registry.revert(roles.registrar, "registerPart", INVOICE, PART_1, REF_B) == (
        "InvoiceWholeFinanced",
        (INVOICE, REF_A),
    )
    registry.transact(roles.registrar, "release", INVOICE, REF_A, DEFAULTED)
    registry.transact(roles.registrar, "registerPart", INVOICE, PART_1, REF_B)
    assert registry.call("activePartCount", INVOICE) == 1


def test_the_same_part_cannot_be_financed_twice(registry, roles):
    registry.transact(roles.registrar, "registerPart", INVOICE, PART_1, REF_A)
    assert registry.revert(roles.registrar, "registerPart", INVOICE, PART_1, REF_B) == (
        "AlreadyFinanced",
        (PART_1, REF_A),
    )
    assert registry.revert(roles.registrar, "register", PART_1, REF_B) == (
        "AlreadyFinanced",
        (PART_1, REF_A),
    )
    assert registry.revert(roles.registrar, "registerPart", OTHER_INVOICE, PART_1, REF_B) == (
        "AlreadyFinanced",
        (PART_1, REF_A),
    )
    assert registry.call("activePartCount", INVOICE) == 1
    assert registry.call("activePartCount", OTHER_INVOICE) == 0


def test_a_part_equal_to_its_invoice_is_refused(registry, roles):
    assert registry.revert(roles.registrar, "registerPart", INVOICE, INVOICE, REF_A) == (
        "PartEqualsInvoice",
        (INVOICE,),
    )


def test_an_active_part_cannot_be_split_again_as_an_invoice(registry, roles):
    registry.transact(roles.registrar, "registerPart", INVOICE, PART_1, REF_A)
    assert registry.revert(roles.registrar, "registerPart", PART_1, PART_2, REF_B) == (
        "InvoiceWholeFinanced",
        (PART_1, REF_A),
    )


def test_an_invoice_with_active_parts_cannot_be_financed_as_a_part(registry, roles):
    registry.transact(roles.registrar, "registerPart", INVOICE, PART_1, REF_A)
    assert registry.revert(roles.registrar, "registerPart", OTHER_INVOICE, INVOICE, REF_B) == (
        "InvoicePartsFinanced",
        (INVOICE, 1),
    )


def test_release_of_a_part_with_another_ref_is_refused_and_keeps_the_count(registry, roles):
    registry.transact(roles.registrar, "registerPart", INVOICE, PART_1, REF_A)
    assert registry.revert(roles.registrar, "release", PART_1, REF_B, REPAID) == (
        "FinancingRefMismatch",
        (PART_1, REF_A, REF_B),
    )
    assert registry.call("activePartCount", INVOICE) == 1


def test_released_part_can_be_financed_again(registry, roles):
    registry.transact(roles.registrar, "registerPart", INVOICE, PART_1, REF_A)
    receipt = registry.transact(roles.registrar, "release", PART_1, REF_A, OTHER)
    assert registry.events(receipt, "Released") == [
        {"fingerprint": PART_1, "financingRef": REF_A, "reason": OTHER}
    ]
    registry.transact(roles.registrar, "registerPart", INVOICE, PART_1, REF_B)
    assert registry.call("status", PART_1)[:2] == [True, REF_B]
    assert registry.call("activePartCount", INVOICE) == 1


def test_a_refused_registration_sent_anyway_reverts_on_chain_and_changes_nothing(registry, roles):
    registry.transact(roles.registrar, "register", INVOICE, REF_A)
    receipt = registry.send(roles.registrar, "register", INVOICE, REF_B, gas=200_000)
    assert receipt["status"] == 0
    assert registry.call("status", INVOICE)[:2] == [True, REF_A]
