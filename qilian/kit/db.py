"""The database engine, sessions and the one-transaction-per-request/task rule.

``transaction()`` opens a session, commits when the block succeeds and rolls back when it raises;
service code only ``flush``es. ``session_dependency`` does the same for a FastAPI request.
Tables of every service share one ``MetaData`` with named constraints, in schemas ``platform``
(business data, owned by the api) and ``ledger`` (owned by the ledger).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import StrEnum

from sqlalchemy import MetaData, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlmodel import SQLModel

from qilian.kit.settings import Settings, get_settings

SCHEMAS = ("platform", "ledger")

metadata: MetaData = SQLModel.metadata

_engine: AsyncEngine | None = None
_sessionmaker: async_sessionmaker[AsyncSession] | None = None


def sync_url(url: str, driver: str = "psycopg") -> str:
    """The same database for a synchronous driver (Alembic offline, kombu's SQL transport)."""
    return (
        make_url(url).set(drivername=f"postgresql+{driver}").render_as_string(hide_password=False)
    )


def create_engine(settings: Settings | None = None, **kwargs: object) -> AsyncEngine:
    settings = settings or get_settings()
    options: dict[str, object] = {
        "pool_size": settings.database_pool_size,
        "pool_pre_ping": True,
        "connect_args": {"server_settings": {"application_name": settings.service_name}},
    }
    options.update(kwargs)
    return create_async_engine(settings.database_url, **options)


def get_engine() -> AsyncEngine:
    global _engine, _sessionmaker
    if _engine is None:
        _engine = create_engine()
        _sessionmaker = async_sessionmaker(_engine, expire_on_commit=False)
    return _engine


def get_sessionmaker() -> async_sessionmaker[AsyncSession]:
    get_engine()
    assert _sessionmaker is not None
    return _sessionmaker


async def dispose_engine() -> None:
    global _engine, _sessionmaker
    if _engine is not None:
        await _engine.dispose()
    _engine, _sessionmaker = None, None


def one_of(column: str, values: type[StrEnum]) -> str:
    """A CHECK constraint's text: ``column`` holds one of the enum's values."""
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


@asynccontextmanager
async def transaction() -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any error."""
    async with get_sessionmaker()() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def session_dependency() -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: the request's transaction."""
    async with transaction() as session:
        yield session


async def ping(engine: AsyncEngine | None = None) -> None:
    async with (engine or get_engine()).connect() as conn:
        await conn.execute(text("SELECT 1"))
