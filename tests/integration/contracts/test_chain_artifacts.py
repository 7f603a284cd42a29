"""services.ledger.chain.artifacts: loading the committed artefacts and deploying them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from web3 import Web3

from services.ledger.chain.artifacts import (
    Artifact,
    DeploymentError,
    deploy_contract,
    load_artifact,
)

ARTIFACTS = Path(__file__).resolve().parents[3] / "contracts" / "artifacts"


@pytest.mark.parametrize("name", ["ReceivableAnchor", "FinancingRegistry"])
def test_load_artifact_gives_name_abi_and_creation_bytecode(name):
    artifact = load_artifact(name)
    assert isinstance(artifact, Artifact)
    assert artifact.name == name
    assert artifact.bytecode.startswith("0x6080")
    assert any(item["type"] == "constructor" for item in artifact.abi)
    with pytest.raises(dataclasses.FrozenInstanceError):
        artifact.name = "Other"  # type: ignore[misc]


def test_load_artifact_of_an_unknown_contract_raises_file_not_found():
    with pytest.raises(FileNotFoundError):
        load_artifact("NoSuchContract")


def test_load_artifact_refuses_a_name_that_is_a_path():
    with pytest.raises(ValueError, match="not a contract name"):
        load_artifact("../artifacts/ReceivableAnchor")


def test_deploy_contract_returns_checksum_address_and_tx_hash_of_the_deployed_code(w3, roles):
    address, tx_hash = deploy_contract(
        w3, "FinancingRegistry", roles.deployer, roles.address("registrar")
    )
    assert address == Web3.to_checksum_address(address)
    assert tx_hash.startswith("0x")
    assert len(tx_hash) == 66
    receipt = w3.eth.get_transaction_receipt(tx_hash)
    assert receipt["contractAddress"] == address
    deployed = json.loads((ARTIFACTS / "FinancingRegistry.json").read_text())["deployedBytecode"]
    assert w3.eth.get_code(address).to_0x_hex() == deployed


def test_deploy_contract_raises_when_the_deployment_reverts(w3, roles, monkeypatch):
    # Enough gas to start the creation, too little to store the code: mined with status 0.
    monkeypatch.setattr(w3.eth, "estimate_gas", lambda *args, **kwargs: 150_000)
    with pytest.raises(DeploymentError, match="deployment of ReceivableAnchor reverted"):
        deploy_contract(w3, "ReceivableAnchor", roles.deployer, roles.address("anchorer"))
