"""Fixtures for the contract tests: fresh deployments on the session anvil, accounts by role.

Each test gets its own ``ReceivableAnchor`` and ``FinancingRegistry`` (deploying costs a few
milliseconds on anvil), so no test depends on another's state. ``Deployed`` sends signed
transactions from a role's key and decodes custom-error reverts by name, and ``oz_tree`` builds a
tree with OpenZeppelin's own ``StandardMerkleTree`` in node, the tool an auditor would use.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import decode
from eth_account import Account
from eth_typing import ChecksumAddress
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError
from web3.logs import DISCARD
from web3.types import TxReceipt

from qilian.kit.anvil import DEV_PRIVATE_KEY, Anvil
from services.ledger.chain.artifacts import deploy_contract, load_artifact

REPO_ROOT = Path(__file__).resolve().parents[3]
CONTRACTS_DIR = REPO_ROOT / "contracts"

# anvil's well-known default accounts 0–3 (mnemonic "test test … junk"): public development keys.
DEPLOYER_KEY = DEV_PRIVATE_KEY
ANCHORER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
REGISTRAR_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"
STRANGER_KEY = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6"
ZERO_ADDRESS = "0x" + "00" * 20
ZERO32 = b"\x00" * 32


def address_of(key: str) -> ChecksumAddress:
    return Web3.to_checksum_address(Account.from_key(key).address)


@dataclass(frozen=True)
class Roles:
    deployer: str
    anchorer: str
    registrar: str
    stranger: str

    def address(self, role: str) -> ChecksumAddress:
        return address_of(getattr(self, role))


ROLES = Roles(DEPLOYER_KEY, ANCHORER_KEY, REGISTRAR_KEY, STRANGER_KEY)


def decode_custom_error(abi: Sequence[Any], data: str) -> tuple[str, tuple[Any, ...]]:
    """``(error name, arguments)`` of revert data, looked up in ``abi``."""
    raw = bytes.fromhex(data.removeprefix("0x"))
    for item in abi:
        if item["type"] != "error":
            continue
        types = [i["type"] for i in item["inputs"]]
        selector = Web3.keccak(text=f"{item['name']}({','.join(types)})")[:4]
        if raw[:4] == selector:
            decoded = decode(types, raw[4:])
            return item["name"], tuple(
                Web3.to_checksum_address(v) if t == "address" else v
                for t, v in zip(types, decoded, strict=True)
            )
    raise AssertionError(f"revert data {data} matches no error of the ABI")


@dataclass(frozen=True)
class Deployed:
    """A deployed contract plus the few moves every test makes with it."""

    w3: Web3
    contract: Contract
    tx_hash: str

    @property
    def address(self) -> str:
        return str(self.contract.address)

    def call(self, fn: str, *args: Any) -> Any:
        return getattr(self.contract.functions, fn)(*args).call()

    def send(self, key: str, fn: str, *args: Any, gas: int | None = None) -> TxReceipt:
        """Sends ``fn(*args)`` signed by ``key`` and returns the receipt, whatever its status."""
        return send(self.w3, key, getattr(self.contract.functions, fn)(*args), gas=gas)

    def transact(self, key: str, fn: str, *args: Any) -> TxReceipt:
        """Sends ``fn(*args)`` signed by ``key``; asserts that it succeeded."""
        receipt = self.send(key, fn, *args)
        assert receipt["status"] == 1, f"{fn}{args} reverted"
        return receipt

    def revert(self, key: str, fn: str, *args: Any) -> tuple[str, tuple[Any, ...]]:
        """The custom error (name, args) that ``fn(*args)`` from ``key``'s account reverts with."""
        with pytest.raises(ContractCustomError) as caught:
            getattr(self.contract.functions, fn)(*args).call({"from": address_of(key)})
        return decode_custom_error(self.contract.abi, str(caught.value.data))

    def events(self, receipt: TxReceipt, event: str) -> list[dict[str, Any]]:
        logs = getattr(self.contract.events, event)().process_receipt(receipt, errors=DISCARD)
        return [dict(log["args"]) for log in logs]


def send(w3: Web3, key: str, call: Any, gas: int | None = None) -> TxReceipt:
    """Signs ``call`` (a bound contract function) with ``key`` and waits for its receipt."""
    sender = address_of(key)
    params: dict[str, Any] = {
        "from": sender,
        "nonce": w3.eth.get_transaction_count(sender, "pending"),
    }
    if gas is not None:
        params["gas"] = gas
    tx = call.build_transaction(params)
    signed = Account.from_key(key).sign_transaction(tx)
    return w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))


@pytest.fixture(scope="session")
def w3(anvil: Anvil) -> Web3:
    client = Web3(Web3.HTTPProvider(anvil.rpc_url))
    keys = (DEPLOYER_KEY, ANCHORER_KEY, REGISTRAR_KEY, STRANGER_KEY)
    assert list(client.eth.accounts[:4]) == [address_of(key) for key in keys]
    return client


@pytest.fixture(scope="session")
def roles() -> Roles:
    return ROLES


@pytest.fixture(scope="session")
def decode_error() -> Callable[[Sequence[Any], str], tuple[str, tuple[Any, ...]]]:
    return decode_custom_error


@pytest.fixture
def deploy(w3: Web3) -> Callable[..., Deployed]:
    """Deploys artefact ``name`` from the deployer's key with constructor ``args``."""

    def _deploy(name: str, *args: Any) -> Deployed:
        address, tx_hash = deploy_contract(w3, name, DEPLOYER_KEY, *args)
        contract = w3.eth.contract(address=address, abi=load_artifact(name).abi)
        return Deployed(w3, contract, tx_hash)

    return _deploy


@pytest.fixture
def anchor(deploy: Callable[..., Deployed]) -> Deployed:
    return deploy("ReceivableAnchor", address_of(ANCHORER_KEY))


@pytest.fixture
def registry(deploy: Callable[..., Deployed]) -> Deployed:
    return deploy("FinancingRegistry", address_of(REGISTRAR_KEY))


OZ_TREE_SCRIPT = """
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");
const values = JSON.parse(require("fs").readFileSync(0, "utf8"));
const tree = StandardMerkleTree.of(values, ["bytes32", "bytes32"]);
const proofs = values.map((_, i) => tree.getProof(i));
const verified = values.map(
  (v, i) => StandardMerkleTree.verify(tree.root, ["bytes32", "bytes32"], v, proofs[i]),
);
process.stdout.write(JSON.stringify({ root: tree.root, proofs, verified, dump: tree.dump() }));
"""


@pytest.fixture(scope="session")
def oz_tree() -> Callable[[list[tuple[bytes, bytes]]], dict[str, Any]]:
    """Builds OpenZeppelin's StandardMerkleTree of ``(entry_id, record_hash)`` pairs in node.

    Returns ``root``, ``proofs`` (in input order), ``verified`` (node's own check of each proof)
    and the standard-v1 ``dump``.
    """
    node = shutil.which("node")
    assert node is not None, "node is required for the contract tests"

    def _tree(values: list[tuple[bytes, bytes]]) -> dict[str, Any]:
        payload = json.dumps([["0x" + a.hex(), "0x" + b.hex()] for a, b in values])
        done = subprocess.run(
            [node, "-e", OZ_TREE_SCRIPT],
            cwd=CONTRACTS_DIR,
            input=payload,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    return _tree
