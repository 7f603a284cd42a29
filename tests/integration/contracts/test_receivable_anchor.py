"""ReceivableAnchor on a real anvil: anchoring rules, every revert, and Merkle verification that
agrees with OpenZeppelin's StandardMerkleTree."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3
from web3.exceptions import ContractCustomError

from services.ledger.chain.artifacts import deploy_contract, load_artifact

ROOT_A = Web3.keccak(text="batch a")
ROOT_B = Web3.keccak(text="batch b")
ZERO32 = b"\x00" * 32
ZERO_ADDRESS = "0x" + "00" * 20


def keccak(data: bytes) -> bytes:
    return bytes(Web3.keccak(data))


def standard_leaf(entry_id: bytes, record_hash: bytes) -> bytes:
    return keccak(keccak(entry_id + record_hash))


def standard_tree(values: list[tuple[bytes, bytes]]) -> tuple[bytes, list[list[bytes]]]:
    """Root and per-value proofs of OpenZeppelin's standard-v1 tree, written out by hand."""
    leaves = sorted((standard_leaf(*value), i) for i, value in enumerate(values))
    size = 2 * len(leaves) - 1
    tree: list[bytes] = [b""] * size
    tree_index = [0] * len(values)
    for k, (leaf, value_index) in enumerate(leaves):
        tree[size - 1 - k] = leaf
        tree_index[value_index] = size - 1 - k
    for i in range(size - 1 - len(leaves), -1, -1):
        left, right = tree[2 * i + 1], tree[2 * i + 2]
        tree[i] = keccak(min(left, right) + max(left, right))
    proofs = []
    for j in tree_index:
        proof = []
        while j > 0:
            proof.append(tree[j + 1 if j % 2 == 1 else j - 1])
            j = (j - 1) // 2
        proofs.append(proof)
    return tree[0], proofs


def entries(n: int, tag: str = "") -> list[tuple[bytes, bytes]]:
    return [
        (keccak(f"event-{tag}{i}".encode()), keccak(f"record-{tag}{i}".encode())) for i in range(n)
    ]


def test_deployer_owns_the_anchor_and_constructor_sets_the_anchorer(anchor, roles):
    assert anchor.call("owner") == roles.address("deployer")
    assert anchor.call("pendingOwner") == ZERO_ADDRESS
    assert anchor.call("anchorer") == roles.address("anchorer")
    assert anchor.call("lastBatchId") == 0
    receipt = anchor.w3.eth.get_transaction_receipt(anchor.tx_hash)
    assert anchor.events(receipt, "AnchorerChanged") == [
        {"previousAnchorer": ZERO_ADDRESS, "newAnchorer": roles.address("anchorer")}
    ]


def test_constructor_refuses_the_zero_address_as_anchorer(w3, roles, decode_error):
    with pytest.raises(ContractCustomError) as caught:
        deploy_contract(w3, "ReceivableAnchor", roles.deployer, ZERO_ADDRESS)
    abi = load_artifact("ReceivableAnchor").abi
    assert decode_error(abi, str(caught.value.data)) == ("ZeroAddress", ())


def test_anchorer_anchors_first_batch_and_it_reads_back_with_block_and_time(anchor, roles):
    receipt = anchor.transact(roles.anchorer, "anchorRoot", 1, ROOT_A, 10_000)
    block = anchor.w3.eth.get_block(receipt["blockNumber"])
    assert anchor.call("batches", 1) == [ROOT_A, block["timestamp"], receipt["blockNumber"], 10_000]
    assert anchor.call("lastBatchId") == 1
    assert anchor.events(receipt, "RootAnchored") == [
        {"batchId": 1, "root": ROOT_A, "count": 10_000, "timestamp": block["timestamp"]}
    ]


def test_batches_are_anchored_one_after_another(anchor, roles):
    for batch_id in (1, 2, 3):
        anchor.transact(roles.anchorer, "anchorRoot", batch_id, keccak(bytes([batch_id])), batch_id)
    assert anchor.call("lastBatchId") == 3
    assert [anchor.call("batches", i)[0] for i in (1, 2, 3)] == [
        keccak(bytes([i])) for i in (1, 2, 3)
    ]


def test_unknown_batch_reads_as_zeros(anchor):
    assert anchor.call("batches", 7) == [ZERO32, 0, 0, 0]


@pytest.mark.parametrize("caller", ["stranger", "deployer", "registrar"])
def test_anchoring_by_anyone_but_the_anchorer_is_refused(anchor, roles, caller):
    key = getattr(roles, caller)
    assert anchor.revert(key, "anchorRoot", 1, ROOT_A, 1) == (
        "NotAnchorer",
        (roles.address(caller),),
    )


def test_skipping_a_batch_id_is_refused(anchor, roles):
    assert anchor.revert(roles.anchorer, "anchorRoot", 2, ROOT_A, 1) == ("BatchIdGap", (1, 2))
    anchor.transact(roles.anchorer, "anchorRoot", 1, ROOT_A, 1)
    assert anchor.revert(roles.anchorer, "anchorRoot", 3, ROOT_B, 1) == ("BatchIdGap", (2, 3))


def test_batch_id_zero_is_refused_as_a_gap(anchor, roles):
    assert anchor.revert(roles.anchorer, "anchorRoot", 0, ROOT_A, 1) == ("BatchIdGap", (1, 0))


