"""The Python tree against OpenZeppelin's own JavaScript library, @openzeppelin/merkle-tree 1.0.8.

Runs ``node`` with the package from contracts/node_modules: JavaScript must load the Python dump to
the same root and proofs, build the same dump from the same values, and verify Python's proofs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from services.ledger.records import merkle
from services.ledger.records.keccak import keccak256, to_hex

REPO_ROOT = Path(__file__).resolve().parents[3]
OZ_MERKLE_TREE = REPO_ROOT / "contracts" / "node_modules" / "@openzeppelin" / "merkle-tree"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    NODE is None, reason="node is not installed: the JavaScript cross-check needs Node.js"
)

CROSS_CHECK_JS = """
const fs = require("fs");
const { StandardMerkleTree } = require(process.env.OZ_MERKLE_TREE);
const input = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
const out = {};
try {
  const loaded = StandardMerkleTree.load(input.dump);
  out.loadedRoot = loaded.root;
  out.proofs = input.indices.map((i) => loaded.getProof(i));
} catch (err) {
  out.loadError = String(err.message);
}
if (input.values) {
  const fresh = StandardMerkleTree.of(input.values, ["bytes32", "bytes32"]);
  out.freshRoot = fresh.root;
  out.freshDump = fresh.dump();
}
out.verified = (input.claims || []).map((c) =>
  StandardMerkleTree.verify(c.root, ["bytes32", "bytes32"], c.value, c.proof),
);
process.stdout.write(JSON.stringify(out));
"""


def run_js(tmp_path: Path, payload: dict[str, Any]) -> dict[str, Any]:
    if not (OZ_MERKLE_TREE / "package.json").exists():
        pytest.fail("@openzeppelin/merkle-tree is missing: run `npm ci` in contracts/")
    path = tmp_path / "input.json"
    path.write_text(json.dumps(payload))
    assert NODE is not None
    result = subprocess.run(
        [NODE, "-e", CROSS_CHECK_JS, str(path)],
        env={**os.environ, "OZ_MERKLE_TREE": str(OZ_MERKLE_TREE)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def values_of(count: int) -> list[tuple[bytes, bytes]]:
    return [(keccak256(b"js-event-%d" % i), keccak256(b"js-record-%d" % i)) for i in range(count)]


def hex_values(values: list[tuple[bytes, bytes]]) -> list[list[str]]:
    return [[to_hex(entry), to_hex(record)] for entry, record in values]


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 13, 100, 1000])
def test_javascript_loads_the_python_dump_to_the_same_root_and_proofs(tmp_path, count):
    values = values_of(count)
    tree = merkle.build(values)
    indices = sorted({0, count // 2, count - 1})
    out = run_js(tmp_path, {"dump": tree.dump(), "indices": indices})
    assert "loadError" not in out, out.get("loadError")
    assert out["loadedRoot"] == to_hex(tree.root)
    assert out["proofs"] == [[to_hex(node) for node in tree.proof(i)] for i in indices]


@pytest.mark.parametrize("count", [1, 2, 7, 64, 1000])
def test_javascript_builds_the_same_tree_from_the_same_values(tmp_path, count):
    values = values_of(count)
    tree = merkle.build(values)
    out = run_js(tmp_path, {"dump": tree.dump(), "indices": [], "values": hex_values(values)})
    assert out["freshRoot"] == to_hex(tree.root)
    assert out["freshDump"] == tree.dump()
    assert merkle.load(out["freshDump"]).root == tree.root


def test_javascript_verifies_python_proofs_and_rejects_tampered_ones(tmp_path):
    values = values_of(20)
    tree = merkle.build(values)
    root = to_hex(tree.root)
    claims = []
    for index in range(len(values)):
        proof = [to_hex(node) for node in tree.proof(index)]
        claims.append({"root": root, "value": hex_values([values[index]])[0], "proof": proof})
    entry, record = hex_values([values[3]])[0]
    good_proof = claims[3]["proof"]
    tampered = [
        {"root": root, "value": [entry, to_hex(keccak256(b"other"))], "proof": good_proof},
        {"root": root, "value": [record, entry], "proof": good_proof},
        {"root": root, "value": [entry, record], "proof": good_proof[:-1]},
        {"root": root, "value": [entry, record], "proof": claims[4]["proof"]},
    ]
    out = run_js(tmp_path, {"dump": tree.dump(), "indices": [], "claims": claims + tampered})
    assert out["verified"] == [True] * len(claims) + [False] * len(tampered)


def test_javascript_refuses_a_dump_python_also_refuses(tmp_path):
    dump = merkle.build(values_of(6)).dump()
    dump["tree"][0] = "0x" + "00" * 32
    out = run_js(tmp_path, {"dump": dump, "indices": []})
    assert "invalid" in out["loadError"]
    with pytest.raises(merkle.MerkleTreeError):
        merkle.load(dump)
