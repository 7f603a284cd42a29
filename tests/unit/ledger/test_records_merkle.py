"""OpenZeppelin StandardMerkleTree (standard-v1) for [entry_id, record_hash] leaves."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ledger.records import merkle
from services.ledger.records.canonical import leaf_hash
from services.ledger.records.keccak import keccak256, to_hex
from services.ledger.records.merkle import LeafNotFoundError, MerkleTreeError


def fixed_values(count: int, tag: str = "") -> list[tuple[bytes, bytes]]:
    return [
        (keccak256(f"event-{tag}{i}".encode()), keccak256(f"record-{tag}{i}".encode()))
        for i in range(count)
    ]


def reference_root_and_layout(values: list[tuple[bytes, bytes]]) -> tuple[bytes, list[bytes]]:
    """The tree straight from the specification, one node at a time, for comparison."""
    leaves = sorted(leaf_hash(e, r) for e, r in values)
    tree: list[bytes] = [b""] * (2 * len(leaves) - 1)
    for k, leaf in enumerate(leaves):
        tree[len(tree) - 1 - k] = leaf
    for i in range(len(tree) - 1 - len(leaves), -1, -1):
        left, right = tree[2 * i + 1], tree[2 * i + 2]
        tree[i] = keccak256(min(left, right) + max(left, right))
    return tree[0], tree


unique_values = st.lists(
    st.tuples(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32)),
    min_size=1,
    max_size=70,
    unique_by=lambda value: value[0],
)


# --- known answers ---------------------------------------------------------------------------


def test_known_five_leaf_tree_matches_openzeppelin():
    # StandardMerkleTree.of(values, ["bytes32","bytes32"]) in @openzeppelin/merkle-tree 1.0.8
    tree = merkle.build(fixed_values(5))
    assert to_hex(tree.root) == "0xe87ddf4e668d5ec4028f344061f040ab8bbe37db99e2200396edd7bcc9b1f7c7"
    assert [to_hex(node) for node in tree.proof(2)] == [
        "0xad8bfc1d52b343931068841dd7448a5c408b3686d469947a84314d118e607190",
        "0x8eddc0133f44e688b0a58d12d6ec19685c47d24bea99d190bc34a8573a6ca038",
    ]
    assert [tree.tree_index(i) for i in range(5)] == [8, 5, 4, 7, 6]


def test_single_leaf_tree_has_the_leaf_as_root_and_an_empty_proof():
    [(entry, record)] = values = fixed_values(1)
    tree = merkle.build(values)
    assert tree.root == leaf_hash(entry, record)
    assert tree.proof(0) == []
    assert merkle.verify(tree.root, entry, record, [])
    assert tree.dump()["tree"] == [to_hex(tree.root)]
    assert tree.dump()["values"][0]["treeIndex"] == 0


# --- layout ----------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 33, 100, 257])
def test_tree_is_the_specified_array_layout(count):
    values = fixed_values(count, tag=str(count))
    tree = merkle.build(values)
    root, nodes = reference_root_and_layout(values)
    assert tree.root == root
    assert tree.dump()["tree"] == [to_hex(node) for node in nodes]


def test_sorted_leaf_k_is_at_position_length_minus_one_minus_k():
    values = fixed_values(12)
    tree = merkle.build(values)
    length = 2 * len(values) - 1
    ascending = sorted(range(len(values)), key=tree.leaf)
    for k, value_index in enumerate(ascending):
        assert tree.tree_index(value_index) == length - 1 - k


def test_values_keep_their_input_order():
    values = fixed_values(9)
    tree = merkle.build(values)
    assert tree.values == tuple(values)
    assert len(tree) == 9
    assert [v["value"] for v in tree.dump()["values"]] == [
        [to_hex(e), to_hex(r)] for e, r in values
    ]


def test_the_root_does_not_depend_on_input_order():
    values = fixed_values(20)
    assert merkle.build(values).root == merkle.build(list(reversed(values))).root


# --- refusals --------------------------------------------------------------------------------


def test_an_empty_batch_is_refused():
    with pytest.raises(MerkleTreeError, match="at least one leaf"):
        merkle.build([])


def test_a_repeated_entry_id_is_refused():
    values = fixed_values(3)
    with pytest.raises(MerkleTreeError, match="more than once"):
        merkle.build([*values, (values[1][0], keccak256(b"other record"))])
    with pytest.raises(MerkleTreeError, match="more than once"):
        merkle.build([*values, values[0]])


@pytest.mark.parametrize(
    "bad",
    [
        (b"\x00" * 31, b"\x00" * 32),
        (b"\x00" * 32, b"\x00" * 33),
        ("0x" + "00" * 32, b"\x00" * 32),
        (bytearray(32), b"\x00" * 32),
        (b"\x00" * 32,),
    ],
)
def test_values_that_are_not_pairs_of_32_bytes_are_refused(bad):
    with pytest.raises(MerkleTreeError, match="value 1"):
        merkle.build([fixed_values(1)[0], bad])


@pytest.mark.parametrize("index", [-1, 5, 1.0, True])
def test_a_proof_for_an_index_out_of_range_is_refused(index):
    tree = merkle.build(fixed_values(5))
    with pytest.raises(IndexError):
        tree.proof(index)


def test_a_proof_for_a_value_not_in_the_tree_is_refused():
    values = fixed_values(4)
    tree = merkle.build(values)
    with pytest.raises(LeafNotFoundError):
        tree.proof_for(keccak256(b"absent"), values[0][1])
    with pytest.raises(LeafNotFoundError):
        tree.proof_for(values[0][0], values[1][1])


def test_verify_refuses_inputs_of_the_wrong_length():
    values = fixed_values(2)
    tree = merkle.build(values)
    with pytest.raises(ValueError, match="32 bytes"):
        merkle.verify(tree.root[:31], *values[0], tree.proof(0))
    with pytest.raises(ValueError, match="32 bytes"):
        merkle.verify(tree.root, *values[0], [b"\x00" * 31])


# --- properties ------------------------------------------------------------------------------


@settings(max_examples=150)
@given(values=unique_values)
def test_every_leaf_has_a_proof_that_verifies(values):
    tree = merkle.build(values)
    for index, (entry, record) in enumerate(values):
        proof = tree.proof(index)
        assert proof == tree.proof_for(entry, record)
        assert merkle.verify(tree.root, entry, record, proof)
        assert len(proof) <= len(values).bit_length()


@settings(max_examples=150)
@given(values=unique_values, data=st.data())
def test_a_tampered_record_hash_or_entry_id_does_not_verify(values, data):
    tree = merkle.build(values)
    index = data.draw(st.integers(0, len(values) - 1))
    entry, record = values[index]
    position = data.draw(st.integers(0, 31))
    flip = data.draw(st.integers(1, 255))
    bad_record = record[:position] + bytes([record[position] ^ flip]) + record[position + 1 :]
    bad_entry = entry[:position] + bytes([entry[position] ^ flip]) + entry[position + 1 :]
    assert not merkle.verify(tree.root, entry, bad_record, tree.proof(index))
    assert not merkle.verify(tree.root, bad_entry, record, tree.proof(index))
    assert not merkle.verify(tree.root, record, entry, tree.proof(index))


@settings(max_examples=150)
@given(values=unique_values.filter(lambda v: len(v) >= 2), data=st.data())
def test_a_tampered_proof_does_not_verify(values, data):
    tree = merkle.build(values)
    index = data.draw(st.integers(0, len(values) - 1))
    entry, record = values[index]
    proof = tree.proof(index)
    at = data.draw(st.integers(0, len(proof) - 1))
    node = proof[at]
    byte = data.draw(st.integers(0, 31))
    flipped = node[:byte] + bytes([node[byte] ^ data.draw(st.integers(1, 255))]) + node[byte + 1 :]
    assert not merkle.verify(tree.root, entry, record, [*proof[:at], flipped, *proof[at + 1 :]])
    assert not merkle.verify(tree.root, entry, record, proof[:-1])
    assert not merkle.verify(tree.root, entry, record, [*proof, proof[-1]])
    other = (index + 1) % len(values)
    if tree.proof(other) != proof:
        assert not merkle.verify(tree.root, entry, record, tree.proof(other))


@settings(max_examples=100)
@given(values=unique_values)
def test_dump_loads_back_to_the_same_tree(values):
    tree = merkle.build(values)
    loaded = merkle.load(json.loads(json.dumps(tree.dump())))
    assert loaded.root == tree.root
    assert loaded.values == tree.values
    assert loaded.dump() == tree.dump()
    assert [loaded.proof(i) for i in range(len(values))] == [
        tree.proof(i) for i in range(len(values))
    ]


# --- dump format and load validation ---------------------------------------------------------


def test_dump_has_exactly_the_standard_v1_shape():
    dump = merkle.build(fixed_values(3)).dump()
    assert list(dump) == ["format", "leafEncoding", "tree", "values"]
    assert dump["format"] == "standard-v1"
    assert dump["leafEncoding"] == ["bytes32", "bytes32"]
    assert len(dump["tree"]) == 5
    assert all(isinstance(node, str) and len(node) == 66 for node in dump["tree"])
    assert all(list(value) == ["value", "treeIndex"] for value in dump["values"])


def corrupted(mutate) -> dict[str, Any]:
    dump = copy.deepcopy(merkle.build(fixed_values(6)).dump())
    mutate(dump)
    return dump


def _swap_leaves(dump: dict[str, Any]) -> None:
    tree, values = dump["tree"], dump["values"]
    a, b = values[0]["treeIndex"], values[1]["treeIndex"]
    tree[a], tree[b] = tree[b], tree[a]
    values[0]["treeIndex"], values[1]["treeIndex"] = b, a


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format="standard-v2"), "unknown format"),
        (lambda d: d.update(leafEncoding=["bytes32", "uint256"]), "leafEncoding"),
        (lambda d: d.update(extra=1), "exactly the keys"),
        (lambda d: d.pop("values"), "exactly the keys"),
        (lambda d: d.update(values=[], tree=[]), "at least one leaf"),
        (lambda d: d["tree"].pop(), "need 11 nodes"),
        (lambda d: d["tree"].__setitem__(0, "0x" + "00" * 32), r"tree\[0\] is not the hash"),
        (lambda d: d["tree"].__setitem__(2, d["tree"][2].upper()), "lowercase hex"),
        (lambda d: d["tree"].__setitem__(1, d["tree"][1][:-2]), "lowercase hex|32 bytes"),
        (lambda d: d["values"][0].__setitem__("treeIndex", 1), "not a leaf position"),
        (lambda d: d["values"][0].__setitem__("treeIndex", 11), "not a leaf position"),
        (lambda d: d["values"][0].__setitem__("treeIndex", "5"), "not a leaf position"),
        (
            lambda d: d["values"][0].__setitem__("treeIndex", d["values"][1]["treeIndex"]),
            "share a leaf position",
        ),
        (lambda d: d["values"][0]["value"].__setitem__(1, "0x" + "00" * 32), "not the leaf hash"),
        (lambda d: d["values"][0].__setitem__("value", ["0x" + "00" * 32]), r"\[entry_id, record"),
        (lambda d: d["values"][0].pop("treeIndex"), "value and treeIndex"),
        (_swap_leaves, "not sorted ascending"),
    ],
)
def test_load_refuses_a_dump_that_is_not_exactly_a_valid_tree(mutate, message):
    with pytest.raises(MerkleTreeError, match=message):
        merkle.load(corrupted(mutate))


def test_load_refuses_a_dump_repeating_an_entry_id():
    values = fixed_values(2)
    dump = merkle.build(values).dump()
    # a well-formed tree over two values with the same entry_id, built by hand
    dup = [values[0], (values[0][0], values[1][1])]
    leaves = sorted(leaf_hash(*v) for v in dup)
    root = keccak256(leaves[0] + leaves[1])
    dump["tree"] = [to_hex(root), to_hex(leaves[1]), to_hex(leaves[0])]
    dump["values"] = [
        {"value": [to_hex(e), to_hex(r)], "treeIndex": 2 if leaf_hash(e, r) == leaves[0] else 1}
        for e, r in dup
    ]
    with pytest.raises(MerkleTreeError, match="more than once"):
        merkle.load(dump)


def test_build_handles_a_hundred_thousand_leaves():
    values = [
        (keccak256(i.to_bytes(8, "big")), keccak256(b"r" + i.to_bytes(8, "big")))
        for i in range(100_000)
    ]
    tree = merkle.build(values)
    for index in (0, 1, 4_242, 99_999):
        assert merkle.verify(tree.root, *values[index], tree.proof(index))
        assert len(tree.proof(index)) in (16, 17)
