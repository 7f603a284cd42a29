"""EIP-712 confirmation signatures (确权 by a core firm's registered key).

A core firm with a ``signing_address`` confirms a receivable by signing the typed data below; the
API recovers the signer and refuses any other address. The domain is the one ANCHORING.md names:
``Qilian``, version ``1``, the chain id and the ``ReceivableAnchor`` address as
``verifyingContract``. The whole typed data (what ``GET /v1/receivables/{id}/confirmation-message``
returns) is exactly what ``cast wallet verify --data`` takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address

from services.api.receivables.models import Receivable

DOMAIN_NAME: Final = "Qilian"
DOMAIN_VERSION: Final = "1"
PRIMARY_TYPE: Final = "ReceivableConfirmation"
TYPES: Final[dict[str, list[dict[str, str]]]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    PRIMARY_TYPE: [
        {"name": "receivableId", "type": "string"},
        {"name": "invoiceId", "type": "string"},
        {"name": "creditorId", "type": "string"},
        {"name": "debtorId", "type": "string"},
        {"name": "currency", "type": "string"},
        {"name": "amountMinor", "type": "uint256"},
        {"name": "dueDate", "type": "string"},
    ],
}


class InvalidSignature(ValueError):
    """Not a signature, or not one over this typed data."""


@dataclass(frozen=True)
class Domain:
    chain_id: int
    verifying_contract: str


def typed_data(receivable: Receivable, domain: Domain) -> dict[str, Any]:
    """The EIP-712 typed data a core firm signs to confirm ``receivable`` (its open amount)."""
    return {
        "types": TYPES,
        "primaryType": PRIMARY_TYPE,
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": domain.chain_id,
            "verifyingContract": to_checksum_address(domain.verifying_contract),
        },
        "message": {
            "receivableId": receivable.id,
            "invoiceId": receivable.invoice_id,
            "creditorId": receivable.creditor_id,
            "debtorId": receivable.debtor_id,
            "currency": receivable.currency,
            "amountMinor": receivable.open_amount_minor,
            "dueDate": receivable.due_date.isoformat(),
        },
    }


def sign(data: dict[str, Any], private_key: str) -> str:
    """A ``0x…`` 65-byte signature of the typed data by ``private_key``."""
    signed = Account.sign_message(encode_typed_data(full_message=data), private_key)
    return "0x" + bytes(signed.signature).hex()


def recover(data: dict[str, Any], signature: str) -> str:
    """The checksummed address that signed the typed data."""
    try:
        raw = bytes.fromhex(signature.removeprefix("0x"))
        if len(raw) != 65:
            raise InvalidSignature("a signature is 65 bytes (r, s, v)")
        signer: str = Account.recover_message(encode_typed_data(full_message=data), signature=raw)
    except InvalidSignature:
        raise
    except Exception as exc:  # eth-keys raises several types for a malformed signature
        raise InvalidSignature(f"not a valid signature: {type(exc).__name__}") from None
    return to_checksum_address(signer)


def address_of(private_key: str) -> str:
    return to_checksum_address(Account.from_key(private_key).address)
