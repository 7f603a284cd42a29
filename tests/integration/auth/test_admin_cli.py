"""``qilian admin``: the operator's commands work against the database and are audited."""

import asyncio
import json
import os
import subprocess
import sys
import uuid

import jwt
from stdnum.cn import uscc

from services.api.organizations.models import Role
from tests.integration.auth.conftest import Org, bearer, get_token


def admin(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qilian.cli.main", "admin", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy() | (env or {}),
        timeout=120,
        check=False,
    )


async def test_operator_commands_create_working_credentials(http, make_org):
    base = f"91630100MA{uuid.uuid4().int % 10**7:07d}"
    tax_id = base + uscc.calc_check_digit(base)
    created = await asyncio.to_thread(
        admin,
        "create-organization",
        "CLI Bank",
        "--role",
        "bank",
        "--tax-id",
        tax_id,
        "--with-client",
    )
    assert created.returncode == 0, created.stderr
    org = json.loads(created.stdout)
    assert org["role"] == "bank"
    creds = Org(org["id"], Role.bank, org["client_id"], org["client_secret"])
    token = await get_token(http, creds)
    me = await http.get("/v1/me", headers=bearer(token))
    assert me.json()["organization_id"] == org["id"]

    issued = await asyncio.to_thread(admin, "issue-client", org["id"])
    assert issued.returncode == 0, issued.stderr
    assert json.loads(issued.stdout)["client_id"].startswith("cli_")

    username = f"cli{uuid.uuid4().hex[:8]}"
    user = await asyncio.to_thread(
        admin, "create-user", org["id"], username, env={"QILIAN_ADMIN_PASSWORD": "a long password!"}
    )
    assert user.returncode == 0, user.stderr
    login = await http.post(
        "/v1/auth/login", json={"username": username, "password": "a long password!"}
    )
    assert login.status_code == 200

    bad = await asyncio.to_thread(
        admin, "create-organization", "Bad", "--role", "bank", "--tax-id", "91630100MA0000001X"
    )
    assert bad.returncode == 2
    assert "Unified Social Credit Code" in bad.stderr


async def test_rotate_signing_key_command_keeps_existing_tokens_valid(http, make_org):
    org = await make_org(Role.supplier)
    token = await get_token(http, org)
    rotated = await asyncio.to_thread(admin, "rotate-signing-key")
    assert rotated.returncode == 0, rotated.stderr
    kid = json.loads(rotated.stdout)["kid"]
    assert (await http.get("/v1/me", headers=bearer(token))).status_code == 200
    new_token = await get_token(http, org)
    assert jwt.get_unverified_header(new_token)["kid"] == kid
    missing = await asyncio.to_thread(admin, "retire-signing-key", "k-nope")
    assert missing.returncode == 1
