"""Bundles of events anchored by the real stack, checked with tools that are not the project's code
— Foundry's ``cast`` (the fold with ``cast keccak``/``cast concat-hex`` against ``cast call …
batches``, and ``cast call … verifyEntry``) and OpenZeppelin's ``@openzeppelin/merkle-tree`` run by
node — and with ``qilian verify``; a tampered record, salt, proof or root makes each of them fail.

How: the session's process stack (``stack``: api, ledger, worker and beat as separate processes on
their own anvil). Events are committed to ``platform.outbox``; the worker's relay delivers them to
the ledger and beat's anchoring tick batches and anchors them; the bundles are fetched over HTTP
from the ledger's ``GET /v1/proofs/receivables/{id}``. The cast and node checks are the shell
blocks of docs/anchoring.md marked ``doc-test: offline`` and ``doc-test: chain``, run as printed
(only ``RPC_URL`` is pointed at the stack's anvil). ``qilian verify`` runs as its own process with
an unreachable database URL and no platform URL: it has nothing but the bundle files and the RPC
endpoint.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from qilian.kit import db, outbox
from qilian.kit.anvil import tool_path
from services.ledger.records import merkle
from services.ledger.records.canonical import ReceivableEventRecord, entry_id, record_hash
from services.ledger.records.keccak import keccak256, to_hex
from tests.e2e.conftest import BIN, Stack, wait_for

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
DOC = REPO_ROOT / "docs" / "anchoring.md"
NODE_MODULES = REPO_ROOT / "contracts" / "node_modules"

# the lines each way prints when it holds (docs/anchoring.md, "Verifying a bundle")
STEP_ZERO = ("record_hash ok", "entry_id ok")
WAYS = {
    "node StandardMerkleTree.verify": (
        "proof ok (StandardMerkleTree.verify)",
        "bundle root on chain ok",
    ),
    "cast fold vs batches": ("chain id ok", "proof folds to root ok", "anchored root ok"),
    "cast verifyEntry": ("verifyEntry ok", "block ok", "bundle root on chain ok"),
}


def tools_path() -> str:
    cast_dir = str(Path(tool_path("cast")).parent)
    return os.pathsep.join([cast_dir, str(NODE_MODULES / ".bin"), os.environ.get("PATH", "")])


def doc_script(rpc_url: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- doc-test: (?:offline|chain) -->\n```sh\n(.*?)```", text, re.DOTALL)
    assert len(blocks) == 7, "setup, step 0, way 1 (+ its chain check), way 2 (two), way 3"
    script = "set -euo pipefail\n" + "\n".join(blocks)
    default = "RPC_URL=http://127.0.0.1:8545"
    assert default in script
    return script.replace(default, f"RPC_URL={rpc_url}")


def emit(receivables: int, events_each: int) -> dict[str, list[str]]:
    """Commit the events of new receivables to the outbox in one transaction."""

    async def run() -> dict[str, list[str]]:
        emitted: dict[str, list[str]] = {}
        try:
            async with db.transaction() as session:
                for _ in range(receivables):
                    rid = f"rcv_{uuid.uuid4().hex}"
                    emitted[rid] = []
                    for seq in range(1, events_each + 1):
                        payload = {
                            "receivable_id": rid,
                            "seq": seq,
                            "type": "created" if seq == 1 else "funded",
                            "at": f"2026-11-29T07:00:{seq:02d}.000000Z",
                            "actor": "org_auditor_e2e",
                            "data": {"amount": f"{seq}000.00", "currency": "CNY", "note": "付款 ✓"},
                        }
                        emitted[rid].append(await outbox.emit(session, "receivable.event", payload))
        finally:
            await db.dispose_engine()
        return emitted

    return asyncio.run(run())


@pytest.fixture(scope="module")
def proofs(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    """Two receivables of three events each, anchored by the stack: their bundles by receivable."""
    emitted = emit(2, 3)
    found: dict[str, list[dict[str, Any]]] = {}

    def all_anchored() -> bool:
        for rid in emitted:
            response = httpx.get(f"{stack.ledger_url}/v1/proofs/receivables/{rid}", timeout=10)
            if response.status_code != 200 or not response.json()["all_anchored"]:
                return False
            found[rid] = [event["bundle"] for event in response.json()["events"]]
        return True

    wait_for(all_anchored, 180, "the stack to anchor the events")
    for rid, events in emitted.items():
        assert [b["record"]["event_id"] for b in found[rid]] == events
    return found


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


def with_proof(proofs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """A bundle whose proof has at least two nodes (so a proof can be tampered with)."""
    for bundles in proofs.values():
        for bundle in bundles:
            if len(bundle["proof"]) >= 2:
                return copy.deepcopy(bundle)
    raise AssertionError("no batch with three or more leaves")


def run_doc_commands(stack: Stack, work: Path, bundle: dict[str, Any]) -> list[str]:
    (work / "bundle.json").write_text(json.dumps(bundle, indent=2, ensure_ascii=False))
    result = subprocess.run(
        ["bash", "-c", doc_script(stack.anvil.rpc_url)],
        cwd=work,
        env={**os.environ, "PATH": tools_path(), "NODE_PATH": str(NODE_MODULES)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


def holding(lines: list[str]) -> dict[str, bool]:
    """Which of the independent ways accepted the bundle."""
    return {way: all(line in lines for line in expected) for way, expected in WAYS.items()}


def qilian_verify(stack: Stack, *files: Path, json_output: bool = True) -> tuple[int, Any]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        # nothing of the platform: a database that cannot be reached, no API or ledger URL
        "QILIAN_DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:1/nothing",
        "QILIAN_API_URL": "http://127.0.0.1:1",
        "QILIAN_LEDGER_URL": "http://127.0.0.1:1",
    }
    command = [str(BIN / "qilian"), "verify", *map(str, files), "--rpc-url", stack.anvil.rpc_url]
    result = subprocess.run(
        [*command, "--json"] if json_output else command,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout) if json_output else result.stdout


def write(work: Path, name: str, bundle: dict[str, Any]) -> Path:
    path = work / name
    path.write_text(json.dumps(bundle, ensure_ascii=False))
    return path


def test_every_tool_accepts_the_genuine_bundles(stack: Stack, proofs, work: Path):
    for bundles in proofs.values():
        for bundle in bundles:
            lines = run_doc_commands(stack, work, bundle)
            assert all(line in lines for line in STEP_ZERO), lines
            assert holding(lines) == dict.fromkeys(WAYS, True), lines

    (rid, bundles), *_ = proofs.items()
    files = [write(work, f"seq-{b['record']['seq']}.json", b) for b in bundles]
    code, report = qilian_verify(stack, *reversed(files))  # any order: sorted by seq
    assert code == 0, json.dumps(report, indent=1)
    assert report["ok"] is True
    assert [b["ok"] for b in report["bundles"]] == [True, True, True]
    assert {s["status"] for b in report["bundles"] for s in b["steps"]} == {"ok"}
    (history,) = report["histories"]
    assert (history["receivable_id"], history["seqs"], history["ok"]) == (rid, [1, 2, 3], True)

    code, text = qilian_verify(stack, *files, json_output=False)
    assert code == 0
    assert "VERIFIED" in text
    assert "NOT VERIFIED" not in text
    for step in ("record_hash", "leaf", "merkle_proof", "onchain_root", "verify_entry"):
        assert step in text


def tamper_record(bundle: dict[str, Any]) -> None:
    bundle["record"]["data"]["amount"] = "9" + bundle["record"]["data"]["amount"]


def tamper_salt(bundle: dict[str, Any]) -> None:
    salt = bundle["record"]["salt"]
    bundle["record"]["salt"] = salt[:-1] + ("0" if salt[-1] != "0" else "1")


def tamper_proof(bundle: dict[str, Any]) -> None:
    bundle["proof"][0] = to_hex(keccak256(bundle["proof"][0].encode()))


def tamper_root(bundle: dict[str, Any]) -> None:
    bundle["root"] = to_hex(keccak256(bundle["root"].encode()))


def forge(bundle: dict[str, Any]) -> None:
    """Change the record and make the whole bundle consistent again: new hashes, and a proof and
    root from a tree the forger built. Only the chain can tell."""
    tamper_record(bundle)
    record = ReceivableEventRecord.model_validate(bundle["record"])
    value = (entry_id(record.event_id), record_hash(record))
    tree = merkle.build(
        [value, (keccak256(b"decoy-1"), keccak256(b"x")), (keccak256(b"d2"), b"\x01" * 32)]
    )
    bundle["record_hash"] = to_hex(value[1])
    bundle["entry_id"] = to_hex(value[0])
    bundle["root"] = to_hex(tree.root)
    bundle["proof"] = [to_hex(node) for node in tree.proof(0)]


@pytest.mark.parametrize(
    ("tamper", "qilian_failed"),
    [
        (tamper_record, {"record_hash", "merkle_proof", "onchain_root", "verify_entry"}),
        (tamper_salt, {"record_hash", "merkle_proof", "onchain_root", "verify_entry"}),
        (tamper_proof, {"merkle_proof", "onchain_root", "verify_entry"}),
        (tamper_root, {"merkle_proof", "onchain_root"}),
        (forge, {"onchain_root", "verify_entry"}),
    ],
    ids=["record", "salt", "proof", "root", "forged-consistent-bundle"],
)
def test_a_tampered_bundle_fails_with_every_tool(
    stack: Stack, proofs, work: Path, tamper, qilian_failed
):
    genuine = with_proof(proofs)
    assert holding(run_doc_commands(stack, work, genuine)) == dict.fromkeys(WAYS, True)

    bundle = json.loads(json.dumps(genuine))
    tamper(bundle)
    lines = run_doc_commands(stack, work, bundle)
    assert holding(lines) == dict.fromkeys(WAYS, False), lines

    code, report = qilian_verify(stack, write(work, "tampered.json", bundle))
    assert code == 1
    assert report["ok"] is False
    failed = {s["name"] for s in report["bundles"][0]["steps"] if s["status"] == "failed"}
    assert failed == qilian_failed, json.dumps(report, indent=1)


def test_qilian_verify_follows_prev_and_fails_a_broken_history(stack: Stack, proofs, work: Path):
    (_, bundles), (_, others) = proofs.items()
    first, second, third = (write(work, f"b{i}.json", b) for i, b in enumerate(bundles))
    code, report = qilian_verify(stack, first, third)
    assert code == 1  # seq 2 missing: the chain cannot be followed
    assert all(b["ok"] for b in report["bundles"])
    assert report["histories"][0]["ok"] is False

    # a genuine anchored record of another receivable does not continue this one's history
    impostor = json.loads(json.dumps(others[1]))
    code, report = qilian_verify(stack, first, second, third, write(work, "o.json", impostor))
    assert code == 0  # two receivables, each consistent
    assert len(report["histories"]) == 1

    # one file holding the ledger's whole receivable response is accepted as it is
    listing = {"receivable_id": bundles[0]["record"]["receivable_id"], "all_anchored": True}
    listing["events"] = [{"seq": b["record"]["seq"], "bundle": b} for b in bundles]
    code, report = qilian_verify(stack, write(work, "receivable.json", listing))
    assert code == 0
    assert [b["seq"] for b in report["bundles"]] == [1, 2, 3]


def test_qilian_verify_fails_on_the_wrong_chain_or_contract(stack: Stack, proofs, work: Path):
    bundle = with_proof(proofs)
    path = write(work, "bundle.json", bundle)
    env_chain = subprocess.run(
        [
            str(BIN / "qilian"),
            "verify",
            str(path),
            "--rpc-url",
            stack.anvil.rpc_url,
            "--contract",
            "0x" + "22" * 20,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert env_chain.returncode == 1
    steps = {s["name"]: s["status"] for s in json.loads(env_chain.stdout)["bundles"][0]["steps"]}
    assert steps["contract"] == "failed"

    code, report = qilian_verify(stack, write(work, "other-chain.json", dict(bundle, chain_id=1)))
    assert code == 1
    assert report["bundles"][0]["steps"][5] == {
        "name": "chain_id",
        "status": "failed",
        "detail": f"RPC endpoint chain id {bundle['chain_id']}; bundle says 1",
    }

    unreachable = subprocess.run(
        [
            str(BIN / "qilian"),
            "verify",
            str(path),
            "--rpc-url",
            "http://127.0.0.1:1",
            "--json",
            "--timeout",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert unreachable.returncode == 1
    assert json.loads(unreachable.stdout)["rpc_chain_id"] is None
