"""docs/anchoring.md tells the truth: its test vectors and its offline shell commands.

The shell blocks marked ``<!-- doc-test: offline -->`` are run as printed (bash, jq, node with
@openzeppelin/merkle-tree, cast from contracts/node_modules) on bundles made by the Python code,
genuine and tampered. The on-chain commands (``cast call … batches`` / ``verifyEntry``) need a
deployed contract and are not run here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from services.ledger.records import merkle
from services.ledger.records.bundle import ProofBundle, all_ok, verify_bundle_offline
from services.ledger.records.canonical import (
    ReceivableEventRecord,
    canonical_json,
    entry_id,
    leaf_hash,
    record_hash,
)
from services.ledger.records.keccak import keccak256, to_hex

REPO_ROOT = Path(__file__).resolve().parents[3]
DOC = REPO_ROOT / "docs" / "anchoring.md"
NODE_MODULES = REPO_ROOT / "contracts" / "node_modules"
TOOLS_PATH = os.pathsep.join([str(NODE_MODULES / ".bin"), os.environ.get("PATH", "")])
MISSING = [
    tool for tool in ("bash", "jq", "node", "cast") if shutil.which(tool, path=TOOLS_PATH) is None
]

GENUINE = [
    "record_hash ok",
    "entry_id ok",
    "proof ok (StandardMerkleTree.verify)",
    "proof folds to root ok",
]


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def doc_section(pattern: str) -> str:
    match = re.search(pattern, doc_text(), re.DOTALL)
    assert match is not None, f"docs/anchoring.md no longer matches {pattern!r}"
    return match[1]


def offline_script() -> str:
    blocks = re.findall(r"<!-- doc-test: offline -->\n```sh\n(.*?)```", doc_text(), re.DOTALL)
    assert len(blocks) == 4, "expected the setup, step 0, way 1 and way 2 blocks"
    return "set -euo pipefail\n" + "\n".join(blocks)


def records(count: int, tag: str) -> list[ReceivableEventRecord]:
    out: list[ReceivableEventRecord] = []
    prev: str | None = None
    for seq in range(1, count + 1):
        record = ReceivableEventRecord.model_validate(
            {
                "event_id": f"evt_{tag}{seq:028x}",
                "receivable_id": "rcv_" + "2" * 32,
                "seq": seq,
                "type": "created" if seq == 1 else "funded",
                "at": f"2025-03-01T08:00:{seq:02d}.000000Z",
                "actor": "org_" + "3" * 32,
                "data": {"amount": f"{seq}000.00", "currency": "CNY", "memo": '付款 ✓ "x"\n'},
                "prev": prev,
                "salt": to_hex(keccak256(f"doc-{tag}-{seq}".encode())),
            }
        )
        prev = to_hex(record_hash(record))
        out.append(record)
    return out


def bundles(count: int, tag: str = "0000") -> list[dict[str, Any]]:
    batch = records(count, tag)
    values = [(entry_id(r.event_id), record_hash(r)) for r in batch]
    tree = merkle.build(values)
    return [
        json.loads(
            ProofBundle.model_validate(
                {
                    "chain_id": 31337,
                    "contract": "0x5fbdb2315678afecb367f032d93f642f64180aa3",
                    "batch_id": 7,
                    "tx_hash": "0x" + "ab" * 32,
                    "block_number": 99,
                    "root": to_hex(tree.root),
                    "entry_id": to_hex(values[i][0]),
                    "record_hash": to_hex(values[i][1]),
                    "proof": [to_hex(node) for node in tree.proof(i)],
                    "record": record.model_dump(mode="json"),
                }
            ).model_dump_json()
        )
        for i, record in enumerate(batch)
    ]


def run_offline_commands(tmp_path: Path, bundle: dict[str, Any]) -> list[str]:
    (tmp_path / "bundle.json").write_text(json.dumps(bundle, indent=2, ensure_ascii=False))
    result = subprocess.run(
        ["bash", "-c", offline_script()],
        cwd=tmp_path,
        env={**os.environ, "PATH": TOOLS_PATH, "NODE_PATH": str(NODE_MODULES)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


# --- test vectors ----------------------------------------------------------------------------


def test_record_test_vector_in_the_doc_is_what_the_code_computes():
    text = doc_text()
    example = json.loads(
        doc_section(r"Example \(the test vector used below\):\n\n```json\n(.*?)```")
    )
    record = ReceivableEventRecord.model_validate(example)
    assert f"canonical JSON  {canonical_json(record).decode()}\n" in text
    assert f"record_hash     {to_hex(record_hash(record))}\n" in text
    assert f"entry_id        {to_hex(entry_id(record.event_id))}\n" in text
    leaf = leaf_hash(entry_id(record.event_id), record_hash(record))
    assert f"leaf            {to_hex(leaf)}\n" in text
    assert f"one line of {len(canonical_json(record))} bytes" in text


def test_tree_test_vector_in_the_doc_is_what_the_code_computes():
    text = doc_text()
    values = [
        (keccak256(f"event-{i}".encode()), keccak256(f"record-{i}".encode())) for i in range(3)
    ]
    tree = merkle.build(values)
    dump = tree.dump()
    assert f"tree[0] (root)  {dump['tree'][0]}\n" in text
    for i in range(1, 5):
        assert f"tree[{i}]         {dump['tree'][i]}\n" in text
    positions = ", ".join(f"value {i} → {tree.tree_index(i)}" for i in range(3))
    assert f"treeIndex       {positions}\n" in text
    assert [to_hex(node) for node in tree.proof(0)] == [dump["tree"][3], dump["tree"][2]]


def test_example_bundle_in_the_doc_passes_offline_verification():
    example = doc_section(r"No other members are allowed\. Example.*?```json\n(.*?)```")
    assert all_ok(verify_bundle_offline(example))


# --- the shell commands ----------------------------------------------------------------------


needs_tools = pytest.mark.skipif(
    bool(MISSING), reason=f"the documented commands need {', '.join(MISSING)} (not installed)"
)


@needs_tools
@pytest.mark.parametrize(("count", "index"), [(1, 0), (5, 3)])
def test_documented_commands_accept_a_genuine_bundle(tmp_path, count, index):
    assert run_offline_commands(tmp_path, bundles(count)[index]) == GENUINE


@needs_tools
def test_documented_commands_catch_a_changed_record(tmp_path):
    bundle = bundles(4)[2]
    bundle["record"]["data"]["amount"] = "9999.00"
    lines = run_offline_commands(tmp_path, bundle)
    assert lines[0] == "record_hash MISMATCH"
    assert lines[1] == "entry_id ok"
    assert lines[2] == "proof MISMATCH (StandardMerkleTree.verify)"
    assert lines[3].startswith("proof MISMATCH: folds to 0x")


@needs_tools
def test_documented_commands_catch_a_changed_proof(tmp_path):
    bundle = bundles(4)[1]
    bundle["proof"][-1] = "0x" + "00" * 32
    lines = run_offline_commands(tmp_path, bundle)
    assert lines[:2] == ["record_hash ok", "entry_id ok"]
    assert lines[2] == "proof MISMATCH (StandardMerkleTree.verify)"
    assert lines[3].startswith("proof MISMATCH")
