"""The ledger's proof API over HTTP (the api never imports the ledger): the anchoring status of a
receivable's events and their proof bundles.

``GET {ledger_url}/v1/proofs/receivables/{id}`` answers each event the ledger has recorded with its
status (``pending``, ``anchored``, ``final``), batch id and, once anchored, the bundle (which
names the transaction and block). An event the ledger has not received yet (still in the outbox)
is ``pending``. When the ledger cannot be reached, the status is ``unknown``: showing a receivable
never fails because the ledger is down.

Lists read many receivables at once with :func:`anchoring_many`: ``POST
{ledger_url}/v1/anchoring/status`` answers the statuses of up to 500 events in one call, without
proofs, and gives exactly what :func:`anchoring` gives per receivable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

import httpx
import structlog

log = structlog.get_logger(__name__)

TIMEOUT_SECONDS: Final = 2.0
STATUS_BATCH: Final = 500
"""At most this many event ids per ``POST /v1/anchoring/status`` (the ledger's limit)."""


class LedgerUnavailable(Exception):
    """The ledger did not answer, or answered with a server error."""


@dataclass(frozen=True)
class LedgerAnswer:
    status_code: int
    body: Any
    headers: dict[str, str]


class LedgerClient:
    def __init__(
        self,
        base_url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.transport = transport
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> LedgerClient:
        """Inside ``async with``, every call shares one connection pool (a page that asks about
        many receivables at once); outside, each call opens and closes its own."""
        self._client = httpx.AsyncClient(
            base_url=self.base_url, transport=self.transport, timeout=self.timeout
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @asynccontextmanager
    async def _http(self) -> AsyncIterator[httpx.AsyncClient]:
        if self._client is not None:
            yield self._client
            return
        async with httpx.AsyncClient(
            base_url=self.base_url, transport=self.transport, timeout=self.timeout
        ) as client:
            yield client

    async def _ask(self, method: str, path: str, **kwargs: Any) -> tuple[httpx.Response, Any]:
        """One call and its JSON body; :class:`LedgerUnavailable` on a transport error, a 5xx or
        a body that is not JSON."""
        try:
            async with self._http() as client:
                response = await client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            log.warning("ledger_unreachable", error=type(exc).__name__)
            raise LedgerUnavailable(str(exc)) from exc
        if response.status_code >= 500:
            raise LedgerUnavailable(f"the ledger answered {response.status_code}")
        try:
            return response, response.json()
        except ValueError:
            raise LedgerUnavailable("the ledger answered something that is not JSON") from None

    async def receivable_proofs(self, receivable_id: str, *, latest: bool = False) -> LedgerAnswer:
        """The ledger's answer (200 or 404 with its JSON); :class:`LedgerUnavailable` otherwise."""
        params = {"latest": "true"} if latest else None
        response, body = await self._ask(
            "GET", f"/v1/proofs/receivables/{receivable_id}", params=params
        )
        kept = {k: v for k, v in response.headers.items() if k.lower() == "retry-after"}
        return LedgerAnswer(response.status_code, body, kept)

    async def anchoring_status(self, event_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``POST /v1/anchoring/status`` (1 to :data:`STATUS_BATCH` ids): per event the ledger has a
        record of, its ``status``, ``batch_id``, ``tx_hash`` and ``block_number``; the others are
        absent. :class:`LedgerUnavailable` on a transport error, a 5xx, a body that is not JSON, or
        any answer but ``200`` with ``events`` (a ledger without the route, a refused request)."""
        response, body = await self._ask(
            "POST", "/v1/anchoring/status", json={"event_ids": list(event_ids)}
        )
        events = body.get("events") if isinstance(body, dict) else None
        if response.status_code != 200 or not isinstance(events, dict):
            log.warning("ledger_status_refused", status_code=response.status_code)
            raise LedgerUnavailable(f"the ledger answered {response.status_code}")
        return {k: v for k, v in events.items() if isinstance(v, dict)}

    async def chain(self) -> dict[str, Any]:
        """``GET /v1/chain``: the chain id and contract addresses the ledger anchors with."""
        try:
            async with self._http() as client:
                response = await client.get("/v1/chain")
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("ledger_unreachable", error=type(exc).__name__)
            raise LedgerUnavailable(str(exc)) from exc
        if response.status_code != 200 or not isinstance(body, dict):
            raise LedgerUnavailable(f"the ledger answered {response.status_code}")
        return body


@dataclass(frozen=True)
class EventAnchoring:
    event_id: str
    seq: int
    status: str  # pending | anchored | final | unknown
    batch_id: int | None = None
    tx_hash: str | None = None
    block_number: int | None = None


ORDER: Final = {"pending": 0, "anchored": 1, "final": 2}


def _read(
    events: list[tuple[str, int]], known: dict[str, dict[str, Any]]
) -> tuple[str, list[EventAnchoring]]:
    """``events`` as ``known`` to the ledger (``status``, ``batch_id``, ``tx_hash``,
    ``block_number`` per event id); an event it does not know is ``pending``."""
    out = []
    for event_id, seq in events:
        item = known.get(event_id)
        if item is None or item.get("status") not in ORDER:
            out.append(EventAnchoring(event_id, seq, "pending"))
            continue
        out.append(
            EventAnchoring(
                event_id,
                seq,
                item["status"],
                batch_id=item.get("batch_id"),
                tx_hash=item.get("tx_hash"),
                block_number=item.get("block_number"),
            )
        )
    overall = min((e.status for e in out), key=ORDER.__getitem__, default="pending")
    return overall, out


def _unknown(events: list[tuple[str, int]]) -> tuple[str, list[EventAnchoring]]:
    return "unknown", [EventAnchoring(eid, seq, "unknown") for eid, seq in events]


async def anchoring(
    client: LedgerClient, receivable_id: str, events: list[tuple[str, int]]
) -> tuple[str, list[EventAnchoring]]:
    """Each event's anchoring (``events`` are ``(event_id, seq)``) and the receivable's overall
    status: the least advanced of its events, or ``unknown`` when the ledger is unreachable."""
    try:
        answer = await client.receivable_proofs(receivable_id)
    except LedgerUnavailable:
        return _unknown(events)
    known: dict[str, dict[str, Any]] = {}
    if answer.status_code == 200 and isinstance(answer.body, dict):
        for item in answer.body.get("events") or []:
            if isinstance(item, dict) and isinstance(item.get("event_id"), str):
                bundle = item.get("bundle") if isinstance(item.get("bundle"), dict) else {}
                known[item["event_id"]] = {
                    "status": item.get("status"),
                    "batch_id": item.get("batch_id"),
                    "tx_hash": bundle.get("tx_hash") if bundle else None,
                    "block_number": bundle.get("block_number") if bundle else None,
                }
    return _read(events, known)


async def anchoring_many(
    client: LedgerClient, events_by_receivable: dict[str, list[tuple[str, int]]]
) -> dict[str, tuple[str, list[EventAnchoring]]]:
    """:func:`anchoring` of many receivables (``receivable_id → [(event_id, seq)]``) in one ledger
    call per :data:`STATUS_BATCH` events: the same answer per receivable, and ``unknown`` for all
    of them when the ledger is unreachable (no call is made when there is no event at all)."""
    wanted = list(
        dict.fromkeys(eid for events in events_by_receivable.values() for eid, _ in events)
    )
    known: dict[str, dict[str, Any]] = {}
    try:
        for start in range(0, len(wanted), STATUS_BATCH):
            known.update(await client.anchoring_status(wanted[start : start + STATUS_BATCH]))
    except LedgerUnavailable:
        return {rid: _unknown(events) for rid, events in events_by_receivable.items()}
    return {rid: _read(events, known) for rid, events in events_by_receivable.items()}
