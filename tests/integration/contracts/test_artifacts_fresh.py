"""The committed artefacts in contracts/artifacts are exactly what the pinned solc makes of the
sources, and ``compile.mjs --check`` notices when they are not."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
COMPILE = REPO_ROOT / "contracts" / "compile.mjs"
ARTIFACTS = REPO_ROOT / "contracts" / "artifacts"


def run_check(*extra: str) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node is not None, "node is required to check the contract artefacts"
    return subprocess.run(
        [node, str(COMPILE), "--check", *extra],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_committed_artifacts_match_a_fresh_compilation():
    done = run_check()
    assert done.returncode == 0, done.stderr


@pytest.fixture
def artifacts_copy(tmp_path):
    copy = tmp_path / "artifacts"
    shutil.copytree(ARTIFACTS, copy)
    return copy


def test_check_detects_a_modified_bytecode(artifacts_copy):
    path = artifacts_copy / "ReceivableAnchor.json"
    artifact = json.loads(path.read_text())
    last = artifact["bytecode"][-1]
    artifact["bytecode"] = artifact["bytecode"][:-1] + ("0" if last != "0" else "1")
    path.write_text(json.dumps(artifact, indent=2, sort_keys=True) + "\n")

    done = run_check("--artifacts-dir", str(artifacts_copy))
    assert done.returncode == 1
    assert "ReceivableAnchor.json: differs in bytecode" in done.stderr
    assert "FinancingRegistry" not in done.stderr


def test_check_detects_a_missing_artifact(artifacts_copy):
    (artifacts_copy / "FinancingRegistry.json").unlink()
    done = run_check("--artifacts-dir", str(artifacts_copy))
    assert done.returncode == 1
    assert "FinancingRegistry.json: missing" in done.stderr


def test_check_passes_on_an_exact_copy(artifacts_copy):
    done = run_check("--artifacts-dir", str(artifacts_copy))
    assert done.returncode == 0, done.stderr


def test_artifacts_hold_no_path_of_the_build_machine():
    for path in ARTIFACTS.glob("*.json"):
        text = path.read_text()
        assert str(REPO_ROOT) not in text
        assert "node_modules" not in text
