"""The auditor's page: a receivable's proof bundles (or bundles the auditor uploads) checked by the
ledger's ``POST /v1/verify`` — the same steps as ``qilian verify`` — and shown event by event, with
the ``cast`` commands that check the same facts without trusting the platform.

The api never imports the ledger (the import contract): bundles are fetched with the receivables
domain's :class:`~services.api.receivables.ledger.LedgerClient` and checked over HTTP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import httpx

from services.api.receivables import ledger

VERIFY_TIMEOUT_SECONDS: Final = 30.0
BATCHES_SIGNATURE: Final = "batches(uint64)(bytes32,uint64,uint64,uint32)"
VERIFY_ENTRY_SIGNATURE: Final = "verifyEntry(uint64,bytes32,bytes32,bytes32[])(bool,uint64,uint64)"

Verdict = Literal["VERIFIED", "FAILED", "PENDING"]


class NoBundle(ValueError):
    """The upload holds no proof bundle (not JSON, or JSON of another shape)."""


@dataclass
class EventCheck:
    """One event: its record, the recomputed hashes, the proof path, the batch, the verdict."""

    seq: int | None
    event_id: str | None
    type: str | None
    status: str  # pending | anchored | final (the ledger's), or "uploaded"
    verdict: Verdict
    record: dict[str, Any] | None = None
    record_hash_claimed: str | None = None
    record_hash_recomputed: str | None = None
    entry_id: str | None = None
    root: str | None = None
    proof: list[str] = field(default_factory=list)
    chain_id: int | None = None
    contract: str | None = None
    batch_id: int | None = None
    tx_hash: str | None = None
    block_number: int | None = None
    anchored_at: str | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    commands: str = ""


@dataclass
class History:
    receivable_id: str
    seqs: list[int]
    verdict: Verdict
    steps: list[dict[str, Any]]


@dataclass
class Audit:
    receivable_id: str | None
    events: list[EventCheck]
    histories: list[History]
    verdict: Verdict
    summary: str = ""
    rpc_chain_id: int | None = None


def cast_commands(bundle: dict[str, Any], rpc_url: str) -> str:
    """Shell commands that check one bundle against the chain with Foundry's ``cast`` alone
    (docs/anchoring.md, "Verifying a bundle", ways 2 and 3, with the bundle's values filled in)."""
    record = bundle.get("record") or {}
    contract, batch = bundle.get("contract"), bundle.get("batch_id")
    proof = "[" + ",".join(str(p) for p in bundle.get("proof") or []) + "]"
    return "\n".join(
        [
            f"RPC_URL={rpc_url}   # any JSON-RPC endpoint of chain {bundle.get('chain_id')}",
            f'cast chain-id --rpc-url "$RPC_URL"   # {bundle.get("chain_id")}',
            f"cast keccak {json.dumps(str(record.get('event_id', '')))}"
            f"   # entry_id: {bundle.get('entry_id')}",
            f'cast call {contract} "{BATCHES_SIGNATURE}" {batch} --rpc-url "$RPC_URL"'
            f"   # first line, the root: {bundle.get('root')}",
            f'cast call {contract} "{VERIFY_ENTRY_SIGNATURE}" \\',
            f"  {batch} {bundle.get('entry_id')} {bundle.get('record_hash')} \\",
            f'  "{proof}" --rpc-url "$RPC_URL"   # true, time, block {bundle.get("block_number")}',
            f'cast receipt {bundle.get("tx_hash")} blockNumber --rpc-url "$RPC_URL"'
            f"   # {bundle.get('block_number')}",
        ]
    )


def bundles_of(document: Any) -> list[dict[str, Any]]:
    """The bundles in one bundle, a list of bundles, or ``GET /v1/proofs/receivables/{id}``'s
    body (its anchored events' bundles)."""
    if isinstance(document, dict) and isinstance(document.get("events"), list):
        return [e["bundle"] for e in document["events"] if isinstance(e, dict) and e.get("bundle")]
    if isinstance(document, dict) and "record" in document:
        return [document]
    if isinstance(document, list):
        found: list[dict[str, Any]] = []
        for item in document:
            found.extend(bundles_of(item))
        return found
    return []


def parse_upload(data: bytes) -> list[dict[str, Any]]:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise NoBundle("the file is not JSON") from None
    bundles = bundles_of(document)
    if not bundles:
        raise NoBundle("the file holds no proof bundle (qilian-proof/1)")
    return bundles


async def verify(
    ledger_url: str, transport: httpx.AsyncBaseTransport | None, bundles: list[dict[str, Any]]
) -> dict[str, Any]:
    """The ledger's verification report of ``bundles`` (:class:`ledger.LedgerUnavailable` when
    it cannot answer)."""
    try:
        async with httpx.AsyncClient(
            base_url=ledger_url.rstrip("/"), transport=transport, timeout=VERIFY_TIMEOUT_SECONDS
        ) as client:
            response = await client.post("/v1/verify", json=bundles)
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ledger.LedgerUnavailable(str(exc)) from exc
    if response.status_code != 200 or not isinstance(body, dict):
        detail = body.get("detail") if isinstance(body, dict) else None
        raise ledger.LedgerUnavailable(detail or f"the ledger answered {response.status_code}")
    return body


def _verdict(ok: bool) -> Verdict:
    return "VERIFIED" if ok else "FAILED"


def _checked(bundle: dict[str, Any], report: dict[str, Any] | None, rpc_url: str) -> EventCheck:
    record = bundle.get("record") if isinstance(bundle.get("record"), dict) else {}
    assert isinstance(record, dict)
    ok = bool(report and report.get("ok"))
    return EventCheck(
        seq=record.get("seq"),
        event_id=record.get("event_id"),
        type=record.get("type"),
        status="uploaded",
        verdict=_verdict(ok),
        record=record,
        record_hash_claimed=bundle.get("record_hash"),
        record_hash_recomputed=(report or {}).get("record_hash"),
        entry_id=bundle.get("entry_id"),
        root=bundle.get("root"),
        proof=[str(p) for p in bundle.get("proof") or []],
        chain_id=bundle.get("chain_id"),
        contract=bundle.get("contract"),
        batch_id=bundle.get("batch_id"),
        tx_hash=bundle.get("tx_hash"),
        block_number=bundle.get("block_number"),
        anchored_at=(report or {}).get("anchored_at"),
        steps=list((report or {}).get("steps") or []),
        commands=cast_commands(bundle, rpc_url),
    )


def assemble(
    receivable_id: str | None,
    bundles: list[dict[str, Any]],
    report: dict[str, Any],
    rpc_url: str,
    pending: list[dict[str, Any]] | None = None,
    statuses: dict[str, str] | None = None,
) -> Audit:
    """The page's view of a verification report: each bundle with its report (matched by
    position), events still pending, and the ``prev`` chain of each receivable."""
    reports = {int(b.get("index", i)): b for i, b in enumerate(report.get("bundles") or [])}
    events = [_checked(b, reports.get(i), rpc_url) for i, b in enumerate(bundles)]
    for event in events:
        if statuses and event.event_id in statuses:
            event.status = statuses[event.event_id]
    for item in pending or []:
        events.append(
            EventCheck(
                seq=item.get("seq"),
                event_id=item.get("event_id"),
                type=None,
                status=str(item.get("status", "pending")),
                verdict="PENDING",
                record_hash_claimed=item.get("record_hash"),
                entry_id=item.get("entry_id"),
            )
        )
    events.sort(key=lambda e: (e.seq is None, e.seq or 0))
    histories = [
        History(
            receivable_id=str(h.get("receivable_id")),
            seqs=list(h.get("seqs") or []),
            verdict=_verdict(bool(h.get("ok"))),
            steps=list(h.get("steps") or []),
        )
        for h in report.get("histories") or []
    ]
    return Audit(
        receivable_id=receivable_id,
        events=events,
        histories=histories,
        verdict=_verdict(bool(report.get("ok"))),
        summary=str(report.get("summary") or ""),
        rpc_chain_id=report.get("rpc_chain_id"),
    )


async def audit_receivable(
    client: ledger.LedgerClient, receivable_id: str, rpc_url: str
) -> Audit | None:
    """Every anchored event of the receivable verified; None when the ledger has none yet."""
    answer = await client.receivable_proofs(receivable_id)
    if answer.status_code == 404 or not isinstance(answer.body, dict):
        return None
    items = [e for e in answer.body.get("events") or [] if isinstance(e, dict)]
    anchored = [e for e in items if isinstance(e.get("bundle"), dict)]
    if not anchored:
        return None
    bundles = [e["bundle"] for e in anchored]
    report = await verify(client.base_url, client.transport, bundles)
    return assemble(
        receivable_id,
        bundles,
        report,
        rpc_url,
        pending=[e for e in items if not isinstance(e.get("bundle"), dict)],
        statuses={str(e["event_id"]): str(e.get("status")) for e in anchored},
    )
