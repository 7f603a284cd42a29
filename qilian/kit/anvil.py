"""Run a local anvil chain from the pinned npm package in ``contracts/node_modules``.

Used by ``qilian up`` (persistent state under ``var/``) and by the test session (a throwaway chain
on a free port). anvil is bound to 127.0.0.1 only; it is stopped with SIGTERM so that its
``--state`` file is written.

anvil writes its state file in place: killed in the middle of a dump it leaves a torn JSON file,
and refuses to start on it (``failed to parse json file``) — the chain would not come back at all
(found by ``make chaos``, ``restart-anvil``). So anvil is launched through this module
(``python -m qilian.kit.anvil --state FILE -- anvil …``): a whole state file is copied to
``FILE.last-good`` first, a torn one is moved aside (``FILE.torn-<time>``) and the last good copy
put in its place, and then the launcher becomes anvil (``exec``: same process, signals reach it).
:class:`StateKeeper` refreshes the last good copy every few seconds while anvil runs. What the
chain loses by going back to that copy, the ledger's reconciliations send again
(docs/anchoring.md).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import threading
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


# the state file ------------------------------------------------------------------------------


def last_good(state_file: Path) -> Path:
    return state_file.with_name(state_file.name + ".last-good")


def _whole(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


def keep_last_good(state_file: Path) -> bool:
    """Copy the state file to its last good copy if it is whole JSON (a read that races a dump
    sees a torn file and copies nothing); atomic. Whether it copied."""
    try:
        data = state_file.read_bytes()
    except OSError:
        return False
    if not data or not _whole(data):
        return False
    target = last_good(state_file)
    # a name of its own: the launcher and a keeper thread may copy at the same moment
    partial = target.with_name(f"{target.name}.{os.getpid()}-{threading.get_ident()}.partial")
    partial.write_bytes(data)
    os.replace(partial, target)
    return True


def repair_state(state_file: Path) -> str | None:
    """Before anvil starts: keep a whole state file's copy, or put the last good copy in place of
    a torn one. What was done, when something was."""
    if not state_file.exists() or keep_last_good(state_file):
        return None
    torn = state_file.with_name(f"{state_file.name}.torn-{int(time.time())}")
    state_file.rename(torn)
    good = last_good(state_file)
    if good.exists():
        shutil.copyfile(good, state_file)
        return (
            f"anvil state {state_file} was torn (kept as {torn.name}); restored its last good copy"
        )
    return f"anvil state {state_file} was torn (kept as {torn.name}); no good copy: a new chain"


class StateKeeper(threading.Thread):
    """Refreshes the state file's last good copy every ``interval`` seconds until stopped, or
    until ``process`` (anvil) has ended."""

    def __init__(
        self,
        state_file: Path,
        interval: float = 5.0,
        process: subprocess.Popen[bytes] | None = None,
    ) -> None:
        super().__init__(name="anvil-state-keeper", daemon=True)
        self.state_file, self.interval, self.process = state_file, interval, process
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            if self.process is not None and self.process.poll() is not None:
                return
            keep_last_good(self.state_file)

    def stop(self) -> None:
        self._stop.set()


def launcher(state_file: Path) -> list[str]:
    """The prefix that launches anvil through :func:`main` (state repaired, then exec)."""
    return [sys.executable, "-m", "qilian.kit.anvil", "--state", str(state_file), "--"]


def main(argv: list[str] | None = None) -> None:
    """``--state FILE -- anvil …``: repair the state file, then become anvil."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 4 or args[0] != "--state" or args[2] != "--":
        raise SystemExit("usage: python -m qilian.kit.anvil --state FILE -- anvil [args…]")
    done = repair_state(Path(args[1]))
    if done:
        print(done, file=sys.stderr, flush=True)
    command = args[3:]
    os.execv(command[0], command)  # noqa: S606 — becomes anvil: same pid, signals reach it


@dataclass
class Anvil:
    """One anvil process. ``state_file`` makes the chain survive restarts."""

    port: int = field(default_factory=free_port)
    state_file: Path | None = None
    state_interval: int = 1
    block_time: float | None = None
    log_file: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    keeper: StateKeeper | None = None

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [
            *(launcher(self.state_file) if self.state_file is not None else []),
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
                if self.state_file is not None:
                    self.keeper = StateKeeper(self.state_file, process=self.process)
                    self.keeper.start()
                return self
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"anvil did not answer on {self.rpc_url} within {wait}s")

    def stop(self, timeout: float = 10.0) -> None:
        if self.keeper is not None:
            self.keeper.stop()
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


if __name__ == "__main__":
    main()
