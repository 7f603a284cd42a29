"""The catalogue of webhook event types: name → what it announces.

An endpoint subscribes to known types only: an exact name (``offer.received``), every type of a
family (``offer.*``), or everything (``*``). :func:`filters_matching` gives, for one type, every
filter that selects it, so that finding the endpoints of an event is one indexed query
(``event_types && filters``).
"""

from __future__ import annotations

from typing import Final

EVENT_TYPES: Final[dict[str, str]] = {
    "financing_request.opened": "a financing request was opened for bids",
    "financing_request.cancelled": "the requester cancelled a financing request",
    "financing_request.expired": "a financing request closed without an accepted offer",
    "financing_request.accepted": "the requester accepted one offer of a financing request",
    "offer.received": "a bank's offer was placed on a financing request",
    "offer.replaced": "a bank replaced its offer with a new one",
    "offer.withdrawn": "the bank withdrew its offer",
    "offer.accepted": "the requester accepted this offer",
    "offer.lost": "the requester accepted another offer",
    "offer.expired": "the offer expired before it was accepted",
    "financing.registered": "the financing was registered on chain (no double financing)",
    "financing.rolled_back": "the financing's on-chain registration was refused and undone",
    "financing.funded": "the bank confirmed it paid the advance",
    "financing.lapsed": "the bank did not fund in time; the receivables are free again",
    "financing.repaid": "the financing was repaid",
    "financing.defaulted": "the financing defaulted",
    "receivable.confirmed": "the debtor core firm confirmed a receivable (确权)",
    "receivable.rejected": "the debtor core firm rejected a receivable",
    "receivable.assigned": "a receivable was assigned: transferred to a new holder, or financed "
    "(disclosed factoring: the debtor now pays the financier)",
    "receivable.paid": "a receivable was paid in full",
    "receivable.overdue": "a receivable passed its due date unpaid",
    "risk_claim.paid": "a claim of a defaulted financing was paid to the bank: the pool paid its "
    "share, or the guarantor that owes one recorded paying it",
    "alert.raised": "an early warning was raised",
    "webhook.test": "a test message asked for by the endpoint's owner",
}

EVERYTHING: Final = "*"


def families() -> set[str]:
    """The prefix filters that name at least one known type (``offer.*``)."""
    found: set[str] = set()
    for name in EVENT_TYPES:
        parts = name.split(".")
        found.update(".".join(parts[:i]) + ".*" for i in range(1, len(parts)))
    return found


def is_known_filter(value: str) -> bool:
    return value == EVERYTHING or value in EVENT_TYPES or value in families()


def filters_matching(event_type: str) -> list[str]:
    """Every filter that selects ``event_type``: itself, each of its families, and ``*``."""
    parts = event_type.split(".")
    prefixes = [".".join(parts[:i]) + ".*" for i in range(1, len(parts))]
    return [event_type, *prefixes, EVERYTHING]