def test_an_anchored_batch_cannot_be_rewritten(anchor, roles):
    anchor.transact(roles.anchorer, "anchorRoot", 1, ROOT_A, 1)
    anchor.transact(roles.anchorer, "anchorRoot", 2, ROOT_A, 1)
    for batch_id in (1, 2):
        assert anchor.revert(roles.anchorer, "anchorRoot", batch_id, ROOT_B, 5) == (
            "BatchAlreadyAnchored",
            (batch_id,),
        )
    assert anchor.call("batches", 1)[0] == ROOT_A
    assert anchor.call("batches", 2)[0] == ROOT_A


def test_zero_root_is_refused(anchor, roles):
    assert anchor.revert(roles.anchorer, "anchorRoot", 1, ZERO32, 1) == ("ZeroRoot", ())


def test_zero_count_is_refused(anchor, roles):
    assert anchor.revert(roles.anchorer, "anchorRoot", 1, ROOT_A, 0) == ("ZeroCount", ())


def test_a_refused_anchoring_sent_anyway_reverts_on_chain_and_changes_nothing(anchor, roles):
    anchor.transact(roles.anchorer, "anchorRoot", 1, ROOT_A, 1)
    receipt = anchor.send(roles.anchorer, "anchorRoot", 1, ROOT_B, 1, gas=200_000)
    assert receipt["status"] == 0
    assert anchor.call("batches", 1)[0] == ROOT_A
    assert anchor.call("lastBatchId") == 1


def test_verify_entry_accepts_every_proof_of_openzeppelin_standard_merkle_tree(
    anchor, roles, oz_tree
):
    values = entries(7)
    tree = oz_tree(values)
    assert all(tree["verified"])
    assert tree["dump"]["format"] == "standard-v1"
    root, proofs = standard_tree(values)
    assert "0x" + root.hex() == tree["root"]
    assert [["0x" + p.hex() for p in proof] for proof in proofs] == tree["proofs"]

    receipt = anchor.transact(roles.anchorer, "anchorRoot", 1, tree["root"], len(values))
    timestamp = anchor.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    for (entry_id, record_hash), proof in zip(values, tree["proofs"], strict=True):
        assert anchor.call("verifyEntry", 1, entry_id, record_hash, proof) == [
            True,
            timestamp,
            receipt["blockNumber"],
        ]


def test_verify_entry_accepts_a_single_leaf_batch_with_an_empty_proof(anchor, roles, oz_tree):
    values = entries(1)
    tree = oz_tree(values)
    assert tree["proofs"] == [[]]
    assert tree["root"] == "0x" + standard_leaf(*values[0]).hex()
    anchor.transact(roles.anchorer, "anchorRoot", 1, tree["root"], 1)
    assert anchor.call("verifyEntry", 1, *values[0], [])[0] is True


def test_verify_entry_rejects_what_is_not_in_the_batch(anchor, roles, oz_tree):
    values = entries(5)
    tree = oz_tree(values)
    anchor.transact(roles.anchorer, "anchorRoot", 1, tree["root"], 5)
    anchor.transact(roles.anchorer, "anchorRoot", 2, ROOT_B, 1)
    (entry_id, record_hash), proof = values[2], tree["proofs"][2]
    assert anchor.call("verifyEntry", 1, entry_id, record_hash, proof)[0] is True
    other = keccak(b"tampered")
    not_valid = [False, 0, 0]
    assert anchor.call("verifyEntry", 1, entry_id, other, proof) == not_valid
    assert anchor.call("verifyEntry", 1, other, record_hash, proof) == not_valid
    assert anchor.call("verifyEntry", 1, record_hash, entry_id, proof) == not_valid
    assert anchor.call("verifyEntry", 1, entry_id, record_hash, tree["proofs"][3]) == not_valid
    assert anchor.call("verifyEntry", 1, entry_id, record_hash, proof[:-1]) == not_valid
    assert anchor.call("verifyEntry", 2, entry_id, record_hash, proof) == not_valid
    assert anchor.call("verifyEntry", 3, entry_id, record_hash, proof) == not_valid


def test_verify_entry_rejects_the_inner_node_of_a_proof_passed_as_a_leaf(anchor, roles, oz_tree):
    # A second-preimage attempt: the double-hashed standard leaf makes an inner node unusable.
    values = entries(4)
    tree = oz_tree(values)
    anchor.transact(roles.anchorer, "anchorRoot", 1, tree["root"], 4)
    proof = tree["proofs"][0]
    pair = sorted([bytes.fromhex(proof[0][2:]), standard_leaf(*values[0])])
    left, right = pair
    assert anchor.call("verifyEntry", 1, left, right, proof[1:])[0] is False


@settings(
    max_examples=int(os.environ.get("QILIAN_HYPOTHESIS_CONTRACT_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    values=st.lists(
        st.tuples(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32)),
        min_size=1,
        max_size=33,
        unique=True,
    )
)
def test_verify_entry_accepts_every_proof_of_any_standard_tree(anchor, roles, values):
    batch_id = anchor.call("lastBatchId") + 1
    root, proofs = standard_tree(values)
    anchor.transact(roles.anchorer, "anchorRoot", batch_id, root, len(values))
    for (entry_id, record_hash), proof in zip(values, proofs, strict=True):
        assert anchor.call("verifyEntry", batch_id, entry_id, record_hash, proof)[0] is True
