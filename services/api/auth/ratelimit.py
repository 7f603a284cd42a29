"""Fixed-window rate limits counted in PostgreSQL, so every API replica shares one count.

Each hit is one ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` on its own short transaction,
never the request's (which would hold the row lock until it commits), from a small pool of its
own: a request that already holds a connection of the main pool must never wait for a second one
from the same pool, or enough concurrent requests would starve each other.
A bucket over its limit answers 429 with ``Retry-After`` set to the end of the window.

The count is shielded from the request's cancellation: a transaction cut off between its upsert
and its commit would leave its connection idle in transaction, holding the bucket's row lock, and
every later request of that bucket (for the token endpoint: every client behind one address)
would queue behind it. As a backstop the counters' connections end a transaction left idle for
``_IDLE_MS`` and wait at most ``_LOCK_MS`` for a bucket's row; a count that cannot be taken in
that time lets the request through and logs it — the limiter protects the service, it must not be
what stops it (ADR 0020).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from qilian.kit import db
from services.api.auth.errors import RateLimited
from services.api.auth.models import RateLimitCounter

log = structlog.get_logger(__name__)

_SWEEP_PROBABILITY = 0.01
_IDLE_MS = 5_000
_LOCK_MS = 2_000
_LOCK_NOT_AVAILABLE = "55P03"
_engines: dict[int, tuple[asyncio.AbstractEventLoop, AsyncEngine]] = {}


def _engine() -> AsyncEngine:
    """The counters' own pool, one per event loop (tests run several loops in one process)."""
    loop = asyncio.get_running_loop()
    entry = _engines.get(id(loop))
    if entry is None or entry[0] is not loop:
        engine = db.create_engine(
            pool_size=2,
            max_overflow=8,
            pool_timeout=10,
            connect_args={
                "server_settings": {
                    "application_name": "qilian-ratelimit",
                    "idle_in_transaction_session_timeout": str(_IDLE_MS),
                    "lock_timeout": str(_LOCK_MS),
                }
            },
        )
        entry = _engines[id(loop)] = (loop, engine)
    return entry[1]


async def dispose() -> None:
    for _, engine in list(_engines.values()):
        await engine.dispose()
    _engines.clear()


@dataclass(frozen=True)
class Limit:
    bucket: str  # e.g. "token:ip:203.0.113.9"
    limit: int
    window_seconds: int


def window_start(now: datetime, window_seconds: int) -> datetime:
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % window_seconds, UTC)


async def hit(*limits: Limit) -> None:
    """Count one request against every bucket; 429 if any is over its limit."""
    counting = asyncio.ensure_future(_count(limits))
    counting.add_done_callback(_consume)  # a cancelled caller never reads the outcome
    try:
        worst = await asyncio.shield(counting)
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
            raise
        log.warning("rate_limit_count_skipped", buckets=[item.bucket for item in limits])
        return
    if worst is not None:
        raise RateLimited(worst[0], worst[1])


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def _count(limits: tuple[Limit, ...]) -> tuple[int, str] | None:
    """One transaction: every bucket upserted in one order; the worst ``Retry-After``."""
    now = datetime.now(UTC)
    worst: tuple[int, str] | None = None
    async with _engine().begin() as conn:
        for item in sorted(limits, key=lambda x: x.bucket):  # one lock order: no deadlock
            start = window_start(now, item.window_seconds)
            stmt = (
                insert(RateLimitCounter)
                .values(bucket=item.bucket[:200], window_start=start, hits=1)
                .on_conflict_do_update(
                    index_elements=["bucket", "window_start"],
                    set_={"hits": RateLimitCounter.__table__.c.hits + 1},  # type: ignore[attr-defined]
                )
                .returning(RateLimitCounter.__table__.c.hits)  # type: ignore[attr-defined]
            )
            count = (await conn.execute(stmt)).scalar_one()
            if count > item.limit:
                retry = max(1, int((start - now).total_seconds()) + item.window_seconds)
                if worst is None or retry > worst[0]:
                    worst = (retry, ":".join(item.bucket.split(":")[:2]))
        if random.random() < _SWEEP_PROBABILITY:
            await conn.execute(
                delete(RateLimitCounter).where(
                    col(RateLimitCounter.window_start) < now - timedelta(hours=1)
                )
            )
    return worst
