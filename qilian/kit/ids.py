"""Opaque, prefixed identifiers (``rcv_…``, ``org_…``): a type prefix and 128 random bits.

The prefix tells a reader what an id names in logs and support tickets; the random part is a UUID4
in hex so ids reveal nothing about volume or time.
"""

from __future__ import annotations

import re
import uuid

PREFIXES = frozenset(
    {"org", "cli", "usr", "inv", "rcv", "evt", "fin", "ofr", "pay", "dsp", "imp", "whk", "bat"}
    | {"frq", "rop"}  # financing requests, FinancingRegistry operations
    | {"gpr", "jnl", "clm", "alr"}  # guarantee programmes, risk ledger entries, claims, alerts
)
_ID_RE = re.compile(r"^(?P<prefix>[a-z]{3})_(?P<hex>[0-9a-f]{32})$")


def new_id(prefix: str) -> str:
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    return f"{prefix}_{uuid.uuid4().hex}"


def is_id(value: str, prefix: str | None = None) -> bool:
    match = _ID_RE.match(value)
    return bool(match) and (prefix is None or match["prefix"] == prefix)  # type: ignore[index]
