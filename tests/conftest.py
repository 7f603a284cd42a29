"""Session fixtures shared by every test layer: real PostgreSQL, a real broker and a real chain.

- PostgreSQL: the server named by ``QILIAN_TEST_DATABASE_URL`` (any database URL on it; a fresh
  database is created per session and dropped after), else an embedded server under a temp dir.
- Broker: ``QILIAN_TEST_BROKER_URL`` (e.g. RabbitMQ), else kombu's SQLAlchemy transport on a fresh
  database of the same PostgreSQL (the embedded default).
- anvil: started by the session on a free port.
The settings of the code under test point at these through ``QILIAN_*`` variables.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from qilian.kit.anvil import Anvil
from qilian.kit.settings import get_settings

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Infra:
    database_url: str  # postgresql+asyncpg://… of this session's database
    broker_url: str
    admin_url: str  # a psycopg URL to the server's maintenance database
    task_queue: str  # this session's own queue: sessions sharing a broker never steal tasks

    def env(self, rpc_url: str) -> dict[str, str]:
        return {
            "QILIAN_ENV": "test",
            "QILIAN_DATABASE_URL": self.database_url,
            "QILIAN_BROKER_URL": self.broker_url,
            "QILIAN_RPC_URL": rpc_url,
            "QILIAN_TASK_QUEUE": self.task_queue,
        }


def _psycopg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def create_database(admin_url: str, name: str) -> None:
    with psycopg.connect(_psycopg_dsn(admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(_psycopg_dsn(admin_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A maintenance URL (asyncpg flavour) of the server the session uses."""
    configured = os.environ.get("QILIAN_TEST_DATABASE_URL")
    if configured:
        url = make_url(configured).set(drivername="postgresql+asyncpg", database="postgres")
        yield url.render_as_string(hide_password=False)
        return
    from qilian.cli import embedded

    # not under pytest's basetemp: a concurrent pytest run may rotate that away
    root = Path(tempfile.mkdtemp(prefix="qilian-test-pg-"))
    pg = embedded.start(root / "data")
    try:
        yield pg.url("postgres")
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def infra(postgres_server: str) -> Iterator[Infra]:
    suffix = uuid.uuid4().hex[:10]
    app_db, broker_db = f"qilian_test_{suffix}", f"qilian_test_broker_{suffix}"
    create_database(postgres_server, app_db)
    base = make_url(postgres_server)
    database_url = base.set(database=app_db).render_as_string(hide_password=False)
    broker_url = os.environ.get("QILIAN_TEST_BROKER_URL")
    if not broker_url:
        create_database(postgres_server, broker_db)
        broker_url = "sqla+" + base.set(
            drivername="postgresql+psycopg", database=broker_db
        ).render_as_string(hide_password=False)
    try:
        yield Infra(database_url, broker_url, postgres_server, f"qilian-test-{suffix}")
    finally:
        drop_database(postgres_server, app_db)
        drop_database(postgres_server, broker_db)


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    """A throwaway anvil on a free port for the whole test session."""
    with Anvil() as chain:
        yield chain


@pytest.fixture(scope="session")
def migrated(infra: Infra, anvil: Anvil) -> Iterator[Infra]:
    """The session database at head, with the contracts deployed; settings point at it."""
    from qilian.cli.main import migrate_database

    saved = {key: os.environ.get(key) for key in infra.env(anvil.rpc_url)}
    os.environ.update(infra.env(anvil.rpc_url))
    get_settings.cache_clear()
    migrate_database(infra.database_url)
    asyncio.run(_deploy())
    try:
        yield infra
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()


async def _deploy() -> None:
    from qilian.kit import db
    from services.ledger.deployments import service as deployments

    try:
        async with db.transaction() as session:
            await deployments.ensure_deployed(session, get_settings())
    finally:
        await db.dispose_engine()


@pytest.fixture
async def db_engine(migrated: Infra) -> AsyncIterator[None]:
    """Fresh engine per test on the test's loop; disposed after."""
    from qilian.kit import db

    await db.dispose_engine()
    yield
    await db.dispose_engine()
