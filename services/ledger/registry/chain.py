"""The web3 calls of the FinancingRegistry: ``register``, ``registerPart``, ``release``,
``status``, receipts and the contract's events.

Synchronous web3.py like :mod:`services.ledger.anchoring.chain`; the service runs each call in a
thread, owns nonces and states, and this module only simulates, signs with the nonce it is given,
broadcasts and reads back. Custom-error reverts are decoded by name from the ABI
(:class:`RegistryReverted`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, cast

from eth_account import Account
from eth_typing import ChecksumAddress, HexStr
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, TransactionNotFound
from web3.types import Nonce, TxParams

from services.ledger.anchoring.chain import GAS_HEADROOM, decode_custom_error
from services.ledger.chain.artifacts import load_artifact
from services.ledger.records.keccak import from_hex, to_hex

CONTRACT: Final = "FinancingRegistry"


class RegistryReverted(Exception):
    """The operation would revert (or did), with the contract's custom error by name."""

    def __init__(self, name: str, args: tuple[Any, ...], data: str) -> None:
        super().__init__(f"{name}{args}")
        self.name = name
        self.args_ = args
        self.data = data


@dataclass(frozen=True)
class Call:
    """One operation as the contract sees it (``0x`` hex values)."""

    action: str  # register | release
    fingerprint: str
    invoice_fingerprint: str | None  # a part's invoice
    financing_ref: str
    reason: int | None = None


@dataclass(frozen=True)
class Status:
    active: bool
    financing_ref: str
    since: int


@dataclass(frozen=True)
class Receipt:
    tx_hash: str
    status: int
    block_number: int
    block_hash: str
    gas_used: int


@dataclass(frozen=True)
class Signed:
    tx_hash: str
    raw: bytes
    gas: int


@dataclass(frozen=True)
class Landed:
    """Where the operation's event (Registered / PartRegistered / Released) is on chain."""

    tx_hash: str
    block_number: int


class RegistryChain:
    """One RPC endpoint, one ``FinancingRegistry`` and the registrar's key."""

    def __init__(self, rpc_url: str, contract: str, private_key: str, timeout: float = 30) -> None:
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
        self.abi = load_artifact(CONTRACT).abi
        self.address: ChecksumAddress = Web3.to_checksum_address(contract)
        self.contract = self.w3.eth.contract(address=self.address, abi=self.abi)
        self._account = Account.from_key(private_key)
        self.sender: ChecksumAddress = Web3.to_checksum_address(self._account.address)

    # reads -------------------------------------------------------------------------------

    def has_code(self) -> bool:
        return len(self.w3.eth.get_code(self.address)) > 0

    def nonce(self, block: str = "pending") -> int:
        """The chain's transaction count of the sender (used only to check the ledger's own)."""
        return int(self.w3.eth.get_transaction_count(self.sender, block))  # type: ignore[arg-type]

    def status(self, fingerprint: str) -> Status:
        active, ref, since = self.contract.functions.status(from_hex(fingerprint, length=32)).call()
        return Status(bool(active), to_hex(bytes(ref)), int(since))

    def receipt(self, tx_hash: str) -> Receipt | None:
        try:
            receipt = self.w3.eth.get_transaction_receipt(HexStr(tx_hash))
        except TransactionNotFound:
            return None
        if receipt.get("blockNumber") is None:
            return None
        return Receipt(
            tx_hash=tx_hash,
            status=int(receipt["status"]),
            block_number=int(receipt["blockNumber"]),
            block_hash=HexBytes(receipt["blockHash"]).to_0x_hex(),
            gas_used=int(receipt["gasUsed"]),
        )

    def transaction_known(self, tx_hash: str) -> bool:
        """Whether the node still knows the transaction (mined or waiting in its pool)."""
        try:
            self.w3.eth.get_transaction(HexStr(tx_hash))
        except TransactionNotFound:
            return False
        return True

    def landed(self, call: Call) -> Landed | None:
        """The newest event of this operation's effect (for one mined through a transaction the
        ledger did not record, e.g. before a crash)."""
        fingerprint = from_hex(call.fingerprint, length=32)
        ref = from_hex(call.financing_ref, length=32)
        if call.action == "release":
            event: Any = self.contract.events.Released()
            filters: dict[str, Any] = {"fingerprint": fingerprint, "financingRef": ref}
        elif call.invoice_fingerprint is not None:
            event = self.contract.events.PartRegistered()
            filters = {"partFingerprint": fingerprint, "financingRef": ref}
        else:
            event = self.contract.events.Registered()
            filters = {"fingerprint": fingerprint, "financingRef": ref}
        logs = event.get_logs(from_block=0, argument_filters=filters)
        if not logs:
            return None
        log = logs[-1]
        return Landed(HexBytes(log["transactionHash"]).to_0x_hex(), int(log["blockNumber"]))

    # writes ------------------------------------------------------------------------------

    def _function(self, call: Call) -> ContractFunction:
        fingerprint = from_hex(call.fingerprint, length=32)
        ref = from_hex(call.financing_ref, length=32)
        functions = self.contract.functions
        if call.action == "release":
            assert call.reason is not None
            return functions.release(fingerprint, ref, call.reason)
        if call.invoice_fingerprint is not None:
            invoice = from_hex(call.invoice_fingerprint, length=32)
            return functions.registerPart(invoice, fingerprint, ref)
        return functions.register(fingerprint, ref)

    def calldata(self, call: Call) -> bytes:
        """The transaction's input, exactly as it goes on chain."""
        return bytes(HexBytes(self._function(call)._encode_transaction_data()))

    def simulate(self, call: Call) -> int:
        """Gas estimate (an ``eth_estimateGas`` simulation, no gas spent); raises
        :class:`RegistryReverted` if the contract would revert."""
        try:
            return int(self._function(call).estimate_gas({"from": self.sender}))
        except ContractCustomError as exc:
            data = exc.data if isinstance(exc.data, str) else ""
            raise RegistryReverted(*decode_custom_error(self.abi, data), data) from None

    def sign(self, call: Call, nonce: int, gas: int) -> Signed:
        params: TxParams = {
            "from": self.sender,
            "nonce": Nonce(nonce),
            "gas": int(gas * GAS_HEADROOM),
        }
        tx = self._function(call).build_transaction(params)
        signed = self._account.sign_transaction(cast(dict[str, Any], tx))
        return Signed(HexBytes(signed.hash).to_0x_hex(), bytes(signed.raw_transaction), gas)

    def broadcast(self, signed: Signed) -> None:
        self.w3.eth.send_raw_transaction(signed.raw)
