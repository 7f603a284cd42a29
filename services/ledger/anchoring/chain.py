"""The web3 calls of anchoring: ``ReceivableAnchor.anchorRoot``, ``batches``, receipts, blocks.

Synchronous web3.py (one HTTP provider per :class:`AnchorChain`); the service runs each call in a
thread. Nothing here touches the database or decides anything: the service owns nonces and states,
this module only signs with the nonce it is given, broadcasts, and reads the chain back.
Custom-error reverts are decoded by name from the contract's ABI (:class:`AnchorReverted`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, cast

from eth_abi.abi import decode
from eth_account import Account
from eth_typing import ChecksumAddress, HexStr
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ContractCustomError, TransactionNotFound
from web3.logs import DISCARD
from web3.types import Nonce, TxParams

from services.ledger.chain.artifacts import load_artifact
from services.ledger.records.keccak import to_hex

ZERO_ROOT: Final = b"\x00" * 32
GAS_HEADROOM: Final = 1.25


class AnchorReverted(Exception):
    """``anchorRoot`` would revert (or did), with the contract's custom error by name."""

    def __init__(self, name: str, args: tuple[Any, ...], data: str) -> None:
        super().__init__(f"{name}{args}")
        self.name = name
        self.args_ = args
        self.data = data


@dataclass(frozen=True)
class OnChainBatch:
    """``ReceivableAnchor.batches(id)``; an unknown id reads as all zeros."""

    root: bytes
    timestamp: int
    block_number: int
    count: int

    @property
    def exists(self) -> bool:
        return self.root != ZERO_ROOT


@dataclass(frozen=True)
class Receipt:
    tx_hash: str
    status: int
    block_number: int
    block_hash: str
    gas_used: int
    # (batchId, root) of each RootAnchored event the contract emitted in this transaction: a
    # successful transaction without one anchored nothing (e.g. sent to an address without code)
    anchored: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class SignedAnchor:
    tx_hash: str
    raw: bytes
    gas: int


@dataclass(frozen=True)
class AnchoredLog:
    """Where a ``RootAnchored`` event of a batch id is on the canonical chain."""

    tx_hash: str
    block_number: int
    block_hash: str
    root: str


