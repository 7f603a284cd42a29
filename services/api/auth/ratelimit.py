"""Fixed-window rate limits counted in PostgreSQL, so every API replica shares one count.

Each hit is one ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` on its own short autocommit
connection (never the request's transaction, which would hold the row lock until it commits).
A bucket over its limit answers 429 with ``Retry-After`` set to the end of the window.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col

from qilian.kit import db
from services.api.auth.errors import RateLimited
from services.api.auth.models import RateLimitCounter

_SWEEP_PROBABILITY = 0.01


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
    now = datetime.now(UTC)
    worst: tuple[int, str] | None = None
    async with db.get_engine().begin() as conn:
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
    if worst is not None:
        raise RateLimited(worst[0], worst[1])
