"""The committed contract artefacts (``contracts/artifacts/<Name>.json``) and a plain deployer.

The artefacts are produced by ``contracts/compile.mjs`` from ``contracts/src`` with the pinned solc;
a test keeps them in step with the sources. The ledger deploys ``ReceivableAnchor`` and
``FinancingRegistry`` from here (development chains, tests, benchmarks); on real networks the
addresses come from configuration.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from eth_account import Account
from eth_typing import ABI, ChecksumAddress, HexStr
from web3 import Web3

ARTIFACTS_DIR = Path(__file__).resolve().parents[3] / "contracts" / "artifacts"


class DeploymentError(RuntimeError):
    """A deployment transaction was mined but reverted, or created no contract."""


@dataclass(frozen=True)
class Artifact:
    """One compiled contract: its name, ABI and creation bytecode (``0x`` hex)."""

    name: str
    abi: ABI
    bytecode: HexStr


def load_artifact(name: str) -> Artifact:
    """Reads ``contracts/artifacts/<name>.json``; ``FileNotFoundError`` for an unknown name."""
    if not name.isidentifier():
        raise ValueError(f"not a contract name: {name!r}")
    data: dict[str, Any] = json.loads((ARTIFACTS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    bytecode = data["bytecode"]
    if data.get("contractName") != name or not isinstance(bytecode, str) or len(bytecode) <= 2:
        raise ValueError(f"artefact {name}.json is malformed")
    return Artifact(name=name, abi=cast(ABI, data["abi"]), bytecode=HexStr(bytecode))


def deploy_contract(
    w3: Web3, name: str, private_key: str, *args: Any
) -> tuple[ChecksumAddress, HexStr]:
    """Deploys artefact ``name`` with constructor ``args``, signed locally by ``private_key``.

    Waits for the receipt. Returns ``(checksum address, 0x-prefixed transaction hash)`` (both plain
    ``str`` at run time). Raises web3's ``ContractLogicError`` if the constructor would revert
    (gas estimation) and ``DeploymentError`` if the mined transaction reverted.
    """
    artifact = load_artifact(name)
    account = Account.from_key(private_key)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    tx = factory.constructor(*args).build_transaction(
        {
            "from": account.address,
            "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        }
    )
    signed = account.sign_transaction(cast(dict[str, Any], tx))
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    address = receipt.get("contractAddress")
    if receipt["status"] != 1 or address is None:
        raise DeploymentError(f"deployment of {name} reverted in transaction {tx_hash.to_0x_hex()}")
    return Web3.to_checksum_address(address), HexStr(tx_hash.to_0x_hex())
