"""Fixtures for identity tests: the API app on the session database, an HTTPS ASGI client, and
organisations of every role with client credentials (tax ids in a test scheme, never colliding)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest

from qilian.kit import db
from qilian.kit.settings import get_settings
from services.api.audit import service as audit
from services.api.auth import ratelimit
from services.api.auth import service as auth_service
from services.api.auth.settings import AuthSettings
from services.api.main import create_app
from services.api.organizations import service as org_service
from services.api.organizations.models import Cluster, OrganizationBase, Role

# generous limits so that tests sharing 127.0.0.1 never meet them; rate-limit tests lower them
RELAXED = AuthSettings(
    token_per_ip=100_000,
    token_per_client=100_000,
    login_per_ip=100_000,
    writes_per_principal=100_000,
    writes_per_ip=100_000,
)


@dataclass(frozen=True)
class Org:
    id: str
    role: Role
    client_id: str
    client_secret: str


@pytest.fixture
async def app(db_engine):
    application = create_app(get_settings())
    application.state.auth_settings = RELAXED
    yield application
    await ratelimit.dispose()


def client_for(app, ip: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="https://test")


@pytest.fixture
async def http(app) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as client:
        yield client


async def create_org(role: Role, name: str | None = None) -> Org:
    async with db.transaction() as session:
        org = await org_service.register(
            session,
            OrganizationBase(
                name=name or f"{role.value} {uuid.uuid4().hex[:6]}",
                role=role,
                tax_id=uuid.uuid4().hex,
                tax_scheme="TEST",
                cluster=Cluster.pv if role == Role.core_firm else None,
            ),
        )
        issued = await auth_service.issue_client(session, audit.SYSTEM, org.id)
    return Org(org.id, role, issued.client_id, issued.client_secret)


MakeOrg = Callable[..., Awaitable[Org]]


@pytest.fixture
def make_org() -> MakeOrg:
    return create_org


async def get_token(http: httpx.AsyncClient, org: Org, **extra: str) -> str:
    response = await http.post(
        "/v1/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": org.client_id,
            "client_secret": org.client_secret,
            **extra,
        },
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def orgs(db_engine) -> dict[Role, Org]:
    """One organisation of every role."""
    return {role: await create_org(role) for role in Role}
