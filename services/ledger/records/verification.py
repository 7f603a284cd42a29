"""Checking proof bundles against the chain, step by step: the engine behind ``qilian verify`` and
the ledger's ``POST /v1/verify``.

The hashing core next to this module is pure; this module adds the on-chain half of a
verification, and it only ever *reads* the chain, through the small :class:`ChainReader` protocol.
:class:`RpcChainReader` implements it over JSON-RPC with nothing but the two view functions'
published signatures (``batches(uint64)`` and ``verifyEntry(uint64,bytes32,bytes32,bytes32[])``)
— no contract artefact, no database, no platform API — so an auditor's machine needs only the
bundle files and an RPC endpoint.

Every bundle gets the same named steps, in order (docs/anchoring.md, "Verifying a bundle"):

``bundle_format``  the JSON is a ``qilian-proof/1`` bundle holding a valid record;
``record_hash``    keccak256(RFC 8785 JSON of the record) equals the bundle's ``record_hash``;
``entry_id``       keccak256(UTF-8 event_id) equals the bundle's ``entry_id``;
``leaf``           the standard leaf of the *recomputed* ``[entry_id, record_hash]`` (shown);
``merkle_proof``   that leaf folded with ``proof`` gives the bundle's ``root``;
``chain_id``       the RPC endpoint's chain id is the bundle's (and the expected one, if given);
``contract``       code is deployed at ``contract`` (and it is the expected address, if given);
``onchain_root``   ``batches(batch_id)`` holds exactly that root;
``verify_entry``   the contract itself accepts the recomputed values with ``proof``;
``block``          the anchoring transaction succeeded, was sent to ``contract`` and is in
                   ``block_number``, which is also the block the contract recorded;
``block_time``     the block's timestamp is the one the contract recorded; confirmations shown.

Every later step uses the values recomputed from the record, never the bundle's own claims, so
an altered record, salt, proof or root fails. When several bundles of one receivable are given,
a history check per receivable follows ``prev`` from each record to the one before it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from services.ledger.records import merkle
from services.ledger.records.bundle import ProofBundle, verify_bundle_offline
from services.ledger.records.canonical import entry_id, leaf_hash, record_hash
from services.ledger.records.keccak import from_hex, keccak256, to_hex

T = TypeVar("T")

StepStatus = Literal["ok", "failed", "skipped"]

BATCHES_SIGNATURE: Final = "batches(uint64)"
VERIFY_ENTRY_SIGNATURE: Final = "verifyEntry(uint64,bytes32,bytes32,bytes32[])"
ZERO_ROOT: Final = b"\x00" * 32

BUNDLE_STEPS: Final = (
    "bundle_format",
    "record_hash",
    "entry_id",
    "leaf",
    "merkle_proof",
    "chain_id",
    "contract",
    "onchain_root",
    "verify_entry",
    "block",
    "block_time",
)


# the chain, read-only --------------------------------------------------------------------------


@dataclass(frozen=True)
class AnchoredBatch:
    """``batches(id)``: an unknown id reads as all zeros."""

    root: bytes
    timestamp: int
    block_number: int
    count: int


@dataclass(frozen=True)
class TransactionInfo:
    """Where a transaction was mined and whether it succeeded."""

    block_number: int
    status: int
    to: str | None  # lowercase address


class ChainReader(Protocol):
    """The few reads a verification needs. Implementations raise on RPC failures."""

    def chain_id(self) -> int: ...

    def code_size(self, contract: str) -> int: ...

    def batch(self, contract: str, batch_id: int) -> AnchoredBatch: ...

    def verify_entry(
        self, contract: str, batch_id: int, entry: bytes, value: bytes, proof: Sequence[bytes]
    ) -> tuple[bool, int, int]: ...

    def transaction(self, tx_hash: str) -> TransactionInfo | None: ...

    def block_timestamp(self, number: int) -> int | None: ...

    def head(self) -> int: ...


def _selector(signature: str) -> bytes:
    return keccak256(signature.encode("ascii"))[:4]


class RpcChainReader:
    """:class:`ChainReader` over any EVM JSON-RPC endpoint (web3's HTTP provider, ``eth_call``).

    Calls are encoded from the function signatures alone with ``eth_abi``, so the reader does not
    depend on anything the platform ships besides this specification.
    """

    def __init__(self, rpc_url: str, timeout: float = 30.0) -> None:
        from web3 import Web3

        self.rpc_url = rpc_url
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))

    def _call(self, contract: str, data: bytes) -> bytes:
        from web3 import Web3

        to = Web3.to_checksum_address(contract)
        return bytes(self.w3.eth.call({"to": to, "data": to_hex(data)}, "latest"))  # type: ignore[typeddict-item]

    def chain_id(self) -> int:
        return int(self.w3.eth.chain_id)

    def code_size(self, contract: str) -> int:
        from web3 import Web3

        return len(self.w3.eth.get_code(Web3.to_checksum_address(contract)))

    def batch(self, contract: str, batch_id: int) -> AnchoredBatch:
        from eth_abi.abi import decode, encode

        raw = self._call(contract, _selector(BATCHES_SIGNATURE) + encode(["uint64"], [batch_id]))
        root, timestamp, block_number, count = decode(
            ["bytes32", "uint64", "uint64", "uint32"], raw
        )
        return AnchoredBatch(bytes(root), int(timestamp), int(block_number), int(count))

    def verify_entry(
        self, contract: str, batch_id: int, entry: bytes, value: bytes, proof: Sequence[bytes]
    ) -> tuple[bool, int, int]:
        from eth_abi.abi import decode, encode

        args = encode(
            ["uint64", "bytes32", "bytes32", "bytes32[]"], [batch_id, entry, value, proof]
        )
        raw = self._call(contract, _selector(VERIFY_ENTRY_SIGNATURE) + args)
        ok, timestamp, block_number = decode(["bool", "uint64", "uint64"], raw)
        return bool(ok), int(timestamp), int(block_number)

    def transaction(self, tx_hash: str) -> TransactionInfo | None:
        from web3.exceptions import TransactionNotFound

        try:
            receipt = self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None
        if receipt.get("blockNumber") is None:
            return None
        to = receipt.get("to")
        return TransactionInfo(
            block_number=int(receipt["blockNumber"]),
            status=int(receipt["status"]),
            to=None if to is None else str(to).lower(),
        )

    def block_timestamp(self, number: int) -> int | None:
        from web3.exceptions import BlockNotFound

        try:
            block = self.w3.eth.get_block(number)
        except BlockNotFound:
            return None
        return int(block["timestamp"])

    def head(self) -> int:
        return int(self.w3.eth.block_number)


class _CachedReader:
    """Each distinct read once per verification (many bundles share a batch and a block)."""

    def __init__(self, reader: ChainReader) -> None:
        self.reader = reader
        self._cache: dict[tuple[Any, ...], Any] = {}

    def get(self, key: tuple[Any, ...], read: Callable[[], T]) -> T:
        if key not in self._cache:
            self._cache[key] = read()
        value: T = self._cache[key]
        return value


# reports ---------------------------------------------------------------------------------------


class Step(BaseModel):
    """One step of a verification: what was checked, whether it held, and the values compared."""

    model_config = ConfigDict(frozen=True)

    name: str
    status: StepStatus
    detail: str


class BundleReport(BaseModel):
    """Every step for one bundle; ``ok`` when none failed or was skipped."""

    index: int
    source: str
    ok: bool
    event_id: str | None = None
    receivable_id: str | None = None
    seq: int | None = None
    batch_id: int | None = None
    record_hash: str | None = None  # recomputed from the record
    anchored_at: str | None = None  # the anchoring block's time, RFC 3339 UTC
    steps: list[Step]


class HistoryReport(BaseModel):
    """The ``prev`` chain across the given bundles of one receivable."""

    receivable_id: str
    seqs: list[int]
    ok: bool
    steps: list[Step]


class VerificationReport(BaseModel):
    """The whole verification; ``ok`` only if every bundle and every history holds."""

    ok: bool
    rpc_chain_id: int | None
    bundles: list[BundleReport]
    histories: list[HistoryReport]
    summary: str


# the engine -------------------------------------------------------------------------------------


def _ok(name: str, detail: str) -> Step:
    return Step(name=name, status="ok", detail=detail)


def _failed(name: str, detail: str) -> Step:
    return Step(name=name, status="failed", detail=detail)


def _check(name: str, ok: bool, detail: str) -> Step:
    return Step(name=name, status="ok" if ok else "failed", detail=detail)


def _skip_rest(steps: list[Step], reason: str) -> None:
    done = {step.name for step in steps}
    steps.extend(
        Step(name=name, status="skipped", detail=reason)
        for name in BUNDLE_STEPS
        if name not in done
    )


def _same(computed_as: str, value: bytes, claimed: str, what: str = "what the bundle says") -> str:
    """``<how> = 0x…, equal to <what>`` or ``… ≠ <what> 0x…``."""
    text = f"{computed_as} = {to_hex(value)}"
    if to_hex(value) == claimed:
        return f"{text}, equal to {what}"
    return f"{text} ≠ {what} {claimed}"


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rpc_error(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return f"RPC error: {text[:300]}"


@dataclass(frozen=True)
class Unreadable:
    """Stands in for a bundle that could not even be read (a file error, bad JSON)."""

    reason: str


def parse_bundle(value: object) -> ProofBundle | str:
    """A bundle from its JSON (text, bytes or decoded), or the reason it is not one."""
    if isinstance(value, Unreadable):
        return value.reason
    try:
        if isinstance(value, str | bytes):
            return ProofBundle.model_validate_json(value)
        return ProofBundle.model_validate(value)
    except ValidationError as exc:
        return "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(bundle)'}: {error['msg']}"
            for error in exc.errors()
        )


@dataclass
class _Recomputed:
    bundle: ProofBundle
    record_hash: bytes
    entry_id: bytes
    leaf: bytes
    folded: bytes


def _offline_steps(bundle: ProofBundle, steps: list[Step]) -> _Recomputed:
    checks = {check.name: check for check in verify_bundle_offline(bundle)}
    computed_hash = record_hash(bundle.record)
    computed_entry = entry_id(bundle.record.event_id)
    leaf = leaf_hash(computed_entry, computed_hash)
    folded = merkle.process_proof(leaf, [from_hex(node) for node in bundle.proof])
    steps.append(
        _ok(
            "bundle_format",
            f"qilian-proof/1 for event {bundle.record.event_id} of {bundle.record.receivable_id} "
            f"(seq {bundle.record.seq}, {bundle.record.type}); batch {bundle.batch_id}",
        )
    )
    steps.append(
        _check(
            "record_hash",
            checks["record_hash"].ok,
            _same("keccak256 of the record's RFC 8785 JSON", computed_hash, bundle.record_hash),
        )
    )
    steps.append(
        _check(
            "entry_id",
            checks["entry_id"].ok,
            _same(f"keccak256({bundle.record.event_id!r})", computed_entry, bundle.entry_id),
        )
    )
    steps.append(
        _ok(
            "leaf",
            "keccak256(keccak256(entry_id ‖ record_hash)) of the recomputed values = "
            + to_hex(leaf),
        )
    )
    steps.append(
        _check(
            "merkle_proof",
            checks["merkle_proof"].ok,
            _same(
                f"the leaf folded with {len(bundle.proof)} proof node(s)",
                folded,
                bundle.root,
                what="the bundle's root",
            ),
        )
    )
    return _Recomputed(bundle, computed_hash, computed_entry, leaf, folded)


def _chain_steps(
    it: _Recomputed,
    chain: _CachedReader,
    rpc_chain_id: int,
    expected_chain_id: int | None,
    expected_contract: str | None,
    steps: list[Step],
) -> str | None:
    """The on-chain steps; returns the anchoring time (RFC 3339) when the block was read."""
    bundle = it.bundle
    reader = chain.reader
    contract = bundle.contract

    chain_ok = rpc_chain_id == bundle.chain_id
    detail = f"RPC endpoint chain id {rpc_chain_id}; bundle says {bundle.chain_id}"
    if expected_chain_id is not None:
        chain_ok = chain_ok and bundle.chain_id == expected_chain_id
        detail += f"; expected {expected_chain_id}"
    steps.append(_check("chain_id", chain_ok, detail))
    if not chain_ok:
        _skip_rest(steps, "not on the bundle's chain: nothing on chain can be compared")
        return None

    try:
        size = chain.get(("code", contract), lambda: reader.code_size(contract))
    except Exception as exc:
        steps.append(_failed("contract", _rpc_error(exc)))
        _skip_rest(steps, "the RPC endpoint did not answer")
        return None
    contract_ok = size > 0
    detail = f"code at {contract} ({size} bytes)" if size else f"no code at {contract}"
    if expected_contract is not None:
        contract_ok = contract_ok and contract == expected_contract.lower()
        detail += (
            "; it is the expected contract"
            if contract == expected_contract.lower()
            else f"; expected {expected_contract.lower()}"
        )
    else:
        detail += "; address taken from the bundle (pin the one you trust with --contract)"
    steps.append(_check("contract", contract_ok, detail))
    if not contract_ok:
        _skip_rest(steps, "not the anchoring contract")
        return None

    try:
        on_chain = chain.get(
            ("batch", contract, bundle.batch_id), lambda: reader.batch(contract, bundle.batch_id)
        )
        accepted, entry_time, entry_block = reader.verify_entry(
            contract,
            bundle.batch_id,
            it.entry_id,
            it.record_hash,
            [from_hex(node) for node in bundle.proof],
        )
        tx = chain.get(("tx", bundle.tx_hash), lambda: reader.transaction(bundle.tx_hash))
        block_time = chain.get(
            ("block", bundle.block_number), lambda: reader.block_timestamp(bundle.block_number)
        )
        head = chain.get(("head",), reader.head)
    except Exception as exc:
        steps.append(_failed("onchain_root", _rpc_error(exc)))
        _skip_rest(steps, "the RPC endpoint did not answer")
        return None

    call = f"batches({bundle.batch_id})"
    if on_chain.root == ZERO_ROOT:
        steps.append(_failed("onchain_root", f"{call} is empty: batch not anchored on {contract}"))
    else:
        root_ok = on_chain.root == it.folded and on_chain.root == from_hex(bundle.root)
        anchored = to_hex(on_chain.root)
        detail = f"{call} = root {anchored}, {on_chain.count} leaves, block {on_chain.block_number}"
        if root_ok:
            detail += "; equal to the folded proof and to the bundle's root"
        else:
            detail += (
                f"; the folded proof gives {to_hex(it.folded)}"
                + ("" if on_chain.root == it.folded else " (different)")
                + f"; the bundle's root is {bundle.root}"
                + ("" if anchored == bundle.root else " (different)")
            )
        steps.append(_check("onchain_root", root_ok, detail))
    steps.append(
        _check(
            "verify_entry",
            accepted and entry_block == bundle.block_number,
            f"verifyEntry({bundle.batch_id}, entry_id, record_hash, proof) with the recomputed "
            f"values = ({str(accepted).lower()}, {entry_time}, {entry_block}); bundle block "
            f"{bundle.block_number}",
        )
    )
    if tx is None:
        steps.append(_failed("block", f"transaction {bundle.tx_hash} is not mined on this chain"))
    else:
        block_ok = (
            tx.status == 1
            and tx.to == contract
            and tx.block_number == bundle.block_number == on_chain.block_number
        )
        steps.append(
            _check(
                "block",
                block_ok,
                f"transaction {bundle.tx_hash}: status {tx.status}, to {tx.to}, in block "
                f"{tx.block_number}; the bundle says block {bundle.block_number}, the contract "
                f"recorded block {on_chain.block_number}",
            )
        )
    if block_time is None:
        steps.append(_failed("block_time", f"block {bundle.block_number} is not on this chain"))
        return None
    confirmations = head - bundle.block_number + 1
    steps.append(
        _check(
            "block_time",
            block_time == on_chain.timestamp,
            f"block {bundle.block_number} mined at {_iso(block_time)} (timestamp {block_time}, "
            f"the contract recorded {on_chain.timestamp}); {confirmations} confirmation(s) at "
            f"head {head}",
        )
    )
    return _iso(block_time)


def _history(receivable_id: str, items: list[_Recomputed]) -> HistoryReport:
    steps: list[Step] = []
    by_seq: dict[int, _Recomputed] = {}
    for it in items:
        seq = it.bundle.record.seq
        held = by_seq.get(seq)
        if held is None:
            by_seq[seq] = it
        elif held.record_hash != it.record_hash:
            steps.append(
                _failed(
                    f"seq {seq}",
                    f"two different records claim seq {seq}: events {held.bundle.record.event_id} "
                    f"and {it.bundle.record.event_id}",
                )
            )
    seqs = sorted(by_seq)
    for seq in seqs:
        record = by_seq[seq].bundle.record
        name = f"prev of seq {seq}"
        if seq == 1:
            steps.append(_ok(name, "first event: prev is null"))
        elif seq - 1 in by_seq:
            before = by_seq[seq - 1].record_hash
            steps.append(
                _check(
                    name,
                    record.prev == to_hex(before),
                    _same(
                        f"record_hash of seq {seq - 1} (recomputed)",
                        before,
                        record.prev or "null",
                        what=f"prev of seq {seq}",
                    ),
                )
            )
        elif seq == seqs[0]:
            steps.append(
                Step(
                    name=name,
                    status="skipped",
                    detail=f"history checked from seq {seq}: the bundle of seq {seq - 1} "
                    f"(record_hash {record.prev}) was not given",
                )
            )
        else:
            steps.append(
                _failed(name, f"seq {seq - 1} is missing: the chain cannot be followed across it")
            )
    ok = all(step.status != "failed" for step in steps)
    return HistoryReport(receivable_id=receivable_id, seqs=seqs, ok=ok, steps=steps)


def verify_bundles(
    bundles: Sequence[tuple[str, object]],
    reader: ChainReader,
    *,
    expected_chain_id: int | None = None,
    expected_contract: str | None = None,
) -> VerificationReport:
    """Verify ``(source, bundle)`` pairs (a bundle as :class:`ProofBundle` or its JSON) on chain.

    ``source`` names where a bundle came from (a file, ``bundles[2]``) in the report. Expected
    chain id and contract address, when given, are checked too; without them the bundle's own
    are used. ``reader`` errors become failed steps, never exceptions.
    """
    chain = _CachedReader(reader)
    rpc_chain_id: int | None = None
    rpc_error: str | None = None
    try:
        rpc_chain_id = reader.chain_id()
    except Exception as exc:
        rpc_error = _rpc_error(exc)

    reports: list[BundleReport] = []
    parsed: dict[str, list[_Recomputed]] = defaultdict(list)
    for index, (source, value) in enumerate(bundles):
        steps: list[Step] = []
        bundle = value if isinstance(value, ProofBundle) else parse_bundle(value)
        if isinstance(bundle, str):
            steps.append(_failed("bundle_format", bundle))
            _skip_rest(steps, "not a qilian-proof/1 bundle")
            reports.append(BundleReport(index=index, source=source, ok=False, steps=steps))
            continue
        it = _offline_steps(bundle, steps)
        parsed[bundle.record.receivable_id].append(it)
        anchored_at: str | None = None
        if rpc_chain_id is None:
            steps.append(_failed("chain_id", rpc_error or "RPC error"))
            _skip_rest(steps, "the RPC endpoint did not answer")
        else:
            anchored_at = _chain_steps(
                it, chain, rpc_chain_id, expected_chain_id, expected_contract, steps
            )
        reports.append(
            BundleReport(
                index=index,
                source=source,
                ok=all(step.status == "ok" for step in steps),
                event_id=bundle.record.event_id,
                receivable_id=bundle.record.receivable_id,
                seq=bundle.record.seq,
                batch_id=bundle.batch_id,
                record_hash=to_hex(it.record_hash),
                anchored_at=anchored_at,
                steps=steps,
            )
        )

    histories = [_history(rid, items) for rid, items in parsed.items() if len(items) > 1]
    good = sum(report.ok for report in reports)
    ok = bool(reports) and good == len(reports) and all(h.ok for h in histories)
    summary = f"{good} of {len(reports)} bundle(s) verified"
    if histories:
        summary += f"; {sum(h.ok for h in histories)} of {len(histories)} history chain(s) hold"
    return VerificationReport(
        ok=ok,
        rpc_chain_id=rpc_chain_id,
        bundles=reports,
        histories=histories,
        summary=summary,
    )


def bundles_in(document: object, source: str) -> list[tuple[str, object]]:
    """The bundles inside a JSON document: one bundle, a list of bundles, or the ledger's
    receivable response (``{"events": [{"bundle": …}, …]}``, events not yet anchored left out)."""
    if isinstance(document, list):
        return [(f"{source}[{i}]", item) for i, item in enumerate(document)]
    if isinstance(document, Mapping) and "format" not in document:
        events = document.get("events")
        if isinstance(events, list):
            return [
                (f"{source}:events[{i}]", event["bundle"])
                for i, event in enumerate(events)
                if isinstance(event, Mapping) and event.get("bundle") is not None
            ]
    return [(source, document)]


def load_json(text: str | bytes) -> object:
    """JSON text decoded, refusing duplicate object keys (a bundle must be unambiguous)."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        if len(keys) != len(set(keys)):
            duplicated = sorted({key for key in keys if keys.count(key) > 1})
            raise ValueError(f"duplicate keys {duplicated}")
        return dict(pairs)

    return json.loads(text, object_pairs_hook=no_duplicates)
