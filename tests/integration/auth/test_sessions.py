"""People: Argon2 passwords, the session cookie, CSRF on cookie-authenticated writes, lock-out."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlmodel import col

from qilian.kit import db
from services.api.audit import service as audit
from services.api.auth import service as auth_service
from services.api.auth.models import User
from services.api.organizations.models import Role
from tests.integration.auth.conftest import client_for

PASSWORD = "correct horse battery staple"


async def _user(org_id: str) -> str:
    username = f"u{uuid.uuid4().hex[:12]}"
    async with db.transaction() as session:
        await auth_service.create_user(session, audit.SYSTEM, org_id, username, PASSWORD)
    return username


async def _login(http, username: str, password: str = PASSWORD):
    return await http.post("/v1/auth/login", json={"username": username, "password": password})


async def test_password_is_stored_as_argon2id(make_org, db_engine):
    org = await make_org(Role.supplier)
    username = await _user(org.id)
    async with db.transaction() as session:
        from services.api.auth import repository

        user = await repository.user_by_username(session, username, lock=False)
    assert user is not None
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


async def test_login_sets_a_hardened_session_cookie_and_a_csrf_token(http, make_org):
    org = await make_org(Role.operator)
    response = await _login(http, await _user(org.id))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["organization"]["id"] == org.id
    cookies = response.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookies if c.startswith("qilian_session="))
    csrf_cookie = next(c for c in cookies if c.startswith("qilian_csrf="))
    lowered = session_cookie.lower()
    assert "httponly" in lowered
    assert "samesite=lax" in lowered
    assert "secure" in lowered  # outside development
    assert "httponly" not in csrf_cookie.lower()  # the page reads it to send the header
    assert body["csrf_token"] in csrf_cookie

    me = await http.get("/v1/me")
    assert me.status_code == 200
    assert me.json()["kind"] == "user"
    assert me.json()["role"] == "operator"


async def test_cookie_writes_need_the_csrf_token(http, make_org):
    operator, target = await make_org(Role.operator), await make_org(Role.bank)
    login = await _login(http, await _user(operator.id))
    csrf = login.json()["csrf_token"]
    path = f"/v1/organizations/{target.id}/clients"

    assert (await http.post(path)).status_code == 403  # no header
    wrong = await http.post(path, headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403
    assert "CSRF" in wrong.json()["detail"]
    ok = await http.post(path, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 201, ok.text

    # a token that matches a forged cookie but not the session is refused too
    http.cookies.set("qilian_csrf", "forged", domain="test")
    forged = await http.post(path, headers={"X-CSRF-Token": "forged"})
    assert forged.status_code == 403


async def test_reads_with_a_cookie_need_no_csrf_token(http, make_org):
    org = await make_org(Role.bank)
    await _login(http, await _user(org.id))
    assert (await http.get("/v1/organizations")).status_code == 200


async def test_repeated_failures_lock_the_account(app, make_org):
    org = await make_org(Role.supplier)
    username = await _user(org.id)
    async with client_for(app, ip="198.51.100.20") as http:
        for _ in range(5):
            assert (await _login(http, username, "wrong password!!")).status_code == 401
        locked = await _login(http, username)  # the right password, but locked now
        assert locked.status_code == 401
        assert locked.json()["detail"] == (await _login(http, "nobody-here", "x")).json()["detail"]
    async with db.transaction() as session:
        await session.execute(
            update(User)
            .where(col(User.username) == username)
            .values(locked_until=datetime.now(UTC) - timedelta(seconds=1))
        )
    async with client_for(app, ip="198.51.100.20") as http:
        assert (await _login(http, username)).status_code == 200


def test_lockout_grows_and_is_capped():
    from services.api.auth.settings import AuthSettings

    config = AuthSettings()
    delays = [auth_service.lockout_seconds(n, config) for n in range(1, 12)]
    assert delays[:4] == [0, 0, 0, 0]
    assert delays[4:8] == [60, 120, 240, 480]
    assert max(delays) == config.lockout_max_seconds


async def test_logout_ends_the_session(http, make_org):
    org = await make_org(Role.bank)
    csrf = (await _login(http, await _user(org.id))).json()["csrf_token"]
    assert (await http.post("/v1/auth/logout")).status_code == 403  # CSRF needed
    token = http.cookies.get("qilian_session")
    assert (await http.post("/v1/auth/logout", headers={"X-CSRF-Token": csrf})).status_code == 204
    http.cookies.set("qilian_session", token, domain="test")
    assert (await http.get("/v1/me")).status_code == 401


@pytest.mark.parametrize("role", [Role.auditor, Role.regulator])
async def test_read_only_people_cannot_write_even_with_csrf(http, make_org, role):
    org = await make_org(role)
    csrf = (await _login(http, await _user(org.id))).json()["csrf_token"]
    response = await http.post(
        f"/v1/organizations/{org.id}/clients", headers={"X-CSRF-Token": csrf}
    )
    assert response.status_code == 403
    assert (await http.get("/v1/audit-log")).status_code == 200


async def test_login_failures_and_successes_are_audited(http, make_org):
    from sqlalchemy import select

    from services.api.audit.models import AuditEntry

    org = await make_org(Role.bank)
    username = await _user(org.id)
    await _login(http, username, "not the password")
    await _login(http, username)
    async with db.transaction() as session:
        rows = (
            await session.execute(
                select(AuditEntry)
                .where(
                    col(AuditEntry.action) == "user.login",
                    col(AuditEntry.organization_id) == org.id,
                )
                .order_by(col(AuditEntry.seq))
            )
        ).scalars()
        outcomes = [(r.outcome, r.details.get("reason")) for r in rows]
    assert outcomes == [("failure", "wrong password"), ("success", None)]
