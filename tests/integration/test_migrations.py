"""An empty database migrates to head and matches the models exactly (no drift)."""

import asyncio
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import make_url

from migrations.models import include_name, metadata
from qilian.cli.main import migrate_database
from qilian.kit.db import create_engine
from qilian.kit.settings import get_settings
from tests.conftest import create_database, drop_database


@pytest.fixture
def empty_database(infra):
    name = f"qilian_mig_{uuid.uuid4().hex[:8]}"
    create_database(infra.admin_url, name)
    yield make_url(infra.admin_url).set(database=name).render_as_string(hide_password=False)
    drop_database(infra.admin_url, name)


async def test_empty_database_migrates_to_head_without_drift(empty_database):
    await asyncio.to_thread(migrate_database, empty_database)
    engine = create_engine(get_settings().model_copy(update={"database_url": empty_database}))
    try:
        async with engine.connect() as conn:

            def diff(sync_conn):
                context = MigrationContext.configure(
                    sync_conn,
                    opts={
                        "include_schemas": True,
                        "include_name": include_name,
                        "compare_type": True,
                        "compare_server_default": True,
                    },
                )
                return compare_metadata(context, metadata)

            changes = await conn.run_sync(diff)
            version = (
                await conn.execute(text("SELECT version_num FROM platform.alembic_version"))
            ).scalar()
    finally:
        await engine.dispose()
    assert changes == []
    assert version is not None


def test_migrating_twice_is_harmless(empty_database):
    migrate_database(empty_database)
    migrate_database(empty_database)
