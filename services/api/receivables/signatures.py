"""EIP-712 confirmation signatures (确权 by a core firm's registered key).

A core firm with a ``signing_address`` confirms a receivable by signing the typed data below; the
API recovers the signer and refuses any other address. The domain is the one ANCHORING.md names:
``Qilian``, version ``1``, the chain id and the ``ReceivableAnchor`` address as
``verifyingContract``. The whole typed data (what ``GET /v1/receivables/{id}/confirmation-message``
returns) is exactly what ``cast wallet verify --data`` takes.

eth-account and eth-utils are imported on first use, not with the module: with py_ecc's pairing
tables they were most of the api's import time, which a restarted api paid before it answered
anything (docs/benchmarks.md). :func:`preload` imports them in a thread once the api serves.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache
from types import SimpleNamespace
from typing import Any, Final

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


@cache
def _eth() -> SimpleNamespace:
    # seconds of import: off the startup path (see the module docstring)
    from eth_account import Account
    from eth_account.messages import encode_typed_data
    from eth_utils.address import to_checksum_address

    return SimpleNamespace(
        Account=Account, encode_typed_data=encode_typed_data, checksum=to_checksum_address
    )


def preload() -> threading.Thread:
    """Import the signing libraries in a daemon thread (the first signed confirmation then
    waits for nothing); returns the thread."""
    thread = threading.Thread(target=_eth, name="preload-eth-account", daemon=True)
    thread.start()
    return thread


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
            "verifyingContract": _eth().checksum(domain.verifying_contract),
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
    eth = _eth()
    signed = eth.Account.sign_message(eth.encode_typed_data(full_message=data), private_key)
    return "0x" + bytes(signed.signature).hex()


def recover(data: dict[str, Any], signature: str) -> str:
    """The checksummed address that signed the typed data."""
    eth = _eth()
    try:
        raw = bytes.fromhex(signature.removeprefix("0x"))
        if len(raw) != 65:
            raise InvalidSignature("a signature is 65 bytes (r, s, v)")
        message = eth.encode_typed_data(full_message=data)
        signer: str = eth.Account.recover_message(message, signature=raw)
    except InvalidSignature:
        raise
    except Exception as exc:  # eth-keys raises several types for a malformed signature
        raise InvalidSignature(f"not a valid signature: {type(exc).__name__}") from None
    return str(eth.checksum(signer))


def address_of(private_key: str) -> str:
    eth = _eth()
    return str(eth.checksum(eth.Account.from_key(private_key).address))
