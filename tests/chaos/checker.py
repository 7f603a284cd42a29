"""The invariant checker: ARCHITECTURE.md's "Rules that must always hold", over the database, the
chain and a workload's history together. Each check returns the violations it found, each naming
its invariant, so that a negative control can show which rule a broken build breaks.

| invariant | rule | where it looks |
|---|---|---|
| ``financed-once`` | 1 | financings over receivables, their lineage and their invoice |
| ``financed-once-on-chain`` | 1 | ``FinancingRegistry.status`` of every registered fingerprint |
| ``split-conserves`` | 2 | every parent against its parts, every row's value identity |
| ``one-accepted-offer`` | 3 | offers and financings per request, acceptance before close |
| ``ok-effect-present`` / ``fail-effect-absent`` | 9 | every operation of the history |
| ``no-duplicate-effect`` | 9 | payments, disbursements, offers, invoices per operation |
| ``idempotent-replay`` | 9 | each replay answered as the first |
| ``anchored`` | 5 | outbox → ledger record → anchored batch; hashes recompute |
| ``anchoring-chain`` | 5 | batches against ``ReceivableAnchor`` (:mod:`tests.chaos.invariants`) |
| ``hashes-only-on-chain`` | 6 | every transaction input and log on the chain |
| ``nonces-contiguous`` | 5 | the anchoring account's transactions against the ledger's |
| ``bank-isolation`` | 4 | the API, asked as each bank |
| ``audit-chain`` | 10 | ``GET /v1/audit-log/verify`` |
| ``ledger-balanced`` | — | the risk-sharing ledger: entries balance, accounts sum their lines |
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import rfc8785
from eth_account import Account
from web3 import Web3

from qilian.kit.anvil import DEV_PRIVATE_KEY
from services.ledger.chain.artifacts import load_artifact
from services.ledger.records.keccak import keccak256, to_hex
from tests.chaos.history import History, Op

FINANCED = ("registering", "awaiting_disbursement", "funded", "repaid", "defaulted")
REGISTERED = ("awaiting_disbursement", "funded")
ANCHORED = ("anchored", "final")


@dataclass(frozen=True)
class Violation:
    invariant: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.invariant}] {self.detail}"


class Database(Protocol):
    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]: ...


@dataclass
class Target:
    """What the checker looks at: a database, a chain, and optionally a history and the API."""

    db: Database
    rpc_url: str | None = None
    history: History | None = None
    api_url: str | None = None
    banks: list[tuple[str, str, str]] = field(default_factory=list)  # (org, client, secret)
    auditor: tuple[str, str] | None = None  # (client, secret) of a principal that may verify
    stack: Any = None  # a stack object for :mod:`tests.chaos.invariants` (rows, anvil, env, …)
    transport: httpx.AsyncBaseTransport | None = None  # an in-process app, for the API checks

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return self.db.rows(sql, params)


Check = Callable[[Target], list[Violation]]
CHECKS: dict[str, Check] = {}


def check(name: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS[name] = fn
        return fn

    return register


def run_checks(target: Target, only: Iterable[str] | None = None) -> list[Violation]:
    found: list[Violation] = []
    for name, fn in CHECKS.items():
        if only is not None and name not in set(only):
            continue
        try:
            found.extend(fn(target))
        except Exception as exc:  # a check that cannot run is a finding, not a pass
            found.append(Violation(name, f"check could not run: {type(exc).__name__}: {exc}"))
    return found


# rule 1: financed at most once --------------------------------------------------------------------


@check("financed-once")
def financed_once(t: Target) -> list[Violation]:
    rows = t.rows(
        "SELECT i.receivable_id, f.id FROM platform.financings f"
        " JOIN platform.financing_request_items i ON i.request_id = f.request_id"
        " WHERE f.state = ANY(%(s)s)",
        {"s": list(FINANCED)},
    )
    by_receivable: dict[str, set[str]] = defaultdict(set)
    for rid, fid in rows:
        by_receivable[rid].add(fid)
    out = [
        Violation("financed-once", f"receivable {rid} in financings {sorted(fids)}")
        for rid, fids in by_receivable.items()
        if len(fids) > 1
    ]
    # a part and its ancestor financed by different financings: the same value twice
    parents = dict(t.rows("SELECT id, parent_id FROM platform.receivables"))
    for rid in by_receivable:
        up = parents.get(rid)
        while up is not None:
            if up in by_receivable and by_receivable[up] != by_receivable[rid]:
                out.append(
                    Violation(
                        "financed-once",
                        f"receivable {rid} and its ancestor {up} both financed "
                        f"({sorted(by_receivable[rid])} / {sorted(by_receivable[up])})",
                    )
                )
            up = parents.get(up)
    return out


@check("financed-once-on-chain")
def financed_once_on_chain(t: Target) -> list[Violation]:
    if t.rpc_url is None:
        return []
    address = t.rows("SELECT address FROM ledger.deployments WHERE name = 'FinancingRegistry'")
    if not address:
        return [Violation("financed-once-on-chain", "no FinancingRegistry deployment recorded")]
    w3 = Web3(Web3.HTTPProvider(t.rpc_url, request_kwargs={"timeout": 30}))
    contract = w3.eth.contract(
        address=Web3.to_checksum_address(address[0][0]),
        abi=load_artifact("FinancingRegistry").abi,
    )
    ops = t.rows(
        "SELECT o.financing_id, o.fingerprint, o.financing_ref, f.state"
        " FROM ledger.registry_operations o JOIN platform.financings f ON f.id = o.financing_id"
        " WHERE o.action = 'register' AND o.state = 'done'"
    )
    out: list[Violation] = []
    live: dict[str, list[str]] = defaultdict(list)
    for fid, fingerprint, ref, state in ops:
        if state not in REGISTERED:
            continue
        live[fingerprint].append(fid)
        active, on_chain_ref, _ = contract.functions.status(bytes.fromhex(fingerprint[2:])).call()
        if not active or to_hex(bytes(on_chain_ref)) != ref:
            out.append(
                Violation(
                    "financed-once-on-chain",
                    f"financing {fid} is {state} but FinancingRegistry.status({fingerprint[:12]}…)"
                    f" is active={active} ref={to_hex(bytes(on_chain_ref))[:12]}…",
                )
            )
    for fingerprint, fids in live.items():
        if len(fids) > 1:
            out.append(
                Violation(
                    "financed-once-on-chain", f"fingerprint {fingerprint[:12]}… live for {fids}"
                )
            )
    return out


# rule 2: splits conserve value --------------------------------------------------------------------


@check("split-conserves")
def split_conserves(t: Target) -> list[Violation]:
    out: list[Violation] = []
    rows = t.rows(
        "SELECT id, parent_id, face_value_minor, open_amount_minor, paid_minor, diluted_minor,"
        " moved_minor, currency FROM platform.receivables"
    )
    children: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        if row[1] is not None:
            children[row[1]].append(row)
        if row[3] + row[4] + row[5] + row[6] != row[2]:
            out.append(Violation("split-conserves", f"{row[0]}: open+paid+diluted+moved ≠ face"))
    for row in rows:
        parts = children.get(row[0], [])
        if not parts:
            continue
        total = sum(p[2] for p in parts)
        if total != row[6]:
            out.append(
                Violation(
                    "split-conserves",
                    f"{row[0]}: parts sum to {total} minor units, {row[6]} moved to them",
                )
            )
        if any(p[7] != row[7] for p in parts):
            out.append(Violation("split-conserves", f"{row[0]}: a part in another currency"))
    roots = t.rows(
        "SELECT r.id, r.face_value_minor, i.amount_minor FROM platform.receivables r"
        " JOIN platform.invoices i ON i.id = r.invoice_id"
        " WHERE r.parent_id IS NULL AND i.kind = 'invoice'"
    )
    out += [
        Violation("split-conserves", f"root {rid}: face {face} ≠ invoice {amount}")
        for rid, face, amount in roots
        if face != amount
    ]
    return out


# rule 3: one accepted offer per request, none after close -----------------------------------------


@check("one-accepted-offer")
def one_accepted_offer(t: Target) -> list[Violation]:
    out: list[Violation] = []
    for rq, n in t.rows(
        "SELECT request_id, count(*) FROM platform.offers WHERE state = 'accepted'"
        " GROUP BY request_id HAVING count(*) > 1"
    ):
        out.append(Violation("one-accepted-offer", f"request {rq}: {n} accepted offers"))
    for rq, n in t.rows(
        "SELECT request_id, count(*) FROM platform.financings GROUP BY request_id"
        " HAVING count(*) > 1"
    ):
        out.append(Violation("one-accepted-offer", f"request {rq}: {n} financings"))
    for fid, rq in t.rows(
        "SELECT f.id, f.request_id FROM platform.financings f"
        " JOIN platform.financing_requests r ON r.id = f.request_id"
        " WHERE f.accepted_at > r.closes_at"
    ):
        out.append(Violation("one-accepted-offer", f"financing {fid}: accepted after {rq} closed"))
    for fid, offer, state in t.rows(
        "SELECT f.id, f.offer_id, o.state FROM platform.financings f"
        " JOIN platform.offers o ON o.id = f.offer_id WHERE o.state <> 'accepted'"
    ):
        out.append(Violation("one-accepted-offer", f"financing {fid}: its offer {offer} {state}"))
    return out


# rule 9: the history against the database ---------------------------------------------------------


def _effects(t: Target) -> dict[str, Callable[[Op], int]]:
    """Per kind, how many effects of one operation the database holds."""
    numbers = Counter(r[0] for r in t.rows("SELECT invoice_number FROM platform.invoices"))
    payments = Counter(r[0] for r in t.rows("SELECT reference FROM platform.receivable_payments"))
    funded = Counter(
        r[0]
        for r in t.rows(
            "SELECT disbursement_reference FROM platform.financings"
            " WHERE disbursement_reference IS NOT NULL"
        )
    )
    confirmed = {
        r[0]
        for r in t.rows(
            "SELECT id FROM platform.receivables WHERE confirmation = 'confirmed'"
            " OR id IN (SELECT receivable_id FROM platform.receivable_events"
            " WHERE type = 'confirmed')"
        )
    }
    requests = {r[0] for r in t.rows("SELECT id FROM platform.financing_requests")}
    financed_offers = {r[0] for r in t.rows("SELECT offer_id FROM platform.financings")}
    disputes = {r[0] for r in t.rows("SELECT id FROM platform.receivable_disputes")}
    split_parents = Counter(
        r[0]
        for r in t.rows("SELECT parent_id FROM platform.receivables WHERE parent_id IS NOT NULL")
    )
    existing = {r[0] for r in t.rows("SELECT id FROM platform.receivables")}

    def of_result(ids: set[str], name: str) -> Callable[[Op], int]:
        return lambda op: int(op.result.get(name) in ids) if op.result.get(name) else -1

    return {
        "upload": lambda op: numbers[op.args["number"]],
        "pay": lambda op: payments[op.args["reference"]],
        "fund": lambda op: funded[op.args["reference"]],
        "confirm": lambda op: int(op.args["receivable"] in confirmed),
        "request": of_result(requests, "request_id"),
        "accept": lambda op: int(op.args["offer"] in financed_offers),
        "dispute": of_result(disputes, "dispute_id"),
        "split": lambda op: (
            (
                int(all(c in existing for c in op.result["children"]))
                if op.result.get("children")
                else -1
            )
            if op.outcome == "ok"
            else min(split_parents[op.args["receivable"]], 1) * -1
        ),
    }


@check("history-effects")
def history_effects(t: Target) -> list[Violation]:
    if t.history is None:
        return []
    out: list[Violation] = []
    effects = _effects(t)
    for kind, count in effects.items():
        for key, op in t.history.final(kind).items():
            n = count(op)
            if n < 0:
                continue  # this kind's effect is not attributable to one failed operation
            if op.outcome == "ok" and n == 0:
                out.append(Violation("ok-effect-present", f"{kind} {key}: answered ok, no effect"))
            elif op.outcome == "fail" and n > 0 and not _settled_elsewhere(t.history, op):
                out.append(
                    Violation("fail-effect-absent", f"{kind} {key}: answered {op.status}, effect")
                )
            if n > 1:
                out.append(Violation("no-duplicate-effect", f"{kind} {key}: {n} effects"))
    out += _offers_per_bid(t)
    return out


def _settled_elsewhere(history: History, op: Op) -> bool:
    """Another operation may have caused the same effect (a confirm or accept by someone else,
    or one of a race's twins) — only ops with a unique marker count as failed-with-effect."""
    if op.kind in ("upload", "pay", "fund"):
        return False  # unique marker per operation
    same = {"confirm": "receivable", "accept": "offer"}.get(op.kind)
    if same is None:
        return True
    return any(
        o.kind == op.kind and o.args.get(same) == op.args.get(same) and o.outcome != "fail"
        for o in history.ops
    )


def _offers_per_bid(t: Target) -> list[Violation]:
    assert t.history is not None
    banks = {op.args["bank"] for op in t.history.ops if op.kind == "bid"}
    made = Counter(  # the offers of this history's banks (a stack may have run other workloads)
        (r[0], r[1])
        for r in t.rows("SELECT bank_id, request_id FROM platform.offers")
        if r[0] in banks
    )
    ok: Counter[tuple[str, str]] = Counter()
    maybe: Counter[tuple[str, str]] = Counter()
    for op in t.history.final("bid").values():
        pair = (op.args["bank"], op.args["request"])
        if op.outcome == "ok":
            ok[pair] += 1
        elif op.outcome == "unknown":
            maybe[pair] += 1
    out = []
    for pair in set(ok) | set(maybe) | set(made):
        if made[pair] < ok[pair]:
            out.append(Violation("ok-effect-present", f"bids {pair}: {ok[pair]} ok, {made[pair]}"))
        if made[pair] > ok[pair] + maybe[pair]:
            out.append(
                Violation(
                    "no-duplicate-effect",
                    f"bids {pair}: {made[pair]} offers for {ok[pair]} ok + {maybe[pair]} unknown",
                )
            )
    return out


@check("idempotent-replay")
def idempotent_replay(t: Target) -> list[Violation]:
    if t.history is None:
        return []
    out = []
    first: dict[str, Op] = {}
    for op in t.history.ops:
        if op.key is None or op.outcome not in ("ok", "fail") or op.status in (401, 429):
            continue
        if op.key not in first:
            first[op.key] = op
            continue
        was = first[op.key]
        if (was.status, was.body) != (op.status, op.body):
            out.append(
                Violation(
                    "idempotent-replay",
                    f"{op.kind} {op.key}: first {was.status}, replay {op.status}"
                    + ("" if was.status != op.status else " (different body)"),
                )
            )
    return out


# rule 5: every event anchored once, every hash recomputes -----------------------------------------


@check("anchored")
def anchored(t: Target) -> list[Violation]:
    out: list[Violation] = []
    undelivered = t.rows(
        "SELECT count(*) FROM platform.outbox WHERE delivered_at IS NULL OR dead_at IS NOT NULL"
    )[0][0]
    if undelivered:
        out.append(Violation("anchored", f"{undelivered} outbox rows undelivered or dead"))
    events = {
        r[0]: r[1:]
        for r in t.rows("SELECT event_id, receivable_id, seq, type FROM platform.receivable_events")
    }
    records = t.rows(
        "SELECT r.event_id, r.receivable_id, r.seq, r.record, r.record_hash, b.status"
        " FROM ledger.records r LEFT JOIN ledger.batches b ON b.id = r.batch_id"
    )
    seen = Counter(r[0] for r in records)
    out += [
        Violation("anchored", f"event {e} recorded {n} times") for e, n in seen.items() if n > 1
    ]
    missing = [e for e in events if e not in seen]
    if missing:
        out.append(Violation("anchored", f"{len(missing)} events never recorded: {missing[:3]}"))
    for event_id, receivable_id, seq, record, record_hash, status in records:
        if event_id in events:
            if status not in ANCHORED:
                out.append(Violation("anchored", f"event {event_id} in a batch {status}"))
            if (receivable_id, seq, record.get("type")) != events[event_id]:
                out.append(Violation("anchored", f"event {event_id}: record differs from event"))
        recomputed = to_hex(keccak256(rfc8785.dumps(record)))
        if recomputed != record_hash:
            out.append(Violation("anchored", f"event {event_id}: hash does not recompute"))
    return out


@check("anchoring-chain")
def anchoring_chain(t: Target) -> list[Violation]:
    if t.stack is None:
        return []
    from tests.chaos import invariants

    stored = invariants.batches(t.stack)
    out = []
    for fn in (invariants.assert_each_entry_in_exactly_one_batch, invariants.assert_chain_agrees):
        try:
            fn(t.stack, stored)
        except AssertionError as exc:
            out.append(Violation("anchoring-chain", str(exc).splitlines()[0]))
    return out


# rule 6: nothing but hashes on chain --------------------------------------------------------------


def _needles(t: Target) -> dict[bytes, str]:
    needles: dict[bytes, str] = {}
    for name, tax_id in t.rows("SELECT name, tax_id FROM platform.organizations"):
        needles[name.encode()] = f"organisation name {name!r}"
        needles[tax_id.encode()] = f"tax id {tax_id}"
    for number, amount in t.rows("SELECT invoice_number, amount_minor FROM platform.invoices"):
        if len(number) >= 6:
            needles[number.encode()] = f"invoice number {number}"
        needles[f"{amount / 100:.2f}".encode()] = f"amount {amount / 100:.2f}"
        if amount >= 100_000:  # a 32-byte ABI word holding the amount in minor units
            needles[amount.to_bytes(32, "big")] = f"amount word {amount}"
    return needles


def chain_payloads(rpc_url: str) -> list[tuple[str, bytes]]:
    """Every transaction input (contract creations excluded) and log data on the chain."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    out: list[tuple[str, bytes]] = []
    for number in range(w3.eth.block_number + 1):
        block = w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            assert not isinstance(tx, bytes)
            if tx.get("to") is None:
                continue
            out.append((tx["hash"].to_0x_hex(), bytes(tx["input"])))
            receipt = w3.eth.get_transaction_receipt(tx["hash"])
            for log in receipt["logs"]:
                out.append((tx["hash"].to_0x_hex(), bytes(log["data"])))
    return out


@check("hashes-only-on-chain")
def hashes_only_on_chain(t: Target) -> list[Violation]:
    if t.rpc_url is None:
        return []
    needles = _needles(t)
    out = []
    for tx_hash, data in chain_payloads(t.rpc_url):
        for needle, what in needles.items():
            if needle and needle in data:
                out.append(Violation("hashes-only-on-chain", f"{what} in {tx_hash}"))
    return out


# the anchoring account: every nonce used once, each by a transaction the ledger knows -------------


@check("nonces-contiguous")
def nonces_contiguous(t: Target) -> list[Violation]:
    if t.rpc_url is None:
        return []
    w3 = Web3(Web3.HTTPProvider(t.rpc_url, request_kwargs={"timeout": 30}))
    sender = Account.from_key(DEV_PRIVATE_KEY).address
    known = {
        str(r[0]).lower()
        for r in t.rows(
            "SELECT tx_hash FROM ledger.batches WHERE tx_hash IS NOT NULL"
            " UNION SELECT tx_hash FROM ledger.registry_operations WHERE tx_hash IS NOT NULL"
            " UNION SELECT tx_hash FROM ledger.deployments"
        )
    }
    nonces: list[int] = []
    out = []
    for number in range(w3.eth.block_number + 1):
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            assert not isinstance(tx, bytes)
            if tx["from"] != sender:
                continue
            nonces.append(int(tx["nonce"]))
            if tx["hash"].to_0x_hex().lower() not in known:
                out.append(
                    Violation(
                        "nonces-contiguous",
                        f"nonce {tx['nonce']}: transaction {tx['hash'].to_0x_hex()} unknown to "
                        "the ledger",
                    )
                )
    if sorted(nonces) != list(range(len(nonces))):
        out.append(Violation("nonces-contiguous", f"nonces on chain not 0…n-1: {sorted(nonces)}"))
    count = w3.eth.get_transaction_count(sender, "latest")
    if count != len(nonces):
        out.append(Violation("nonces-contiguous", f"{count} sent, {len(nonces)} mined"))
    return out


async def _pages(
    http: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        response = await http.get(path, params=params, headers=headers)
        response.raise_for_status()
        page = response.json()
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return items


async def _bearer(http: httpx.AsyncClient, client_id: str, secret: str) -> dict[str, str]:
    response = await http.post(
        "/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


ApiCheck = Callable[[Target, httpx.AsyncClient], Awaitable[list[Violation]]]
API_CHECKS: dict[str, ApiCheck] = {}


def api_check(name: str) -> Callable[[ApiCheck], ApiCheck]:
    def register(fn: ApiCheck) -> ApiCheck:
        API_CHECKS[name] = fn
        return fn

    return register


async def run_api_checks(target: Target, only: Iterable[str] | None = None) -> list[Violation]:
    """The checks that ask the API (as each bank, as an auditor)."""
    if target.api_url is None:
        return []
    found: list[Violation] = []
    async with httpx.AsyncClient(
        base_url=target.api_url, timeout=60, transport=target.transport
    ) as http:
        for name, fn in API_CHECKS.items():
            if only is not None and name not in set(only):
                continue
            try:
                found.extend(await fn(target, http))
            except Exception as exc:
                found.append(Violation(name, f"check could not run: {type(exc).__name__}: {exc}"))
    return found


# rule 4: a bank sees only its own offers ----------------------------------------------------------


@api_check("bank-isolation")
async def bank_isolation(t: Target, http: httpx.AsyncClient) -> list[Violation]:
    out = []
    offers = t.rows("SELECT id, request_id, bank_id FROM platform.offers")
    requests = sorted({r[1] for r in offers})
    for org, client_id, secret in t.banks:
        headers = await _bearer(http, client_id, secret)
        own = {o[0] for o in offers if o[2] == org}
        listed = {o["id"] for o in await _pages(http, "/v1/offers", headers)}
        if listed - own:
            out.append(
                Violation("bank-isolation", f"bank {org} lists {len(listed - own)} other offers")
            )
        for rq in requests:
            answer = await http.get(f"/v1/financing-requests/{rq}/offers", headers=headers)
            if answer.status_code != 200:
                continue
            seen = {o["id"] for o in answer.json()}
            if seen - own:
                out.append(Violation("bank-isolation", f"bank {org} sees other offers on {rq}"))
        for offer in [o[0] for o in offers if o[2] != org][:5]:
            if (await http.get(f"/v1/offers/{offer}", headers=headers)).status_code != 404:
                out.append(Violation("bank-isolation", f"bank {org} reads offer {offer}"))
    return out


# rule 10: the audit chain -------------------------------------------------------------------------


@api_check("audit-chain")
async def audit_chain(t: Target, http: httpx.AsyncClient) -> list[Violation]:
    if t.auditor is None:
        return []
    headers = await _bearer(http, *t.auditor)
    answer = await http.get("/v1/audit-log/verify", headers=headers)
    if answer.status_code != 200:
        return [Violation("audit-chain", f"verify answered {answer.status_code}")]
    body = answer.json()
    if not body["ok"]:
        return [Violation("audit-chain", f"row {body['first_bad_seq']}: {body['reason']}")]
    return []


# extension point: the risk-sharing ledger ---------------------------------------------------------


@check("ledger-balanced")
def ledger_balanced(t: Target) -> list[Violation]:
    """The risk-sharing ledger (``services/api/risk``): every journal entry's debits equal its
    credits, each line in its entry's currency, entries numbered 1…n, each account's balance the
    sum of its lines. (Before that ledger's migration there is nothing to check.)"""
    exists = t.rows(
        "SELECT count(*) FROM information_schema.tables"
        " WHERE table_schema = 'platform' AND table_name = 'risk_ledger_lines'"
    )[0][0]
    if not exists:
        return []
    out = [
        Violation("ledger-balanced", f"entry {eid}: debits {d} ≠ credits {c}")
        for eid, d, c in t.rows(
            "SELECT e.id, coalesce(sum(l.debit_minor), 0), coalesce(sum(l.credit_minor), 0)"
            " FROM platform.risk_ledger_entries e"
            " LEFT JOIN platform.risk_ledger_lines l ON l.entry_id = e.id"
            " GROUP BY e.id HAVING coalesce(sum(l.debit_minor), 0)"
            " <> coalesce(sum(l.credit_minor), 0) OR count(l.line) = 0"
        )
    ]
    out += [
        Violation("ledger-balanced", f"entry {eid}: a line on {account} in {cur}")
        for eid, account, cur in t.rows(
            "SELECT e.id, a.id, a.currency FROM platform.risk_ledger_entries e"
            " JOIN platform.risk_ledger_lines l ON l.entry_id = e.id"
            " JOIN platform.risk_accounts a ON a.id = l.account_id"
            " WHERE a.currency <> e.currency"
        )
    ]
    seqs = [r[0] for r in t.rows("SELECT seq FROM platform.risk_ledger_entries ORDER BY seq")]
    if seqs != list(range(1, len(seqs) + 1)):
        out.append(Violation("ledger-balanced", "entry numbers are not 1…n"))
    out += [
        Violation("ledger-balanced", f"account {aid}: balance {bal} ≠ lines {lines}")
        for aid, bal, lines in t.rows(
            "SELECT a.id, a.balance_minor, coalesce(sum(l.debit_minor - l.credit_minor), 0)"
            " FROM platform.risk_accounts a"
            " LEFT JOIN platform.risk_ledger_lines l ON l.account_id = a.id"
            " GROUP BY a.id, a.balance_minor"
            " HAVING a.balance_minor <> coalesce(sum(l.debit_minor - l.credit_minor), 0)"
        )
    ]
    return out


def summary(violations: list[Violation]) -> dict[str, int]:
    """The report's figures from the violations."""
    kinds = Counter(v.invariant for v in violations)
    return {
        "lost": kinds["ok-effect-present"] + kinds["anchored"],
        "duplicated": kinds["no-duplicate-effect"],
        "double_financed": kinds["financed-once"] + kinds["financed-once-on-chain"],
    }


def describe(violations: list[Violation], limit: int = 20) -> str:
    return json.dumps([str(v) for v in violations[:limit]], ensure_ascii=False, indent=1)
