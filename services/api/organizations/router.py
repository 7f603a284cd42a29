"""HTTP side of the organisation directory and of each organisation's credentials and people."""

from __future__ import annotations

from fastapi import APIRouter, status
from sqlmodel import col

from qilian.kit.errors import InvalidInput, NotFound
from services.api.auth import repository as auth_repository
from services.api.auth import service as auth_service
from services.api.auth.dependencies import CurrentPrincipal, Operator, Session
from services.api.auth.pagination import Cursor, Limit, Page, paginate
from services.api.auth.schemas import (
    ApiClientPublic,
    ClientSecretPublic,
    UserCreate,
    UserPublic,
)
from services.api.organizations import directory
from services.api.organizations.models import ApiClient, Role
from services.api.organizations.schemas import (
    OrganizationCreate,
    OrganizationDetail,
    OrganizationPublic,
)

router = APIRouter(prefix="/v1/organizations", tags=["organizations"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=OrganizationDetail)
async def register_organization(
    body: OrganizationCreate, principal: Operator, session: Session
) -> OrganizationDetail:
    """Register an organisation (operator only). The tax id is checked (USCC check character)."""
    if body.role == Role.operator:
        raise InvalidInput(
            "operators are registered with the qilian admin command, not through the API",
            errors=[{"field": "role", "in": "body", "message": "operator not allowed"}],
        )
    org = await directory.register(session, principal, body)
    return OrganizationDetail.model_validate(org, from_attributes=True)


@router.get("", response_model=Page[OrganizationPublic])
async def list_organizations(
    principal: CurrentPrincipal,
    session: Session,
    limit: Limit = 50,
    cursor: Cursor = None,
    role: Role | None = None,
) -> Page[OrganizationPublic]:
    """The directory: every organisation's name, role and cluster (no secrets)."""
    rows, next_cursor = await directory.list_organizations(session, limit, cursor, role)
    return Page[OrganizationPublic](
        items=[OrganizationPublic.model_validate(r, from_attributes=True) for r in rows],
        next_cursor=next_cursor,
    )


@router.get("/{organization_id}", response_model=OrganizationPublic)
async def get_organization(
    organization_id: str, principal: CurrentPrincipal, session: Session
) -> OrganizationPublic:
    org = await directory.get(session, organization_id)
    return OrganizationPublic.model_validate(org, from_attributes=True)


@router.post(
    "/{organization_id}/clients",
    status_code=status.HTTP_201_CREATED,
    response_model=ClientSecretPublic,
)
async def issue_client(
    organization_id: str, principal: Operator, session: Session
) -> ClientSecretPublic:
    """New API client credentials for the organisation; the secret is shown this once."""
    issued = await auth_service.issue_client(session, principal, organization_id)
    return ClientSecretPublic(**issued.__dict__)


@router.get("/{organization_id}/clients", response_model=Page[ApiClientPublic])
async def list_clients(
    organization_id: str,
    principal: CurrentPrincipal,
    session: Session,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[ApiClientPublic]:
    """The organisation's API clients: the operator's, or the caller's own organisation's."""
    org = await auth_repository.visible_organization_private(session, principal, organization_id)
    if org is None:
        raise NotFound("no such organisation")
    query = auth_repository.visible_clients(principal, organization_id)
    rows, next_cursor = await paginate(session, query, col(ApiClient.client_id), limit, cursor)
    return Page[ApiClientPublic](
        items=[ApiClientPublic.model_validate(r, from_attributes=True) for r in rows],
        next_cursor=next_cursor,
    )


@router.post("/{organization_id}/clients/{client_id}/rotate", response_model=ClientSecretPublic)
async def rotate_client(
    organization_id: str, client_id: str, principal: CurrentPrincipal, session: Session
) -> ClientSecretPublic:
    """A new secret for the client (the old one stops working); operator or the organisation."""
    issued = await auth_service.rotate_client_secret(session, principal, organization_id, client_id)
    return ClientSecretPublic(**issued.__dict__)


@router.post("/{organization_id}/clients/{client_id}/revoke", response_model=ApiClientPublic)
async def revoke_client(
    organization_id: str, client_id: str, principal: CurrentPrincipal, session: Session
) -> ApiClientPublic:
    """Revoke the client: its secret and every token it holds are refused from now on."""
    client = await auth_service.revoke_client(session, principal, organization_id, client_id)
    return ApiClientPublic.model_validate(client, from_attributes=True)


@router.post(
    "/{organization_id}/users", status_code=status.HTTP_201_CREATED, response_model=UserPublic
)
async def create_user(
    organization_id: str, body: UserCreate, principal: Operator, session: Session
) -> UserPublic:
    """A person of the organisation who logs in to the web pages (operator only)."""
    user = await auth_service.create_user(
        session, principal, organization_id, body.username, body.password, body.display_name
    )
    return UserPublic.model_validate(user, from_attributes=True)