class AnchorChain:
    """One RPC endpoint, one ``ReceivableAnchor`` and the anchorer's key."""

    def __init__(self, rpc_url: str, contract: str, private_key: str, timeout: float = 30) -> None:
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
        self.abi = load_artifact("ReceivableAnchor").abi
        self.address: ChecksumAddress = Web3.to_checksum_address(contract)
        self.contract = self.w3.eth.contract(address=self.address, abi=self.abi)
        self._account = Account.from_key(private_key)
        self.sender: ChecksumAddress = Web3.to_checksum_address(self._account.address)

    # reads -------------------------------------------------------------------------------

    def chain_id(self) -> int:
        return int(self.w3.eth.chain_id)

    def has_code(self) -> bool:
        return len(self.w3.eth.get_code(self.address)) > 0

    def nonce(self, block: str = "pending") -> int:
        """The chain's transaction count of the sender (used only to check the ledger's own)."""
        return int(self.w3.eth.get_transaction_count(self.sender, block))  # type: ignore[arg-type]

    def head(self) -> int:
        return int(self.w3.eth.block_number)

    def finalized_number(self) -> int | None:
        try:
            return int(self.w3.eth.get_block("finalized")["number"])
        except (ValueError, KeyError):
            return None

    def block_hash(self, number: int) -> str | None:
        try:
            block = self.w3.eth.get_block(number)
        except Exception:  # BlockNotFound: the chain is shorter than it was
            return None
        value = block.get("hash")
        return None if value is None else HexBytes(value).to_0x_hex()

    def batch(self, batch_id: int) -> OnChainBatch:
        root, timestamp, block_number, count = self.contract.functions.batches(batch_id).call()
        return OnChainBatch(bytes(root), int(timestamp), int(block_number), int(count))

    def last_batch_id(self) -> int:
        return int(self.contract.functions.lastBatchId().call())

    def verify_entry(
        self, batch_id: int, entry_id: bytes, record_hash: bytes, proof: list[bytes]
    ) -> tuple[bool, int, int]:
        ok, timestamp, block_number = self.contract.functions.verifyEntry(
            batch_id, entry_id, record_hash, proof
        ).call()
        return bool(ok), int(timestamp), int(block_number)

    def receipt(self, tx_hash: str) -> Receipt | None:
        try:
            receipt = self.w3.eth.get_transaction_receipt(HexStr(tx_hash))
        except TransactionNotFound:
            return None
        if receipt.get("blockNumber") is None:
            return None
        events = self.contract.events.RootAnchored().process_receipt(receipt, errors=DISCARD)
        return Receipt(
            tx_hash=tx_hash,
            status=int(receipt["status"]),
            block_number=int(receipt["blockNumber"]),
            block_hash=HexBytes(receipt["blockHash"]).to_0x_hex(),
            gas_used=int(receipt["gasUsed"]),
            anchored=tuple(
                (int(event["args"]["batchId"]), to_hex(bytes(event["args"]["root"])))
                for event in events
                if event["address"] == self.address
            ),
        )

    def transaction_known(self, tx_hash: str) -> bool:
        """Whether the node still knows the transaction (mined or waiting in its pool)."""
        try:
            self.w3.eth.get_transaction(HexStr(tx_hash))
        except TransactionNotFound:
            return False
        return True

    def anchored_log(self, batch_id: int) -> AnchoredLog | None:
        """The canonical ``RootAnchored`` event of ``batch_id`` (for a root that landed through a
        transaction the ledger did not record)."""
        event = self.contract.events.RootAnchored()
        logs = event.get_logs(from_block=0, argument_filters={"batchId": batch_id})
        if not logs:
            return None
        log = logs[-1]
        return AnchoredLog(
            tx_hash=HexBytes(log["transactionHash"]).to_0x_hex(),
            block_number=int(log["blockNumber"]),
            block_hash=HexBytes(log["blockHash"]).to_0x_hex(),
            root=to_hex(bytes(log["args"]["root"])),
        )

    # writes ------------------------------------------------------------------------------

    def simulate(self, batch_id: int, root: bytes, count: int) -> int:
        """Gas estimate of ``anchorRoot``; raises :class:`AnchorReverted` if it would revert."""
        try:
            return int(
                self.contract.functions.anchorRoot(batch_id, root, count).estimate_gas(
                    {"from": self.sender}
                )
            )
        except ContractCustomError as exc:
            raise self._decode(exc) from None

    def sign(self, batch_id: int, root: bytes, count: int, nonce: int, gas: int) -> SignedAnchor:
        gas_limit = int(gas * GAS_HEADROOM)
        params: TxParams = {"from": self.sender, "nonce": Nonce(nonce), "gas": gas_limit}
        tx = self.contract.functions.anchorRoot(batch_id, root, count).build_transaction(params)
        signed = self._account.sign_transaction(cast(dict[str, Any], tx))
        return SignedAnchor(
            tx_hash=HexBytes(signed.hash).to_0x_hex(), raw=bytes(signed.raw_transaction), gas=gas
        )

    def broadcast(self, signed: SignedAnchor) -> None:
        self.w3.eth.send_raw_transaction(signed.raw)

    def _decode(self, exc: ContractCustomError) -> AnchorReverted:
        data = exc.data if isinstance(exc.data, str) else ""
        return AnchorReverted(*decode_custom_error(self.abi, data), data)


def decode_custom_error(abi: Any, data: str) -> tuple[str, tuple[Any, ...]]:
    """The name and arguments of the custom error in revert ``data`` (``0x`` hex) by the ABI;
    ``("Unknown", ())`` when none matches. Shared by the ledger's contract clients."""
    raw = bytes.fromhex(data.removeprefix("0x")) if data.startswith("0x") else b""
    for entry in abi:
        item = cast(dict[str, Any], entry)
        if item.get("type") != "error":
            continue
        types = [i["type"] for i in item.get("inputs", [])]
        selector = Web3.keccak(text=f"{item['name']}({','.join(types)})")[:4]
        if raw[:4] == selector:
            return item["name"], tuple(decode(types, raw[4:]))
    return "Unknown", ()
