"""The on-chain values of a FinancingRegistry operation, computed by the ledger only.

- whole fingerprint = ``keccak256(HMAC-SHA256(registry_key, invoice_fingerprint))``;
- part fingerprint = ``keccak256(HMAC-SHA256(registry_key, invoice_fingerprint ":part:"
  receivable_id))``;
- ``financingRef = keccak256(financing_id)``;

strings as ASCII/UTF-8 bytes. ``invoice_fingerprint`` is the platform's (64 lowercase hex, sha256 of
the normalised invoice identity); the key keeps it from being brute-forced out of the chain's
value, so nothing in clear goes on chain.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Final

from services.ledger.records.keccak import keccak256, to_hex

INVOICE_FINGERPRINT: Final = re.compile(r"^[0-9a-f]{64}$")
PART_SEPARATOR: Final = ":part:"


def _keyed(registry_key: str, message: str) -> bytes:
    return keccak256(hmac.new(registry_key.encode(), message.encode(), hashlib.sha256).digest())


def whole_fingerprint(registry_key: str, invoice_fingerprint: str) -> bytes:
    return _keyed(registry_key, invoice_fingerprint)


def part_fingerprint(registry_key: str, invoice_fingerprint: str, receivable_id: str) -> bytes:
    return _keyed(registry_key, invoice_fingerprint + PART_SEPARATOR + receivable_id)


def financing_ref(financing_id: str) -> bytes:
    return keccak256(financing_id.encode())


@dataclass(frozen=True)
class OnChainValues:
    """What an operation puts on chain (``0x`` hex): ``fingerprint`` is the part's for a part,
    ``invoice_fingerprint`` the whole invoice's (set for a part only)."""

    fingerprint: str
    invoice_fingerprint: str | None
    financing_ref: str


def on_chain_values(
    registry_key: str,
    *,
    invoice_fingerprint: str,
    financing_id: str,
    receivable_id: str,
    part: bool,
) -> OnChainValues:
    if not INVOICE_FINGERPRINT.fullmatch(invoice_fingerprint):
        raise ValueError("invoice_fingerprint must be 64 lowercase hex characters")
    whole = to_hex(whole_fingerprint(registry_key, invoice_fingerprint))
    ref = to_hex(financing_ref(financing_id))
    if not part:
        return OnChainValues(fingerprint=whole, invoice_fingerprint=None, financing_ref=ref)
    own = to_hex(part_fingerprint(registry_key, invoice_fingerprint, receivable_id))
    return OnChainValues(fingerprint=own, invoice_fingerprint=whole, financing_ref=ref)
