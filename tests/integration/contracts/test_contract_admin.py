"""The admin side shared by both contracts: the owner (the deployer, Ownable2Step) rotates the one
operational key — the anchorer of ReceivableAnchor, the registrar of FinancingRegistry."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from web3 import Web3

ZERO_ADDRESS = "0x" + "00" * 20


@dataclass(frozen=True)
class Operator:
    contract: str
    role: str  # the initial operator among the fixture roles
    getter: str
    setter: str
    event: str
    previous_arg: str
    new_arg: str
    not_operator_error: str
    use: str
    use_args: tuple[object, ...]


ANCHOR = Operator(
    contract="ReceivableAnchor",
    role="anchorer",
    getter="anchorer",
    setter="setAnchorer",
    event="AnchorerChanged",
    previous_arg="previousAnchorer",
    new_arg="newAnchorer",
    not_operator_error="NotAnchorer",
    use="anchorRoot",
    use_args=(1, Web3.keccak(text="root"), 1),
)
REGISTRY = Operator(
    contract="FinancingRegistry",
    role="registrar",
    getter="registrar",
    setter="setRegistrar",
    event="RegistrarChanged",
    previous_arg="previousRegistrar",
    new_arg="newRegistrar",
    not_operator_error="NotRegistrar",
    use="register",
    use_args=(Web3.keccak(text="fingerprint"), Web3.keccak(text="ref")),
)


@pytest.fixture(params=[ANCHOR, REGISTRY], ids=lambda op: op.contract)
def operated(request, deploy, roles):
    op: Operator = request.param
    return op, deploy(op.contract, roles.address(op.role))


def test_owner_rotates_the_operator_and_the_old_one_is_refused(operated, roles):
    op, contract = operated
    receipt = contract.transact(roles.deployer, op.setter, roles.address("stranger"))
    assert contract.events(receipt, op.event) == [
        {op.previous_arg: roles.address(op.role), op.new_arg: roles.address("stranger")}
    ]
    assert contract.call(op.getter) == roles.address("stranger")
    assert contract.revert(getattr(roles, op.role), op.use, *op.use_args) == (
        op.not_operator_error,
        (roles.address(op.role),),
    )
    contract.transact(roles.stranger, op.use, *op.use_args)


@pytest.mark.parametrize("caller", ["stranger", "operator"])
def test_only_the_owner_can_rotate_the_operator(operated, roles, caller):
    op, contract = operated
    who = op.role if caller == "operator" else caller
    assert contract.revert(getattr(roles, who), op.setter, roles.address("stranger")) == (
        "OwnableUnauthorizedAccount",
        (roles.address(who),),
    )
    assert contract.call(op.getter) == roles.address(op.role)


def test_rotation_to_the_zero_address_is_refused(operated, roles):
    op, contract = operated
    assert contract.revert(roles.deployer, op.setter, ZERO_ADDRESS) == ("ZeroAddress", ())


def test_ownership_moves_only_when_the_new_owner_accepts(operated, roles):
    op, contract = operated
    stranger = roles.address("stranger")
    assert contract.revert(roles.stranger, "transferOwnership", stranger) == (
        "OwnableUnauthorizedAccount",
        (stranger,),
    )
    receipt = contract.transact(roles.deployer, "transferOwnership", stranger)
    assert contract.events(receipt, "OwnershipTransferStarted") == [
        {"previousOwner": roles.address("deployer"), "newOwner": stranger}
    ]
    assert contract.call("pendingOwner") == stranger
    assert contract.call("owner") == roles.address("deployer")
    assert contract.revert(roles.stranger, op.setter, stranger)[0] == "OwnableUnauthorizedAccount"
    assert contract.revert(getattr(roles, op.role), "acceptOwnership") == (
        "OwnableUnauthorizedAccount",
        (roles.address(op.role),),
    )

    contract.transact(roles.stranger, "acceptOwnership")
    assert contract.call("owner") == stranger
    assert contract.call("pendingOwner") == ZERO_ADDRESS
    assert contract.revert(roles.deployer, op.setter, stranger) == (
        "OwnableUnauthorizedAccount",
        (roles.address("deployer"),),
    )
    contract.transact(roles.stranger, op.setter, roles.address("deployer"))
    assert contract.call(op.getter) == roles.address("deployer")


def test_renouncing_ownership_freezes_the_operator(operated, roles):
    op, contract = operated
    contract.transact(roles.deployer, "renounceOwnership")
    assert contract.call("owner") == ZERO_ADDRESS
    assert contract.revert(roles.deployer, op.setter, roles.address("stranger")) == (
        "OwnableUnauthorizedAccount",
        (roles.address("deployer"),),
    )
    contract.transact(getattr(roles, op.role), op.use, *op.use_args)
