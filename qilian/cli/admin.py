"""``qilian admin``: the operator's commands for organisations, credentials, people, signing keys
and the audit log. Each runs in one transaction against ``QILIAN_DATABASE_URL`` and is audited
as the ``system`` actor."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from qilian.kit import db
from qilian.kit.errors import QilianError
from qilian.kit.settings import get_settings

app = typer.Typer(help="Operator commands: organisations, credentials, keys, audit log.")

T = TypeVar("T")


def _run(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def main() -> T:
        try:
            async with db.transaction() as session:
                return await work(session)
        finally:
            await db.dispose_engine()

    try:
        return asyncio.run(main())
    except QilianError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None


def _echo(document: dict[str, Any]) -> None:
    typer.echo(json.dumps(document, ensure_ascii=False, indent=2, default=str))


@app.command("create-organization")
def create_organization(
    name: Annotated[str, typer.Argument(help="legal name")],
    role: Annotated[str, typer.Option(help="supplier, core_firm, bank, guarantor, auditor, …")],
    tax_id: Annotated[str, typer.Option(help="USCC (checked) or another scheme's id")],
    tax_scheme: Annotated[str, typer.Option()] = "CN-USCC",
    cluster: Annotated[str | None, typer.Option(help="pv, lithium, alloy, chemicals, bio")] = None,
    signing_address: Annotated[str | None, typer.Option()] = None,
    green: Annotated[bool, typer.Option()] = False,
    with_client: Annotated[bool, typer.Option(help="also issue API client credentials")] = False,
) -> None:
    """Register an organisation (any role, operators included)."""
    from services.api.audit import service as audit
    from services.api.auth import service as auth_service
    from services.api.organizations import directory
    from services.api.organizations.schemas import OrganizationCreate

    try:
        data = OrganizationCreate.model_validate(
            {
                "name": name,
                "role": role,
                "tax_id": tax_id,
                "tax_scheme": tax_scheme,
                "cluster": cluster,
                "signing_address": signing_address,
                "green": green,
            }
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None

    async def work(session: AsyncSession) -> dict[str, Any]:
        org = await directory.register(session, audit.SYSTEM, data)
        out: dict[str, Any] = {"id": org.id, "name": org.name, "role": str(org.role)}
        if with_client:
            issued = await auth_service.issue_client(session, audit.SYSTEM, org.id)
            out |= {"client_id": issued.client_id, "client_secret": issued.client_secret}
        return out

    _echo(_run(work))


@app.command("issue-client")
def issue_client(organization_id: str) -> None:
    """New API client credentials for an organisation; the secret is printed this once."""
    from services.api.audit import service as audit
    from services.api.auth import service as auth_service

    async def work(session: AsyncSession) -> dict[str, Any]:
        issued = await auth_service.issue_client(session, audit.SYSTEM, organization_id)
        return {"client_id": issued.client_id, "client_secret": issued.client_secret}

    _echo(_run(work))


@app.command("create-user")
def create_user(
    organization_id: str,
    username: str,
    display_name: Annotated[str | None, typer.Option()] = None,
) -> None:
    """A person who logs in to the web pages; the password is read from QILIAN_ADMIN_PASSWORD or
    asked for (never an argument, so it stays out of shell history)."""
    from services.api.audit import service as audit
    from services.api.auth import service as auth_service

    password = os.environ.get("QILIAN_ADMIN_PASSWORD") or typer.prompt(
        "password", hide_input=True, confirmation_prompt=True
    )

    async def work(session: AsyncSession) -> dict[str, Any]:
        user = await auth_service.create_user(
            session, audit.SYSTEM, organization_id, username, password, display_name
        )
        return {"id": user.id, "username": user.username, "organization_id": organization_id}

    _echo(_run(work))


@app.command("rotate-signing-key")
def rotate_signing_key() -> None:
    """A new token signing key signs from now on; old keys keep verifying, and those superseded
    longer ago than a token lives are retired."""
    from services.api.audit import service as audit
    from services.api.auth import keys
    from services.api.auth.settings import get_auth_settings

    async def work(session: AsyncSession) -> dict[str, Any]:
        rotation = await keys.rotate(
            session, get_settings().secret_key, get_auth_settings().access_token_seconds
        )
        await audit.append(
            session,
            audit.SYSTEM,
            "signing_key.rotated",
            object_type="signing_key",
            object_id=rotation.new_kid,
            details={"retired": rotation.retired},
        )
        return {"kid": rotation.new_kid, "retired": rotation.retired}

    _echo(_run(work))


@app.command("retire-signing-key")
def retire_signing_key(kid: str) -> None:
    """Stop verifying tokens signed by this key at once (a compromised key)."""
    from services.api.audit import service as audit
    from services.api.auth import keys

    async def work(session: AsyncSession) -> int:
        count = await keys.retire(session, [kid])
        if count:
            await audit.append(
                session,
                audit.SYSTEM,
                "signing_key.retired",
                object_type="signing_key",
                object_id=kid,
            )
        return count

    if not _run(work):
        typer.echo(f"no live signing key {kid}", err=True)
        raise typer.Exit(1)
    typer.echo(f"retired {kid}")


@app.command("verify-audit")
def verify_audit() -> None:
    """Recompute the audit log's hash chain and compare it with every anchored checkpoint;
    exit 1 naming the first row that was altered or the checkpoint the log no longer reaches."""
    from services.api.audit import checkpoints
    from services.api.audit import service as audit

    async def work(session: AsyncSession) -> tuple[Any, list[checkpoints.CheckpointProblem]]:
        return await audit.verify(session), await checkpoints.verify_checkpoints(session)

    result, problems = _run(work)
    for problem in problems:
        typer.echo(
            f"checkpoint {problem.checkpoint} (audit seq {problem.audit_seq}): {problem.reason}",
            err=True,
        )
    if result.ok and not problems:
        typer.echo(f"audit log intact: {result.rows} rows, head {result.head_hash}")
        return
    if not result.ok:
        typer.echo(
            f"audit log BROKEN at seq {result.first_bad_seq}: {result.reason} "
            f"({result.rows} rows verified before it)",
            err=True,
        )
    raise typer.Exit(1)
