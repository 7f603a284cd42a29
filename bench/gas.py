"""Gas used by every state-changing function of the Qilian contracts, measured on a fresh anvil.

Run: ``uv run python bench/gas.py``. Prints the Markdown table quoted in docs/contracts.md. Values
are ``gasUsed`` from the receipts (refunds deducted), so they include the 21 000 base cost and the
calldata; hashes are random-looking (keccak) so calldata costs are those of real use.
"""

from __future__ import annotations

from typing import Any

from eth_account import Account
from web3 import Web3

from qilian.kit.anvil import DEV_PRIVATE_KEY, Anvil
from services.ledger.chain.artifacts import deploy_contract, load_artifact

# anvil's second default account (a public development key): the operator rotated in and the
# owner that ownership is handed to at the end.
OTHER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
OTHER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
REPAID = 1


def h(text: str) -> bytes:
    return bytes(Web3.keccak(text=text))


class Bench:
    """Sends signed transactions and records each receipt's gasUsed."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        self.rows: list[tuple[str, str, str, int]] = []
        self.names: dict[str, str] = {}

    def deploy(self, name: str, *args: Any) -> Any:
        address, tx_hash = deploy_contract(self.w3, name, DEV_PRIVATE_KEY, *args)
        gas = int(self.w3.eth.get_transaction_receipt(tx_hash)["gasUsed"])
        self.rows.append((name, "constructor", "deployment", gas))
        self.names[address] = name
        return self.w3.eth.contract(address=address, abi=load_artifact(name).abi)

    def measure(
        self, contract: Any, case: str, fn: str, *args: Any, key: str = DEV_PRIVATE_KEY
    ) -> None:
        account = Account.from_key(key)
        tx = getattr(contract.functions, fn)(*args).build_transaction(
            {
                "from": account.address,
                "nonce": self.w3.eth.get_transaction_count(account.address, "pending"),
            }
        )
        signed = account.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        if receipt["status"] != 1:
            raise RuntimeError(f"{fn} reverted ({case})")
        self.rows.append((self.names[contract.address], fn, case, int(receipt["gasUsed"])))


def run(w3: Web3) -> list[tuple[str, str, str, int]]:
    dev = Account.from_key(DEV_PRIVATE_KEY).address
    bench = Bench(w3)

    anchor = bench.deploy("ReceivableAnchor", dev)
    bench.measure(anchor, "first batch (id 1)", "anchorRoot", 1, h("root 1"), 10_000)
    bench.measure(anchor, "later batch (id 2)", "anchorRoot", 2, h("root 2"), 10_000)
    for batch_id in range(3, 10):
        root = h(f"root {batch_id}")
        bench.measure(anchor, "later batches (ids 3–9)", "anchorRoot", batch_id, root, batch_id)
    bench.measure(anchor, "rotate the anchorer", "setAnchorer", OTHER)
    hand_over(bench, anchor)

    registry = bench.deploy("FinancingRegistry", dev)
    invoice, part_1, part_2 = h("invoice"), h("part 1"), h("part 2")
    bench.measure(registry, "whole invoice", "register", invoice, h("ref 1"))
    bench.measure(registry, "whole invoice", "release", invoice, h("ref 1"), REPAID)
    bench.measure(registry, "same invoice again, after release", "register", invoice, h("ref 2"))
    bench.measure(registry, "whole invoice", "release", invoice, h("ref 2"), REPAID)
    bench.measure(registry, "first part of an invoice", "registerPart", invoice, part_1, h("ref 3"))
    bench.measure(registry, "second part", "registerPart", invoice, part_2, h("ref 4"))
    bench.measure(registry, "a part, others still active", "release", part_1, h("ref 3"), REPAID)
    bench.measure(registry, "the last active part", "release", part_2, h("ref 4"), REPAID)
    bench.measure(registry, "rotate the registrar", "setRegistrar", OTHER)
    hand_over(bench, registry)
    return bench.rows


def hand_over(bench: Bench, contract: Any) -> None:
    """The inherited Ownable2Step moves: hand ownership to OTHER, who then renounces it."""
    bench.measure(contract, "start the hand-over", "transferOwnership", OTHER)
    bench.measure(contract, "new owner accepts", "acceptOwnership", key=OTHER_KEY)
    bench.measure(contract, "freeze the operator", "renounceOwnership", key=OTHER_KEY)


def table(rows: list[tuple[str, str, str, int]]) -> str:
    merged: dict[tuple[str, str, str], list[int]] = {}
    for contract, fn, case, gas in rows:
        merged.setdefault((contract, fn, case), []).append(gas)
    lines = ["| Contract | Function | Case | Gas used |", "|---|---|---|---:|"]
    for (contract, fn, case), values in merged.items():
        low, high = min(values), max(values)
        figure = f"{low:,}" if low == high else f"{low:,}–{high:,}"
        lines.append(f"| {contract} | `{fn}` | {case} | {figure} |")
    return "\n".join(lines)


def main() -> None:
    with Anvil() as chain:
        w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
        print(table(run(w3)))


if __name__ == "__main__":
    main()
