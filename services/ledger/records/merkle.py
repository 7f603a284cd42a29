"""OpenZeppelin ``StandardMerkleTree`` (``standard-v1``) for ``[entry_id, record_hash]`` leaves.

A batch of records is anchored as the root of this tree, and each record's proof comes from it, so
it has to be bit-for-bit the tree that ``@openzeppelin/merkle-tree`` builds and that
``MerkleProof.verify`` in Solidity checks:

- leaf = keccak256(keccak256(entry_id ‖ record_hash)) (the standard leaf of
  ``["bytes32","bytes32"]``), see :func:`services.ledger.records.canonical.leaf_hash`;
- leaves sorted ascending; a complete binary tree in an array of ``2n − 1`` nodes, with the ``k``-th
  sorted leaf at ``tree[2n − 2 − k]`` and node ``i`` = keccak256(min(l, r) ‖ max(l, r)) of its
  children ``l = tree[2i + 1]``, ``r = tree[2i + 2]``; the root is ``tree[0]``;
- a proof is the list of siblings from the leaf up to (not including) the root, folded with the
  same sorted-pair hash.

:meth:`StandardTree.dump` writes the JSON that ``StandardMerkleTree.load`` accepts and
:func:`load` reads it back, checking every node. The ledger also refuses what OpenZeppelin would
allow but a batch must never contain: an empty tree, and the same entry_id twice.

Internal nodes are computed a level at a time with one list comprehension over slices of the node
array. The Keccak calls themselves (about 0.7 µs each with safe-pysha3) are most of the build
time, which is why the Keccak library matters more than the loop (docs/benchmarks.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any, Final

from sha3 import keccak_256

from services.ledger.records.canonical import leaf_hash
from services.ledger.records.keccak import from_hex, keccak256, to_hex

DUMP_FORMAT: Final = "standard-v1"
LEAF_ENCODING: Final = ("bytes32", "bytes32")

_HEX32_RUN_RE: Final = re.compile(r"(?:0x[0-9a-f]{64})*")


class MerkleTreeError(ValueError):
    """Values that cannot form a batch tree, or a dump that is not a valid tree."""


class LeafNotFoundError(LookupError):
    """The asked-for value is not a leaf of this tree."""


def _node_hash(a: bytes, b: bytes) -> bytes:
    return keccak256(a + b if a < b else b + a)


def _fill_internal_nodes(tree: list[bytes], leaf_count: int) -> None:
    """Compute ``tree[0 : leaf_count − 1]`` from the leaves stored after them.

    Nodes ``lo..hi`` whose children all lie above ``hi`` are hashed in one list comprehension; the
    next chunk ends at ``lo − 1``. That is one chunk per level of the tree.
    """
    keccak = keccak_256
    hi = leaf_count - 2
    while hi >= 0:
        lo = (hi - 1) // 2 + 1
        lefts = tree[2 * lo + 1 : 2 * hi + 2 : 2]
        rights = tree[2 * lo + 2 : 2 * hi + 3 : 2]
        tree[lo : hi + 1] = [
            keccak(a + b if a < b else b + a).digest() for a, b in zip(lefts, rights, strict=True)
        ]
        hi = lo - 1


def _check_values(values: Sequence[tuple[bytes, bytes]]) -> None:
    if len(values) == 0:
        raise MerkleTreeError("a Merkle tree needs at least one leaf")
    for index, value in enumerate(values):
        if (
            len(value) != 2
            or type(value[0]) is not bytes
            or type(value[1]) is not bytes
            or len(value[0]) != 32
            or len(value[1]) != 32
        ):
            raise MerkleTreeError(f"value {index} is not a pair of 32-byte bytes objects")
    if len({entry for entry, _ in values}) != len(values):
        raise MerkleTreeError("the same entry_id appears more than once")


class StandardTree:
    """A built (or loaded and checked) tree. Use :func:`build` or :func:`load` to make one."""

    __slots__ = ("_by_entry", "_tree", "_tree_indices", "_values")

    def __init__(
        self,
        tree: list[bytes],
        values: tuple[tuple[bytes, bytes], ...],
        tree_indices: list[int],
    ) -> None:
        self._tree = tree
        self._values = values
        self._tree_indices = tree_indices
        self._by_entry: dict[bytes, int] | None = None

    @property
    def root(self) -> bytes:
        return self._tree[0]

    @property
    def values(self) -> tuple[tuple[bytes, bytes], ...]:
        """The ``(entry_id, record_hash)`` pairs in the order they were given."""
        return self._values

    def __len__(self) -> int:
        return len(self._values)

    def tree_index(self, index: int) -> int:
        """Position in the node array of the leaf of value ``index``."""
        self._check_index(index)
        return self._tree_indices[index]

    def leaf(self, index: int) -> bytes:
        """Leaf hash of value ``index``."""
        return self._tree[self.tree_index(index)]

    def index_of(self, entry_id: bytes, record_hash: bytes) -> int:
        """Value index of ``(entry_id, record_hash)``; :class:`LeafNotFoundError` if absent."""
        if self._by_entry is None:
            self._by_entry = {entry: i for i, (entry, _) in enumerate(self._values)}
        index = self._by_entry.get(entry_id)
        if index is None or self._values[index][1] != record_hash:
            raise LeafNotFoundError(
                f"({to_hex(entry_id)}, {to_hex(record_hash)}) is not a leaf of this tree"
            )
        return index

    def proof(self, index: int) -> list[bytes]:
        """Sibling hashes from the leaf of value ``index`` up to the root (empty for one leaf)."""
        tree = self._tree
        position = self.tree_index(index)
        proof: list[bytes] = []
        while position > 0:
            proof.append(tree[position + 1 if position % 2 == 1 else position - 1])
            position = (position - 1) // 2
        return proof

    def proof_for(self, entry_id: bytes, record_hash: bytes) -> list[bytes]:
        return self.proof(self.index_of(entry_id, record_hash))

    def dump(self) -> dict[str, Any]:
        """The ``standard-v1`` JSON object that ``StandardMerkleTree.load`` accepts."""
        return {
            "format": DUMP_FORMAT,
            "leafEncoding": list(LEAF_ENCODING),
            "tree": ["0x" + node.hex() for node in self._tree],
            "values": [
                {"value": ["0x" + entry.hex(), "0x" + record.hex()], "treeIndex": position}
                for (entry, record), position in zip(self._values, self._tree_indices, strict=True)
            ],
        }

    def _check_index(self, index: int) -> None:
        if type(index) is not int or not 0 <= index < len(self._values):
            raise IndexError(f"value index {index!r} out of range 0..{len(self._values) - 1}")


def build(values: Sequence[tuple[bytes, bytes]]) -> StandardTree:
    """The tree of ``(entry_id, record_hash)`` pairs, as ``StandardMerkleTree.of(values,
    ["bytes32","bytes32"])`` builds it. Refuses an empty input and a repeated entry_id."""
    _check_values(values)
    keccak = keccak_256
    count = len(values)
    length = 2 * count - 1
    leaves = [keccak(keccak(entry + record).digest()).digest() for entry, record in values]
    order = sorted(range(count), key=leaves.__getitem__)
    tree: list[bytes] = [b""] * (count - 1)
    tree.extend([leaves[i] for i in reversed(order)])
    tree_indices = [0] * count
    for position, value_index in zip(range(length - 1, count - 2, -1), order, strict=True):
        tree_indices[value_index] = position
    _fill_internal_nodes(tree, count)
    return StandardTree(tree, tuple(values), tree_indices)


def _dump_hex32(text: object, where: str) -> bytes:
    if not isinstance(text, str):
        raise MerkleTreeError(f"{where}: expected a hex string")
    try:
        return from_hex(text, length=32)
    except ValueError as exc:
        raise MerkleTreeError(f"{where}: {exc}") from None


def _dump_hex32_list(items: list[Any], where: str) -> list[bytes]:
    """Parse many 32-byte hex strings: one regex over the joined text, then per-item on failure."""
    if all(type(item) is str and len(item) == 66 for item in items) and (
        _HEX32_RUN_RE.fullmatch("".join(items)) is not None
    ):
        return [bytes.fromhex(item[2:]) for item in items]
    return [_dump_hex32(item, f"{where}[{i}]") for i, item in enumerate(items)]


def load(dump: Mapping[str, Any]) -> StandardTree:
    """Read a ``standard-v1`` dump back, checking that it is exactly the tree :func:`build` makes.

    Checked: format and leaf encoding, lowercase 32-byte hex everywhere, ``2n − 1`` nodes for ``n``
    values, each value at a distinct leaf position holding its leaf hash, leaves in ascending
    order, distinct entry_ids, and every internal node equal to the hash of its children.
    Raises :class:`MerkleTreeError` naming the first problem.
    """
    if not isinstance(dump, Mapping):
        raise MerkleTreeError("a tree dump is a JSON object")
    expected_keys = {"format", "leafEncoding", "tree", "values"}
    if set(dump) != expected_keys:
        raise MerkleTreeError(f"a tree dump has exactly the keys {sorted(expected_keys)}")
    if dump["format"] != DUMP_FORMAT:
        raise MerkleTreeError(f"unknown format {dump['format']!r}, expected {DUMP_FORMAT!r}")
    if dump["leafEncoding"] != list(LEAF_ENCODING):
        raise MerkleTreeError(f"leafEncoding must be {list(LEAF_ENCODING)}")
    raw_tree, raw_values = dump["tree"], dump["values"]
    if not isinstance(raw_tree, list) or not isinstance(raw_values, list):
        raise MerkleTreeError("tree and values must be lists")
    count = len(raw_values)
    if count == 0:
        raise MerkleTreeError("a Merkle tree needs at least one leaf")
    if len(raw_tree) != 2 * count - 1:
        raise MerkleTreeError(
            f"{count} values need {2 * count - 1} nodes, the dump has {len(raw_tree)}"
        )
    tree = _dump_hex32_list(raw_tree, "tree")

    halves: list[Any] = []
    tree_indices: list[int] = []
    for i, item in enumerate(raw_values):
        if not isinstance(item, Mapping) or set(item) != {"value", "treeIndex"}:
            raise MerkleTreeError(f"values[{i}] must be an object with value and treeIndex")
        pair, position = item["value"], item["treeIndex"]
        if not isinstance(pair, list) or len(pair) != 2:
            raise MerkleTreeError(f"values[{i}].value must be [entry_id, record_hash]")
        if type(position) is not int or not count - 1 <= position < 2 * count - 1:
            raise MerkleTreeError(f"values[{i}].treeIndex {position!r} is not a leaf position")
        halves.extend(pair)
        tree_indices.append(position)
    parsed = _dump_hex32_list(halves, "values[].value")
    values = list(zip(parsed[0::2], parsed[1::2], strict=True))
    _check_values(values)
    if len(set(tree_indices)) != count:
        raise MerkleTreeError("two values share a leaf position")

    keccak = keccak_256
    for i, ((entry, record), position) in enumerate(zip(values, tree_indices, strict=True)):
        if tree[position] != keccak(keccak(entry + record).digest()).digest():
            raise MerkleTreeError(f"tree[{position}] is not the leaf hash of values[{i}]")
    leaves_descending = tree[count - 1 :]
    if not all(a >= b for a, b in pairwise(leaves_descending)):
        raise MerkleTreeError("leaves are not sorted ascending (tree[2n-2] is the smallest)")
    rebuilt = list(tree)
    _fill_internal_nodes(rebuilt, count)
    if rebuilt != tree:
        first = next(i for i in range(count - 1) if rebuilt[i] != tree[i])
        raise MerkleTreeError(f"tree[{first}] is not the hash of its children")
    return StandardTree(tree, tuple(values), tree_indices)


def process_proof(leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """Fold ``proof`` into ``leaf`` with the sorted-pair hash: the root the proof leads to."""
    if len(leaf) != 32 or any(len(node) != 32 for node in proof):
        raise ValueError("a leaf and every proof element must be 32 bytes")
    node = leaf
    for sibling in proof:
        node = _node_hash(node, sibling)
    return node


def verify(root: bytes, entry_id: bytes, record_hash: bytes, proof: Sequence[bytes]) -> bool:
    """Whether ``proof`` shows ``(entry_id, record_hash)`` is a leaf of the tree with ``root``.

    The same computation as ``StandardMerkleTree.verify`` and Solidity's ``MerkleProof.verify``.
    Inputs of the wrong length raise :class:`ValueError` rather than returning ``False``.
    """
    if len(root) != 32:
        raise ValueError("root must be 32 bytes")
    return process_proof(leaf_hash(entry_id, record_hash), proof) == root
