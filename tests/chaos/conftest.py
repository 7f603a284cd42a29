"""Fault injection against the anchoring pipeline as it runs in production: a Celery worker and beat
as separate processes, on the session's PostgreSQL and broker, anchoring on an anvil of the test's
own whose state file the test controls (paused, killed, restarted, wiped, reorganised).

Each test gets a fresh stack (``chaos_stack``), with the ledger's tables emptied first and the
session's deployment record restored after. Settings are short so that faults land between batches:
a batch closes after 0.5 s or 50 leaves, one confirmation is final (tests that need a deeper
finality ask for it), and the chain is a development chain (``QILIAN_ENV=development``) so that a
wiped contract is redeployed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from web3 import Web3

from qilian.kit import db, outbox
from qilian.kit.anvil import Anvil
from tests.conftest import Infra, _psycopg_dsn
from tests.e2e.conftest import BIN, Process, wait_for

__all__ = ["ChaosStack", "Process", "wait_for"]

# the registry's operations too: other tests' registrations, on another chain, would otherwise be
# "lost" to this stack's chain and sent again by the registry's reconciliation
LEDGER_TABLES = (
    "ledger.records, ledger.batches, ledger.accounts, ledger.event_inbox,"
    " ledger.registry_operations"
)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chaos: kills, pauses, wipes or reorganises a dependency of a running stack"
    )


def event_payload(receivable_id: str, seq: int) -> dict[str, Any]:
    """A valid ``receivable.event`` payload (see ``service.validate_payload``)."""
    return {
        "receivable_id": receivable_id,
        "seq": seq,
        "type": "created" if seq == 1 else "confirmed",
        "at": "2026-11-29T06:00:00.000000Z",
        "actor": "org_chaos",
        "data": {"amount": "1000.00", "currency": "CNY", "n": seq},
    }


@dataclass(repr=False)  # no environment dump in assertion messages
class ChaosStack:
    """A worker, a beat and an anvil (with a state file), plus the handles the tests pull."""

    infra: Infra
    env: dict[str, str]
    logs: Path
    anvil: Anvil
    processes: dict[str, Process] = field(default_factory=dict)
    emitted: int = 0
    _receivable: int = 0

    # database ------------------------------------------------------------------------------

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(_psycopg_dsn(self.infra.database_url), autocommit=True) as conn:
            return list(conn.execute(sql, params).fetchall())

    def scalar(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        return self.rows(sql, params)[0][0]

    def emit(self, receivables: int, events_each: int = 1) -> list[str]:
        """Commit ``receivables × events_each`` events to the outbox, one transaction."""

        async def run() -> list[str]:
            ids: list[str] = []
            try:
                async with db.transaction() as session:
                    for _ in range(receivables):
                        self._receivable += 1
                        rid = f"rcv_chaos_{os.getpid()}_{self._receivable:07d}"
                        for seq in range(1, events_each + 1):
                            payload = event_payload(rid, seq)
                            ids.append(await outbox.emit(session, "receivable.event", payload))
            finally:
                await db.dispose_engine()
            return ids

        ids = asyncio.run(run())
        self.emitted += len(ids)
        return ids

    def count(self, where: str) -> int:
        return int(self.scalar(f"SELECT count(*) FROM ledger.batches WHERE {where}"))

    def all_anchored(self, status: tuple[str, ...] = ("anchored", "final")) -> bool:
        """Every emitted event is a record in a batch of one of ``status``."""
        done = self.scalar(
            "SELECT count(*) FROM ledger.records r JOIN ledger.batches b ON b.id = r.batch_id"
            " WHERE b.status = ANY(%(s)s) AND r.receivable_id <> 'audit-log'",
            {"s": list(status)},
        )
        open_ = self.count("status IN ('pending', 'sent')")
        return int(done) == self.emitted and open_ == 0

    def wait_all(self, timeout: float, status: tuple[str, ...] = ("anchored", "final")) -> None:
        wait_for(lambda: self.all_anchored(status), timeout, f"all events in {status} batches")

    # chain ---------------------------------------------------------------------------------

    @property
    def w3(self) -> Web3:
        return Web3(Web3.HTTPProvider(self.anvil.rpc_url, request_kwargs={"timeout": 10}))

    def rpc(self, method: str, *params: Any) -> Any:
        response = self.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
        assert "error" not in response, response
        return response["result"]

    def anchor_address(self) -> str:
        return str(
            self.scalar(
                "SELECT address FROM ledger.deployments"
                " WHERE chain_id = 31337 AND name = 'ReceivableAnchor'"
            )
        )

    def anvil_signal(self, sig: int) -> None:
        assert self.anvil.process is not None
        os.killpg(self.anvil.process.pid, sig)

    def kill_anvil(self) -> None:
        assert self.anvil.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.anvil.process.pid, signal.SIGKILL)
        self.anvil.process.wait()

    def restart_anvil(self) -> None:
        """A new anvil on the same port and state file (a missing file: an empty chain)."""
        self.anvil = Anvil(
            port=self.anvil.port,
            state_file=self.anvil.state_file,
            state_interval=self.anvil.state_interval,
            block_time=self.anvil.block_time,
            log_file=self.anvil.log_file,
        )
        deadline = time.monotonic() + 30
        while True:  # the port may linger for a moment after a kill
            try:
                self.anvil.start()
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # processes -----------------------------------------------------------------------------

    def start(self, name: str) -> None:
        self.processes[name].start()

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()
        if self.anvil.process is not None and self.anvil.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.anvil.process.pid, signal.SIGCONT)
        self.anvil.stop()


def _clean(infra: Infra) -> None:
    with psycopg.connect(_psycopg_dsn(infra.database_url), autocommit=True) as conn:
        # the audit checkpoints restart with the ledger's records: their stream's seq 1 must be
        # the first the emptied ledger sees, or its next checkpoint waits for a lost predecessor
        conn.execute(f"TRUNCATE platform.outbox, platform.audit_checkpoints, {LEDGER_TABLES}")


def _deployments(infra: Infra) -> list[tuple[Any, ...]]:
    with psycopg.connect(_psycopg_dsn(infra.database_url), autocommit=True) as conn:
        return list(conn.execute("SELECT chain_id, name, address, tx_hash FROM ledger.deployments"))


def _restore_deployments(infra: Infra, saved: list[tuple[Any, ...]]) -> None:
    with psycopg.connect(_psycopg_dsn(infra.database_url), autocommit=True) as conn:
        conn.execute("DELETE FROM ledger.deployments")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO ledger.deployments (chain_id, name, address, tx_hash)"
                " VALUES (%s, %s, %s, %s)",
                saved,
            )


StackFactory = Callable[..., ChaosStack]


@pytest.fixture
def chaos_stack(migrated: Infra, request: pytest.FixtureRequest) -> Iterator[StackFactory]:
    """Start a stack with ``chaos_stack(confirmations=…, block_time=…, **env)``; stopped after.

    Logs and the chain's state go to a temporary directory of their own (not pytest's basetemp,
    which a concurrent pytest run may rotate away), removed after a pass and kept after a failure.
    """
    started: list[ChaosStack] = []
    saved = _deployments(migrated)

    def start(confirmations: int = 1, block_time: float | None = None, **extra: str) -> ChaosStack:
        logs = Path(tempfile.mkdtemp(prefix="qilian-chaos-"))
        _clean(migrated)
        chain = Anvil(
            state_file=logs / "chain-state.json",
            state_interval=1,
            block_time=block_time,
            log_file=logs / "anvil.log",
        )
        chain.start()
        env = {
            **os.environ,
            **migrated.env(chain.rpc_url),
            "QILIAN_ENV": "development",  # a wiped contract is redeployed (development only)
            "QILIAN_BATCH_MAX_WAIT_SECONDS": "0.5",
            "QILIAN_BATCH_MAX_LEAVES": "50",
            "QILIAN_CONFIRMATIONS": str(confirmations),
            "QILIAN_FINALITY": "depth",
            "QILIAN_RECEIPT_WAIT_SECONDS": "2",
            "QILIAN_OUTBOX_REDELIVERY_SECONDS": "3",
            "QILIAN_OUTBOX_BATCH_SIZE": "200",
            # no audit checkpoints: the invariants count exactly the events the test emitted
            "QILIAN_AUDIT_CHECKPOINT_SECONDS": "0",
            "QILIAN_RELAY_INTERVAL_SECONDS": "0.5",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
        env.pop("QILIAN_ANCHOR_ADDRESS", None)
        env.pop("QILIAN_REGISTRY_ADDRESS", None)
        stack = ChaosStack(migrated, env, logs, chain)
        started.append(stack)
        subprocess.run(
            [str(BIN / "qilian"), "deploy-contracts"], env=env, check=True, capture_output=True
        )
        celery = [str(BIN / "celery"), "-A", "services.worker.app"]
        for name, command in {
            "worker": [*celery, "worker", "--loglevel", "INFO", "--concurrency", "2"],
            "beat": [*celery, "beat", "--loglevel", "INFO", "-s", str(logs / "beat-schedule")],
        }.items():
            stack.processes[name] = Process(name, command, env, logs / f"{name}.log")
            stack.start(name)
        wait_for(lambda: "ready" in stack.log("worker"), 60, "the worker to be ready")
        return stack

    try:
        yield start
    finally:
        for stack in started:
            stack.stop()
        _restore_deployments(migrated, saved)
        for stack in started:
            if request.node.stash.get(FAILED, True):
                print(f"chaos stack logs kept in {stack.logs}")
            else:
                shutil.rmtree(stack.logs, ignore_errors=True)
