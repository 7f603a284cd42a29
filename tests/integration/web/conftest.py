"""Fixtures of the web page tests: the API app on the session database (shared with the other api
domain tests), people of new organisations, and a browser-like client logged in through the login
page (cookies kept, the CSRF token read from its cookie as the pages write it into forms)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from qilian.kit import db
from services.api.audit import service as audit
from services.api.auth import service as auth_service
from services.api.organizations.models import Role
from tests.integration.api_fixtures import app, dispatched, http
from tests.integration.auth.conftest import client_for
from tests.integration.invoices.intake_helpers import Party, new_party

__all__ = ["app", "dispatched", "http"]

PASSWORD = "correct horse battery staple"


@dataclass
class Person:
    party: Party
    username: str
    client: httpx.AsyncClient

    @property
    def csrf(self) -> str:
        return self.client.cookies.get("qilian_csrf") or ""

    async def post(
        self, path: str, data: dict[str, Any] | None = None, **kw: Any
    ) -> httpx.Response:
        """A form post as the page sends it (the CSRF token as a form field)."""
        return await self.client.post(path, data={"csrf_token": self.csrf, **(data or {})}, **kw)


async def add_user(organization_id: str) -> str:
    username = f"w{uuid.uuid4().hex[:12]}"
    async with db.transaction() as session:
        await auth_service.create_user(session, audit.SYSTEM, organization_id, username, PASSWORD)
    return username


async def login(client: httpx.AsyncClient, username: str) -> httpx.Response:
    return await client.post("/web/login", data={"username": username, "password": PASSWORD})


Login = Callable[..., Awaitable[Person]]


@pytest.fixture
async def person(app: Any) -> AsyncIterator[Login]:
    """``await person(Role.supplier)`` (or ``person(party=…)``): logged in through the page."""
    clients: list[httpx.AsyncClient] = []

    async def make(role: Role | None = None, *, party: Party | None = None, **kw: Any) -> Person:
        if party is None:
            assert role is not None
            party = await new_party(role, **kw)
        username = await add_user(party.org.id)
        client = client_for(app)
        clients.append(client)
        response = await login(client, username)
        assert response.status_code == 303, response.text
        return Person(party, username, client)

    yield make
    for client in clients:
        await client.aclose()


def text_of(html: str) -> str:
    """The page's text without tags or extra spaces (for assertions on what a reader sees)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def field_error(html: str, name: str) -> str | None:
    """The error shown under the field ``name`` (``<p class="error" id="{name}-error">``)."""
    found = re.search(rf'<p class="error" id="{re.escape(name)}-error"[^>]*>(.*?)</p>', html, re.S)
    return text_of(found.group(1)) if found else None
