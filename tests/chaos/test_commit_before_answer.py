"""A write is committed before its answer leaves the api: the fault suite found clients told
``201`` for an invoice that a kill -9 of the api, just after the answer, then lost (FastAPI ends
a dependency with ``yield`` — the request's transaction — after the response unless told
otherwise). Here the answer's first byte is held until the test has looked in the database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg

from services.api.organizations.models import Role
from tests.conftest import Infra, _psycopg_dsn
from tests.integration.api_fixtures import app, dispatched
from tests.integration.auth.conftest import get_token
from tests.integration.invoices.intake_helpers import new_party

__all__ = ["app", "dispatched"]


async def test_an_upload_is_committed_before_its_201_is_sent(app: Any, migrated: Infra):
    seen: list[int] = []
    number = f"CMT-{uuid.uuid4().hex[:10]}"

    def committed() -> int:
        with psycopg.connect(_psycopg_dsn(migrated.database_url), autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM platform.invoices WHERE invoice_number = %s", (number,)
            ).fetchone()
        assert row is not None
        return int(row[0])

    async def spy(scope: Any, receive: Any, send: Any) -> None:
        async def look_then_send(message: Any) -> None:
            if message["type"] == "http.response.start" and scope["path"] == "/v1/invoices":
                seen.append(committed())
            await send(message)

        await app(scope, receive, look_then_send)

    supplier, core = await new_party(Role.supplier), await new_party(Role.core_firm)
    today = datetime.now(UTC).date()
    body = {
        "invoice_number": number,
        "issue_date": (today - timedelta(days=3)).isoformat(),
        "due_date": (today + timedelta(days=60)).isoformat(),
        "currency": "CNY",
        "seller": {"name": supplier.name, "tax_id": supplier.tax_id},
        "buyer": {"name": core.name, "tax_id": core.tax_id},
        "total_amount": "100.00",
        "payable_amount": "100.00",
    }
    transport = httpx.ASGITransport(app=spy, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="https://test") as http:
        token = await get_token(http, supplier.org)
        answer = await http.post(
            "/v1/invoices", json=body, headers={"Authorization": f"Bearer {token}"}
        )
    assert answer.status_code == 201, answer.text
    assert seen == [1], "the 201 left before the invoice was committed"
