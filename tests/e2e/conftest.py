"""The stack as separate processes: api, ledger, worker and beat, talking HTTP, on the session's
PostgreSQL and broker and on an anvil of their own (the tests stop and restart it)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from qilian.kit.anvil import Anvil, free_port
from tests.conftest import Infra

BIN = Path(sys.executable).parent


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def status(url: str) -> int:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.HTTPError:
        return 0


@dataclass
class Process:
    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def signal(self, sig: int) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole process group (a Celery worker and its pool children)."""
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def stop(self) -> None:
        self.signal(signal.SIGTERM)
        if self.popen is not None:
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Stack:
    api_url: str
    ledger_url: str
    anvil: Anvil
    worker_metrics_url: str
    processes: dict[str, Process] = field(default_factory=dict)

    def ready(self) -> bool:
        return (
            status(f"{self.api_url}/readyz") == 200 and status(f"{self.ledger_url}/readyz") == 200
        )


@pytest.fixture(scope="package")
def stack(
    migrated: Infra, anvil: Anvil, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("stack-logs")
    # the stack's chain: a copy of the session chain's contracts is not needed — it gets its own
    # anvil with a state file, and the ledger is pointed at the session deployment's addresses by
    # deploying again on it below.
    chain = Anvil(state_file=logs / "chain.json", state_interval=1)
    chain.start()
    api_port, ledger_port, worker_metrics_port = free_port(), free_port(), free_port()
    metrics_dir = logs / "worker-metrics"
    metrics_dir.mkdir()
    env = {
        **os.environ,
        **migrated.env(chain.rpc_url),
        "QILIAN_API_URL": f"http://127.0.0.1:{api_port}",
        "QILIAN_LEDGER_URL": f"http://127.0.0.1:{ledger_port}",
        "QILIAN_OUTBOX_REDELIVERY_SECONDS": "2",
        "QILIAN_OUTBOX_BATCH_SIZE": "50",
        "QILIAN_RELAY_INTERVAL_SECONDS": "0.5",
        "QILIAN_WORKER_METRICS_PORT": str(worker_metrics_port),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "PYTHONUNBUFFERED": "1",
    }
    subprocess.run(
        [str(BIN / "qilian"), "deploy-contracts"], env=env, check=True, capture_output=True
    )
    uvicorn = [str(BIN / "uvicorn"), "--host", "127.0.0.1", "--no-access-log"]
    celery = [str(BIN / "celery"), "-A", "services.worker.app"]
    stack = Stack(
        f"http://127.0.0.1:{api_port}",
        f"http://127.0.0.1:{ledger_port}",
        chain,
        f"http://127.0.0.1:{worker_metrics_port}/metrics",
    )
    for name, command in {
        "api": [*uvicorn, "--port", str(api_port), "services.api.main:app"],
        "ledger": [*uvicorn, "--port", str(ledger_port), "services.ledger.main:app"],
        # a node name of its own: two stacks on one broker (test sessions side by side on a shared
        # RabbitMQ) would otherwise both claim the exclusive celery@host pidbox queue
        "worker": [
            *[*celery, "worker", "--loglevel", "INFO", "--concurrency", "2"],
            *["-n", f"e2e-{uuid.uuid4().hex[:8]}@%h"],
        ],
        "beat": [*celery, "beat", "--loglevel", "INFO", "--schedule", str(logs / "beat-schedule")],
    }.items():
        stack.processes[name] = Process(name, command, env, logs / f"{name}.log")
        stack.processes[name].start()
    try:
        wait_for(stack.ready, 90, "api and ledger readiness")
        yield stack
    finally:
        for process in stack.processes.values():
            process.stop()
        chain.stop()
