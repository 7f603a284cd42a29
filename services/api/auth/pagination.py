"""Keyset pagination for every list: ``?limit=`` (1…200) and an opaque ``?cursor=``.

A cursor is the last key of the previous page, base64url-encoded JSON; a query paged here must
already be scoped to what the caller may see, so a forged cursor only moves within that scope.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Integer, Select
from sqlalchemy.ext.asyncio import AsyncSession

from qilian.kit.errors import InvalidInput

MAX_LIMIT = 200
DEFAULT_LIMIT = 50

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size, at most 200")]
Cursor = Annotated[str | None, Query(max_length=500, description="next_cursor of the last page")]


class Page(BaseModel, Generic[T]):
    """One page of a list."""

    items: list[T]
    next_cursor: str | None


def encode_cursor(key: str) -> str:
    raw = json.dumps({"after": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        after = json.loads(base64.urlsafe_b64decode(padded.encode()))["after"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        after = None
    if not isinstance(after, str):
        raise InvalidInput(
            "cursor is not one this API returned",
            errors=[{"field": "cursor", "in": "query", "message": "invalid cursor"}],
        )
    return after


async def paginate(
    session: AsyncSession,
    query: Select[Any],
    key: Any,
    limit: int,
    cursor: str | None,
) -> tuple[list[Any], str | None]:
    """Rows after the cursor in ``key`` (a unique column) order, and the next page's cursor."""
    if cursor is not None:
        after: Any = decode_cursor(cursor)
        if isinstance(getattr(key, "type", None), Integer):
            try:
                after = int(after)
            except ValueError:
                raise InvalidInput("cursor is not one this API returned") from None
        query = query.where(key > after)
    result = await session.execute(query.order_by(key).limit(limit + 1))
    rows = list(result.scalars())
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(str(getattr(rows[-1], key.key)))
