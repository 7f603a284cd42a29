"""`qilian up` (behind `make run`): everything comes up ready, Ctrl-C leaves no process behind,
and a second run finds the data of the first."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import psutil
import pytest

from qilian.kit.anvil import free_port
from tests.e2e.conftest import status, wait_for

pytestmark = pytest.mark.e2e

QILIAN = str(Path(sys.executable).parent / "qilian")


def run_until_ready(var_dir: Path, ports: dict[str, int], log: Path) -> subprocess.Popen[bytes]:
    command = [
        QILIAN, "up", "--var-dir", str(var_dir),
        "--api-port", str(ports["api"]),
        "--ledger-port", str(ports["ledger"]),
        "--rpc-port", str(ports["rpc"]),
    ]  # fmt: skip
    with open(log, "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    api, ledger = f"http://127.0.0.1:{ports['api']}", f"http://127.0.0.1:{ports['ledger']}"
    try:
        wait_for(
            lambda: status(f"{api}/readyz") == 200 and status(f"{ledger}/readyz") == 200,
            240,
            "qilian up to be ready",
        )
        wait_for(lambda: b"Qilian is ready." in log.read_bytes(), 30, "the ready banner")
    except AssertionError:
        process.send_signal(signal.SIGINT)
        process.wait(60)
        lines = log.read_text(errors="replace").splitlines()
        ours = [line for line in lines if line.startswith("qilian |")]
        errors = [line for line in lines if "Error" in line or "error" in line]
        raise AssertionError("\n".join(ours[-30:] + errors[-30:])) from None
    return process


def descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def postmaster_pid(var_dir: Path) -> int:
    return int((var_dir / "postgres" / "postmaster.pid").read_text().split()[0])


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stop(process: subprocess.Popen[bytes], children: list[psutil.Process], log: Path) -> None:
    process.send_signal(signal.SIGINT)
    code = process.wait(90)
    tail = [line for line in log.read_text(errors="replace").splitlines() if "qilian |" in line]
    assert code == 0, "\n".join(tail[-20:])
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == [], f"left behind: {[p.pid for p in alive]}"


@pytest.fixture
def own_dir():
    """A directory outside pytest's basetemp, which a concurrent pytest run may rotate away."""
    path = Path(tempfile.mkdtemp(prefix="qilian-up-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_up_serves_everything_stops_cleanly_and_resumes_with_its_data(own_dir):
    tmp_path = own_dir
    var_dir = tmp_path / "var"
    ports = {"api": free_port(), "ledger": free_port(), "rpc": free_port()}
    log = tmp_path / "up.log"

    first = run_until_ready(var_dir, ports, log)
    credentials = json.loads((var_dir / "demo-credentials.json").read_text())
    assert credentials["api_url"] == f"http://127.0.0.1:{ports['api']}"
    assert {org["role"] for org in credentials["organizations"]} == {
        "operator", "core_firm", "supplier", "bank", "guarantor", "auditor", "regulator",
    }  # fmt: skip
    assert sorted(credentials["contracts"]) == ["FinancingRegistry", "ReceivableAnchor"]
    ready = httpx.get(f"http://127.0.0.1:{ports['ledger']}/readyz", timeout=10).json()
    assert ready["checks"] == {"database": "ok", "broker": "ok", "chain": "ok"}
    children = descendants(first.pid)
    assert len(children) >= 5  # anvil, api, ledger, worker (+ pool), beat
    postmaster = postmaster_pid(var_dir)
    stop(first, children, log)
    wait_for(lambda: not running(postmaster), 10, "PostgreSQL to stop")

    second = run_until_ready(var_dir, ports, log)
    again = json.loads((var_dir / "demo-credentials.json").read_text())
    try:
        assert again["contracts"] == credentials["contracts"]  # same chain state, no redeploy
        assert [o["id"] for o in again["organizations"]] == [
            o["id"] for o in credentials["organizations"]
        ]
        assert [o["client_secret"] for o in again["organizations"]] == [
            o["client_secret"] for o in credentials["organizations"]
        ]
    finally:
        stop(second, descendants(second.pid), log)
