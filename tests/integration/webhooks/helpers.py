"""Helpers of the webhook tests: organisations with a token, endpoints created over the API,
delivery passes run until the test's own messages settle, and reading messages back."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select
from sqlmodel import col

from qilian.kit import db
from services.api.organizations.models import Role
from services.api.webhooks import delivery
from services.api.webhooks.models import WebhookAttempt, WebhookMessage
from services.api.webhooks.settings import WebhookSettings
from tests.integration.auth.conftest import Org, bearer, create_org, get_token


@dataclass(frozen=True)
class Caller:
    org: Org
    headers: dict[str, str]


async def caller(http: httpx.AsyncClient, role: Role = Role.bank) -> Caller:
    org = await create_org(role)
    return Caller(org, bearer(await get_token(http, org)))


async def new_endpoint(
    http: httpx.AsyncClient, who: Caller, url: str, event_types: list[str] | None = None
) -> dict[str, Any]:
    response = await http.post(
        "/v1/webhook-endpoints",
        json={"url": url, "event_types": event_types or ["*"], "description": "test"},
        headers=who.headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def messages(**where: Any) -> list[WebhookMessage]:
    query = select(WebhookMessage).order_by(col(WebhookMessage.seq))
    for name, value in where.items():
        query = query.where(getattr(WebhookMessage, name) == value)
    async with db.transaction() as session:
        return list((await session.execute(query)).scalars())


async def attempts(message_id: str) -> list[WebhookAttempt]:
    async with db.transaction() as session:
        rows = await session.execute(
            select(WebhookAttempt)
            .where(col(WebhookAttempt.message_id) == message_id)
            .order_by(col(WebhookAttempt.attempt))
        )
        return list(rows.scalars())


async def settle(
    settings: WebhookSettings, endpoint_id: str, *, timeout: float = 15.0
) -> list[WebhookMessage]:
    """Run delivery passes until no message of the endpoint is pending; its messages."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        await delivery.dispatch_once(settings)
        rows = await messages(endpoint_id=endpoint_id)
        if all(m.state != "pending" for m in rows):
            return rows
        assert loop.time() < deadline, [(m.id, m.state, m.attempts) for m in rows]
        await asyncio.sleep(0.05)
