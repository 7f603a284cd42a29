"""The proof bundle (``qilian-proof/1``) and its offline verification.

A bundle is everything an auditor needs to check one record against the chain without the
platform: the record itself, the batch it was anchored in (chain id, contract, batch id,
transaction, block, root) and the Merkle proof. :func:`verify_bundle_offline` recomputes what can
be recomputed from the bundle alone — record_hash from the record, entry_id from its event_id, the
root from the proof — and returns one named :class:`Check` per step, so a caller can show exactly
what held and what did not. Reading the root back from the contract is a separate, on-chain step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from services.ledger.records import merkle
from services.ledger.records.canonical import (
    Hex32,
    ReceivableEventRecord,
    entry_id,
    leaf_hash,
    record_hash,
)
from services.ledger.records.keccak import from_hex, keccak256, to_hex

BUNDLE_FORMAT: Final = "qilian-proof/1"
MAX_PROOF_LENGTH: Final = 64
UINT64_MAX: Final = 2**64 - 1

_ADDRESS_RE: Final = re.compile(r"0x[0-9a-fA-F]{40}")


def _address(value: str) -> str:
    """An address as lowercase hex; mixed case is accepted only with a valid EIP-55 checksum."""
    if _ADDRESS_RE.fullmatch(value) is None:
        raise ValueError("expected an address: 0x followed by 40 hex digits")
    lower = value.lower()
    if value not in (lower, "0x" + lower[2:].upper()) and value != _checksummed(lower):
        raise ValueError("mixed-case address with a wrong EIP-55 checksum")
    return lower


def _checksummed(lower: str) -> str:
    digits = lower[2:]
    key = keccak256(digits.encode("ascii")).hex()
    return "0x" + "".join(
        c.upper() if c.isalpha() and int(key[i], 16) >= 8 else c for i, c in enumerate(digits)
    )


def _leaf_encoding(value: object) -> object:
    if isinstance(value, list | tuple) and list(value) == list(merkle.LEAF_ENCODING):
        return merkle.LEAF_ENCODING
    raise ValueError(f"leaf_encoding must be {list(merkle.LEAF_ENCODING)}")


Address = Annotated[str, AfterValidator(_address)]
LeafEncoding = Annotated[
    tuple[Literal["bytes32"], Literal["bytes32"]], BeforeValidator(_leaf_encoding)
]
Uint64 = Annotated[int, Field(strict=True, ge=0, le=UINT64_MAX)]


class ProofBundle(BaseModel):
    """One record with the proof that it is in an anchored batch (``qilian-proof/1``).

    Every hash is ``0x`` + 64 lowercase hex digits; ``contract`` is written in lowercase (an
    EIP-55 checksummed address is accepted on input).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["qilian-proof/1"] = BUNDLE_FORMAT
    chain_id: Annotated[int, Field(strict=True, ge=1, le=UINT64_MAX)]
    contract: Address
    batch_id: Annotated[int, Field(strict=True, ge=1, le=UINT64_MAX)]
    tx_hash: Hex32
    block_number: Uint64
    root: Hex32
    leaf_encoding: LeafEncoding = merkle.LEAF_ENCODING
    entry_id: Hex32
    record_hash: Hex32
    proof: Annotated[list[Hex32], Field(max_length=MAX_PROOF_LENGTH)]
    record: ReceivableEventRecord


class Check(BaseModel):
    """One step of a verification: its name, whether it held, and what was compared."""

    model_config = ConfigDict(frozen=True)

    name: str
    ok: bool
    detail: str

    @property
    def status(self) -> Literal["ok", "failed"]:
        return "ok" if self.ok else "failed"


def all_ok(checks: list[Check]) -> bool:
    """True when there is at least one check and every check held."""
    return bool(checks) and all(check.ok for check in checks)


def verify_bundle_offline(
    bundle: ProofBundle | Mapping[str, Any] | str | bytes,
) -> list[Check]:
    """Check a bundle with nothing but itself: no database, no platform, no chain.

    Accepts a parsed :class:`ProofBundle` or its JSON (text, bytes or a decoded object); a bundle
    that does not parse gives a single failed ``bundle_format`` check naming the problems.

    Checks, in order:

    - ``bundle_format``: the bundle parses as ``qilian-proof/1`` (which includes the record
      being a valid ``qilian.receivable-event/1`` record);
    - ``record_hash``: keccak256(RFC 8785 JSON of ``record``) equals ``record_hash``;
    - ``entry_id``: keccak256(UTF-8 ``record.event_id``) equals ``entry_id``;
    - ``merkle_proof``: the leaf of the *recomputed* ``[entry_id, record_hash]``, folded with
      ``proof``, gives ``root`` — so it holds only for this very record.

    Whether ``root`` is really anchored in batch ``batch_id`` of ``contract`` is an on-chain
    check and is not done here.
    """
    if not isinstance(bundle, ProofBundle):
        try:
            if isinstance(bundle, str | bytes):
                bundle = ProofBundle.model_validate_json(bundle)
            else:
                bundle = ProofBundle.model_validate(bundle)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or '(bundle)'}: {error['msg']}"
                for error in exc.errors()
            )
            return [Check(name="bundle_format", ok=False, detail=problems)]

    checks = [Check(name="bundle_format", ok=True, detail=f"{BUNDLE_FORMAT}, record parsed")]

    computed_hash = record_hash(bundle.record)
    checks.append(_compare("record_hash", computed_hash, from_hex(bundle.record_hash)))

    computed_entry = entry_id(bundle.record.event_id)
    checks.append(_compare("entry_id", computed_entry, from_hex(bundle.entry_id)))

    folded = merkle.process_proof(
        leaf_hash(computed_entry, computed_hash), [from_hex(node) for node in bundle.proof]
    )
    expected_root = from_hex(bundle.root)
    checks.append(
        Check(
            name="merkle_proof",
            ok=folded == expected_root,
            detail=(
                f"leaf of the recomputed [entry_id, record_hash] folded with "
                f"{len(bundle.proof)} proof node(s) gives {to_hex(folded)}; "
                f"bundle root {bundle.root}"
            ),
        )
    )
    return checks


def _compare(name: str, computed: bytes, claimed: bytes) -> Check:
    return Check(
        name=name,
        ok=computed == claimed,
        detail=f"recomputed {to_hex(computed)}; bundle says {to_hex(claimed)}",
    )
