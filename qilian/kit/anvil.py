"""Run a local anvil chain from the pinned npm package in ``contracts/node_modules``.

Used by ``qilian up`` (persistent state under ``var/``) and by the test session (a throwaway chain
on a free port). anvil is bound to 127.0.0.1 only; it is stopped with SIGTERM so that its
``--state`` file is written.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_BIN = REPO_ROOT / "contracts" / "node_modules" / ".bin"

# anvil's first default account (mnemonic "test test … junk"): a development key, public by design.
DEV_PRIVATE_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEV_CHAIN_ID = 31337


class ToolMissingError(RuntimeError):
    """A binary from the contracts/ npm packages is not installed (run ``make install``)."""


def tool_path(name: str) -> str:
    """Path of ``anvil`` or ``cast`` from contracts/node_modules, else from PATH.

    The native binary of the platform package is preferred over the npm ``bin`` wrapper (a node
    script), so that signals reach the tool itself.
    """
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "")
    system = platform.system().lower()
    native = NODE_BIN.parent / "@foundry-rs" / f"{name}-{system}-{arch}" / "bin" / name
    if native.exists():
        return str(native)
    local = NODE_BIN / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise ToolMissingError(f"{name} not found: run `make install` (npm ci in contracts/)")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def rpc_ready(rpc_url: str, timeout: float = 1.0) -> bool:
    try:
        response = httpx.post(
            rpc_url,
            json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
            timeout=timeout,
        )
        return response.status_code == 200 and "result" in response.json()
    except (httpx.HTTPError, ValueError):
        return False


@dataclass
class Anvil:
    """One anvil process. ``state_file`` makes the chain survive restarts."""

    port: int = field(default_factory=free_port)
    state_file: Path | None = None
    state_interval: int = 1
    block_time: float | None = None
    log_file: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [
            tool_path("anvil"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--chain-id",
            str(DEV_CHAIN_ID),
            "--silent",
        ]
        if self.state_file is not None:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            cmd += ["--state", str(self.state_file), "--state-interval", str(self.state_interval)]
        if self.block_time is not None:
            cmd += ["--block-time", str(self.block_time)]
        return cmd

    def start(self, wait: float = 30.0) -> Anvil:
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(  # noqa: S603
            self.command(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"anvil exited with {self.process.returncode}")
            if rpc_ready(self.rpc_url):
                return self
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"anvil did not answer on {self.rpc_url} within {wait}s")

    def stop(self, timeout: float = 10.0) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
