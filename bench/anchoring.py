"""Anchoring N events: one Merkle root per batch against one transaction per event, same run.

Run: ``uv run python bench/anchoring.py`` (``--events 500``, ``--batch-events 10000``). Starts a
throwaway anvil, deploys ``ReceivableAnchor`` twice, and anchors:

- **batched** — the ledger's way: the N records (canonical, salted, chained per receivable) go into
  one ``standard-v1`` tree whose root is sent with one ``anchorRoot``; time includes building the
  records and the tree, signing, sending and waiting for the receipt;
- **per event** — every record's leaf anchored alone, ``anchorRoot(i, leaf, 1)``, one transaction
  in flight at a time as the ledger requires (sign with the next nonce, send, wait for the receipt).

Both use ``services.ledger.anchoring.chain.AnchorChain``. Prints the Markdown table quoted in
docs/benchmarks.md; the ratios measured in one run are the figures to compare.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

from eth_account import Account
from eth_typing import HexStr
from web3 import Web3

from bench.common import machine
from qilian.kit.anvil import DEV_PRIVATE_KEY, Anvil
from services.ledger.anchoring.chain import AnchorChain
from services.ledger.chain.artifacts import deploy_contract
from services.ledger.records import merkle
from services.ledger.records.canonical import (
    ReceivableEventRecord,
    entry_id,
    leaf_hash,
    new_salt,
    record_hash,
)


@dataclass
class Result:
    name: str
    events: int
    seconds: float
    transactions: int
    gas: int


def records(count: int) -> list[tuple[bytes, bytes]]:
    """``(entry_id, record_hash)`` of ``count`` records, 5 events per receivable, chained."""
    values: list[tuple[bytes, bytes]] = []
    prev: bytes | None = None
    for i in range(count):
        seq = i % 5 + 1
        if seq == 1:
            prev = None
        record = ReceivableEventRecord(
            event_id=f"evt_bench_{i:08d}",
            receivable_id=f"rcv_bench_{i // 5:08d}",
            seq=seq,
            type="created" if seq == 1 else "confirmed",
            at="2026-11-29T06:00:00.000000Z",
            actor="org_bench",
            data={"amount": "1000.00", "currency": "CNY", "i": i},
            prev=None if prev is None else "0x" + prev.hex(),
            salt=new_salt(),
        )
        hashed = record_hash(record)
        values.append((entry_id(record.event_id), hashed))
        prev = hashed
    return values


def anchor(chain: AnchorChain, batch_id: int, root: bytes, count: int, nonce: int) -> int:
    """Send one anchorRoot and wait for its receipt; returns gas used."""
    signed = chain.sign(batch_id, root, count, nonce, chain.simulate(batch_id, root, count))
    chain.broadcast(signed)
    receipt = chain.w3.eth.wait_for_transaction_receipt(HexStr(signed.tx_hash), poll_latency=0.01)
    assert receipt["status"] == 1
    return int(receipt["gasUsed"])


def deploy(w3: Web3, rpc_url: str) -> AnchorChain:
    anchorer = Account.from_key(DEV_PRIVATE_KEY).address
    address, _ = deploy_contract(w3, "ReceivableAnchor", DEV_PRIVATE_KEY, anchorer)
    return AnchorChain(rpc_url, address, DEV_PRIVATE_KEY)


def batched(chain: AnchorChain, events: int) -> Result:
    start = time.perf_counter()
    tree = merkle.build(records(events))
    gas = anchor(chain, 1, tree.root, events, chain.nonce())
    return Result("batched (one root)", events, time.perf_counter() - start, 1, gas)


def per_event(chain: AnchorChain, events: int) -> Result:
    start = time.perf_counter()
    values = records(events)
    nonce = chain.nonce()
    gas = 0
    for i, (entry, value) in enumerate(values, start=1):
        gas += anchor(chain, i, leaf_hash(entry, value), 1, nonce)
        nonce += 1
    return Result("one transaction per event", events, time.perf_counter() - start, events, gas)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--batch-events", type=int, default=10_000)
    args = parser.parse_args()
    with Anvil() as node:
        w3 = Web3(Web3.HTTPProvider(node.rpc_url))
        results = [
            per_event(deploy(w3, node.rpc_url), args.events),
            batched(deploy(w3, node.rpc_url), args.events),
            batched(deploy(w3, node.rpc_url), args.batch_events),
        ]
    print(machine())
    print()
    print("| method | events | transactions | wall time | ms / event | gas | gas / event |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.name} | {r.events:,} | {r.transactions:,} | {r.seconds:.2f} s | "
            f"{1000 * r.seconds / r.events:.3f} | {r.gas:,} | {r.gas / r.events:,.1f} |"
        )
    single, batch = results[0], results[1]
    print()
    print(
        f"At {args.events} events, batching is {single.seconds / batch.seconds:.0f}× faster and "
        f"uses {single.gas / batch.gas:.0f}× less gas than one transaction per event."
    )


if __name__ == "__main__":
    main()
