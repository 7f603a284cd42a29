"""The anchored record of one receivable event, its canonical bytes and its hashes.

A record (schema ``qilian.receivable-event/1``) is the unit the ledger anchors: every event of every
receivable becomes one. Its fingerprint is ``record_hash = keccak256(RFC 8785 JSON of the record)``,
its key in a batch is ``entry_id = keccak256(UTF-8 event_id)``, and the Merkle leaf is
OpenZeppelin's standard leaf of ``[entry_id, record_hash]``. docs/anchoring.md is the published
specification; this module is its reference implementation, so every rule below is also written
there.

Only values that round-trip through JSON unchanged are allowed in a record: strings, booleans,
null, integers within ±(2**53 − 1), lists and objects with string keys. Floats are refused
everywhere — money is a decimal string beside its currency — because a float's canonical text
depends on binary rounding that different languages do not agree on.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, cast

import rfc8785
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from services.ledger.records.keccak import keccak256, to_hex

SCHEMA: Final = "qilian.receivable-event/1"
MAX_SAFE_INTEGER: Final = 2**53 - 1
MAX_DATA_DEPTH: Final = 32

_HEX32_RE: Final = re.compile(r"0x[0-9a-f]{64}")
_IDENTIFIER_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_EVENT_TYPE_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
_TIMESTAMP_RE: Final = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})T(?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(?:\.(?P<fraction>[0-9]{1,9}))?Z"
)


def _hex32(value: str) -> str:
    if _HEX32_RE.fullmatch(value) is None:
        raise ValueError("expected 0x followed by 64 lowercase hex digits (32 bytes)")
    return value


def _identifier(value: str) -> str:
    if _IDENTIFIER_RE.fullmatch(value) is None:
        raise ValueError(
            "expected 1-128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit"
        )
    return value


def _event_id(value: str) -> str:
    # `cast keccak` reads text starting with 0x as hex bytes; refusing such ids keeps the
    # documented `cast keccak "<event_id>"` equal to entry_id for every record.
    if value[:2].lower() == "0x":
        raise ValueError("an event_id must not start with 0x")
    return value


def _event_type(value: str) -> str:
    if _EVENT_TYPE_RE.fullmatch(value) is None:
        raise ValueError("expected lower_snake_case, e.g. 'created' or 'offer_accepted'")
    return value


def _timestamp(value: str) -> str:
    match = _TIMESTAMP_RE.fullmatch(value)
    if match is None:
        raise ValueError(
            "expected an RFC 3339 UTC timestamp ending in 'Z', e.g. 2025-01-31T09:30:00.000000Z"
        )
    fraction = (match["fraction"] or "").ljust(6, "0")[:6]
    try:
        datetime.fromisoformat(f"{match['date']}T{match['time']}.{fraction}+00:00")
    except ValueError as exc:
        raise ValueError(f"not a real date and time: {exc}") from None
    return value


def format_at(moment: datetime) -> str:
    """The record form of an aware datetime: UTC, microseconds, ``Z``.

    ``datetime(2025, 1, 31, 9, 30, tzinfo=UTC)`` gives ``"2025-01-31T09:30:00.000000Z"``.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a record timestamp needs a timezone-aware datetime")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _timestamp_input(value: object) -> object:
    return format_at(value) if isinstance(value, datetime) else value


def _json_value(value: object, path: str, depth: int) -> object:
    """A plain-JSON copy of ``value``; raises ValueError naming the path of what is not allowed."""
    if depth > MAX_DATA_DEPTH:
        raise ValueError(f"{path}: nested deeper than {MAX_DATA_DEPTH} levels")
    if value is None or value is True or value is False:
        return value
    if isinstance(value, str):
        _check_text(value, path)
        return str.__str__(value)
    if isinstance(value, float):
        raise ValueError(
            f"{path}: floats are refused in records; write numbers such as amounts as decimal "
            f"strings (e.g. '1234.50' with a currency)"
        )
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise ValueError(f"{path}: integer outside ±(2**53 − 1); write it as a decimal string")
        return int(value)
    if isinstance(value, list):
        return [_json_value(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, dict):
        copy: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path}: object keys must be strings, got {type(key).__name__}")
            _check_text(key, path)
            copy[str.__str__(key)] = _json_value(item, f"{path}.{key}", depth + 1)
        return copy
    raise ValueError(
        f"{path}: {type(value).__name__} is not a JSON value (use str, int, bool, None, list, dict)"
    )


def _check_text(value: str, path: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{path}: text is not valid Unicode (lone surrogate)") from None


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    return cast(dict[str, Any], _json_value(value, "data", 0))


Hex32 = Annotated[str, AfterValidator(_hex32)]
"""``0x`` + 64 lowercase hex digits."""

Identifier = Annotated[str, AfterValidator(_identifier)]
EventId = Annotated[str, AfterValidator(_identifier), AfterValidator(_event_id)]
EventType = Annotated[str, AfterValidator(_event_type)]
Timestamp = Annotated[str, BeforeValidator(_timestamp_input), AfterValidator(_timestamp)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_json_object)]


class ReceivableEventRecord(BaseModel):
    """One event of one receivable, exactly as hashed and anchored (``qilian.receivable-event/1``).

    Immutable once built. ``data`` is copied on validation; never mutate ``record.data`` afterwards,
    the record's hash is taken from it.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    record_schema: Literal["qilian.receivable-event/1"] = Field(default=SCHEMA, alias="schema")
    event_id: EventId
    receivable_id: Identifier
    seq: Annotated[int, Field(ge=1, le=MAX_SAFE_INTEGER)]
    type: EventType
    at: Timestamp
    actor: Identifier
    data: JsonObject
    prev: Hex32 | None
    salt: Hex32

    @model_validator(mode="after")
    def _first_event_has_no_prev(self) -> ReceivableEventRecord:
        if (self.seq == 1) != (self.prev is None):
            raise ValueError("prev must be null exactly when seq is 1")
        return self


def new_salt() -> str:
    """32 random bytes from :mod:`secrets`, as ``0x`` + 64 lowercase hex digits."""
    return to_hex(secrets.token_bytes(32))


def canonical_json(record: ReceivableEventRecord) -> bytes:
    """The record's RFC 8785 (JCS) serialisation, UTF-8 — the exact bytes that are hashed."""
    return rfc8785.dumps(record.model_dump(mode="python", by_alias=True))


def record_hash(record: ReceivableEventRecord) -> bytes:
    """keccak256 of :func:`canonical_json`."""
    return keccak256(canonical_json(record))


def entry_id(event_id: str) -> bytes:
    """keccak256 of the UTF-8 bytes of ``event_id``: the record's key inside a batch."""
    return keccak256(event_id.encode("utf-8"))


def leaf_hash(entry_id: bytes, record_hash: bytes) -> bytes:
    """OpenZeppelin standard leaf for ``["bytes32","bytes32"]``: keccak256(keccak256(a ‖ b)).

    ``abi.encode(bytes32, bytes32)`` is the plain 64-byte concatenation.
    """
    if len(entry_id) != 32 or len(record_hash) != 32:
        raise ValueError("entry_id and record_hash must be 32 bytes each")
    return keccak256(keccak256(entry_id + record_hash))
