"""The demo seed: an operator, a core firm per cluster, suppliers, banks, a guarantor, an auditor
and a regulator, each with API client credentials written to ``var/demo-credentials.json``.

Each organisation also gets one person (``demo-NN``) whose username and password are written beside
the client credentials. Idempotent: organisations and people are found again; an organisation
whose secret or password is not in the file gets a new one (both are stored hashed, so they
cannot be read back). Each demo core firm also gets an EIP-712 signing key (``signing_key`` in the
file, demo only) whose address is registered as the organisation's ``signing_address``: its
confirmations (确权) must be signed (``qilian sign-confirmation``).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from stdnum.cn import uscc

from qilian.kit.settings import Settings
from services.api.organizations import repository as org_repository
from services.api.organizations import service as org_service
from services.api.organizations.models import Cluster, Organization, OrganizationBase, Role


def demo_uscc(n: int) -> str:
    """A valid Unified Social Credit Code registered in Xining (region 630100)."""
    base = f"91630100MA{n:07d}"
    return base + uscc.calc_check_digit(base)


DEMO: list[tuple[str, Role, Cluster | None, bool]] = [
    ("麒麟平台运营 Qilian Platform Operations", Role.operator, None, False),
    ("青海光伏制造集团 Qinghai PV Manufacturing Group", Role.core_firm, Cluster.pv, True),
    ("西宁锂电储能有限公司 Xining Lithium Storage Co.", Role.core_firm, Cluster.lithium, True),
    ("青海合金材料股份 Qinghai Alloy Materials", Role.core_firm, Cluster.alloy, False),
    ("西宁特色化工新材料 Xining Specialty Chemicals", Role.core_firm, Cluster.chemicals, False),
    ("青海高原生物医药 Qinghai Plateau Biomedicine", Role.core_firm, Cluster.bio, True),
    ("湟水精密机械 Huangshui Precision Machining", Role.supplier, None, False),
    ("昆仑包装材料 Kunlun Packaging", Role.supplier, None, True),
    ("日月山物流 Riyueshan Logistics", Role.supplier, None, False),
    ("青海银行示范 Demo Bank of Qinghai", Role.bank, None, False),
    ("高原商业银行示范 Demo Plateau Commercial Bank", Role.bank, None, False),
    ("西宁保理示范 Demo Xining Factoring", Role.bank, None, False),
    ("青海融资担保示范 Demo Qinghai Financing Guarantee", Role.guarantor, None, False),
    ("独立审计示范 Demo Independent Auditor", Role.auditor, None, False),
    ("金融监管示范 Demo Financial Regulator", Role.regulator, None, False),
]


async def seed_demo(session: AsyncSession, credentials_file: Path) -> list[dict[str, Any]]:
    known = {org["id"]: org for org in read_credentials(credentials_file).get("organizations", [])}
    organizations = []
    for n, (name, role, cluster, green) in enumerate(DEMO, start=1):
        tax_id = demo_uscc(n)
        org = await org_repository.get_by_tax_id(session, "CN-USCC", tax_id)
        if org is None:
            org = await org_service.register(
                session,
                OrganizationBase(name=name, role=role, tax_id=tax_id, cluster=cluster, green=green),
            )
        entry = dict(known.get(org.id) or {})
        if not entry.get("client_secret"):
            client = await org_service.issue_client(session, org.id)
            entry.update(client_id=client.client_id, client_secret=client.client_secret)
        entry.update(await _demo_user(session, org.id, f"demo-{n:02d}", entry))
        signing = await _demo_signing_key(session, org, entry) if role == Role.core_firm else {}
        organizations.append(
            {
                "id": org.id,
                "name": org.name,
                "role": Role(org.role).value,
                "tax_id": org.tax_id,
                "cluster": Cluster(org.cluster).value if org.cluster else None,
                "client_id": entry["client_id"],
                "client_secret": entry["client_secret"],
                "username": entry["username"],
                "password": entry["password"],
            }
            | signing
        )
    return organizations


async def _demo_signing_key(
    session: AsyncSession, org: Organization, known: dict[str, Any]
) -> dict[str, str]:
    """The core firm's demo signing key (kept from the file, else a new one) and its address,
    registered as the organisation's ``signing_address``."""
    from services.api.receivables import signatures

    key = known.get("signing_key")
    if not isinstance(key, str) or not key:
        key = "0x" + secrets.token_hex(32)
    address = signatures.address_of(key)
    if org.signing_address != address:
        org.signing_address = address
        session.add(org)
        await session.flush()
    return {"signing_key": key, "signing_address": address}


async def _demo_user(
    session: AsyncSession, organization_id: str, username: str, known: dict[str, Any]
) -> dict[str, str]:
    """One person per demo organisation; a password not in the file is set anew."""
    from services.api.audit import service as audit
    from services.api.auth import repository as auth_repository
    from services.api.auth import service as auth_service

    password = known.get("password") if known.get("username") == username else None
    user = await auth_repository.user_by_username(session, username, lock=True)
    if user is None:
        password = secrets.token_urlsafe(12)
        await auth_service.create_user(session, audit.SYSTEM, organization_id, username, password)
    elif not password:
        password = secrets.token_urlsafe(12)
        user.password_hash = auth_service.hash_password(password)
        await session.flush()
    assert password is not None
    return {"username": username, "password": password}


async def play_demo_scenario(settings: Settings, organizations: list[dict[str, Any]]) -> str:
    """A few months of demo activity across the clusters (qilian/cli/scenario.py), once; a
    failure is reported, not raised: the demo organisations stay usable without it."""
    from qilian.cli import scenario

    try:
        report = await scenario.play(settings, organizations)
    except Exception as exc:  # the demo must start even if the scenario cannot be played
        return f"demo scenario not played: {exc!r}"
    if report.skipped:
        return "demo scenario played already"
    return (
        f"demo scenario: {report.invoices} invoices, {report.confirmed} confirmed, "
        f"{report.overdue} overdue, {report.financings} financings ({report.funded} funded, "
        f"{report.defaulted} defaulted), {report.duplicates_refused} duplicates refused, "
        f"{report.alerts} alerts"
    )


def read_credentials(path: Path) -> dict[str, Any]:
    try:
        document: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return document


def write_credentials(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)
