"""The client-credentials grant and every way a token is refused."""

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlmodel import col

from qilian.kit import db
from qilian.kit.settings import get_settings
from services.api.auth import keys
from services.api.auth.settings import AUDIENCE, ISSUER
from services.api.organizations.models import Role
from tests.integration.auth.conftest import Org, bearer, get_token


async def test_token_is_a_short_lived_eddsa_jwt_with_pinned_claims(http, make_org):
    bank = await make_org(Role.bank)
    response = await http.post(
        "/v1/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": bank.client_id,
            "client_secret": bank.client_secret,
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["scope"] == "read write"
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "EdDSA"
    assert header["typ"] == "at+jwt"
    jwks = (await http.get("/.well-known/jwks.json")).json()
    assert header["kid"] in {k["kid"] for k in jwks["keys"]}
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["iss"] == ISSUER
    assert claims["aud"] == AUDIENCE
    assert claims["sub"] == claims["client_id"] == bank.client_id
    assert claims["org"] == bank.id
    assert claims["role"] == "bank"
    assert claims["exp"] - claims["iat"] == 900
    assert len(claims["jti"]) >= 16

    me = await http.get("/v1/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["organization_id"] == bank.id
    assert me.json()["role"] == "bank"
    assert me.json()["client_id"] == bank.client_id


async def test_token_accepts_json_and_http_basic(http, make_org):
    org = await make_org(Role.supplier)
    as_json = await http.post(
        "/v1/oauth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": org.client_id,
            "client_secret": org.client_secret,
            "scope": "read",
        },
    )
    assert as_json.status_code == 200, as_json.text
    assert as_json.json()["scope"] == "read"
    basic = base64.b64encode(f"{org.client_id}:{org.client_secret}".encode()).decode()
    as_basic = await http.post(
        "/v1/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert as_basic.status_code == 200, as_basic.text


@pytest.mark.parametrize("case", ["wrong_secret", "unknown_client", "revoked"])
async def test_bad_client_credentials_are_401_invalid_client(http, make_org, case):
    org = await make_org(Role.bank)
    client_id, secret = org.client_id, org.client_secret
    if case == "wrong_secret":
        secret = secret[:-2] + "xx"
    elif case == "unknown_client":
        client_id = "cli_" + "0" * 32
    else:
        operator = await make_org(Role.operator)
        token = await get_token(http, operator)
        revoked = await http.post(
            f"/v1/organizations/{org.id}/clients/{org.client_id}/revoke", headers=bearer(token)
        )
        assert revoked.status_code == 200, revoked.text
    response = await http.post(
        "/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["error"] == "invalid_client"
    assert "www-authenticate" in response.headers


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": "client_credentials"}, "invalid_request"),
        ({"grant_type": "client_credentials", "scope": "admin"}, "invalid_scope"),
    ],
)
async def test_malformed_token_requests_are_400(http, make_org, data, error):
    org = await make_org(Role.bank)
    if error != "invalid_request":
        data = {**data, "client_id": org.client_id, "client_secret": org.client_secret}
    response = await http.post("/v1/oauth/token", data=data)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error


async def test_auditor_cannot_obtain_write_scope(http, make_org):
    auditor = await make_org(Role.auditor)
    response = await http.post(
        "/v1/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": auditor.client_id,
            "client_secret": auditor.client_secret,
            "scope": "read write",
        },
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    token = await get_token(http, auditor)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["scope"] == "read"


async def test_revoked_clients_existing_tokens_are_refused_at_once(http, make_org):
    bank = await make_org(Role.bank)
    token = await get_token(http, bank)
    assert (await http.get("/v1/me", headers=bearer(token))).status_code == 200
    operator = await make_org(Role.operator)
    op_token = await get_token(http, operator)
    await http.post(
        f"/v1/organizations/{bank.id}/clients/{bank.client_id}/revoke", headers=bearer(op_token)
    )
    response = await http.get("/v1/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def _signing_key() -> keys.ActiveKey:
    async with db.transaction() as session:
        return await keys.signing_key(session, get_settings().secret_key)


def _encode(claims: dict[str, Any], key: Any, alg: str, headers: dict[str, Any]) -> str:
    token: str = jwt.encode(claims, key, alg, headers=headers)
    return token


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _claims(org: Org, **override: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": org.client_id,
        "client_id": org.client_id,
        "org": org.id,
        "role": org.role.value,
        "scope": "read write",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "test-jti-0000000000",
    }
    claims.update(override)
    return {k: v for k, v in claims.items() if v is not None}


async def _forge(org: Org, case: str) -> str:
    key = await _signing_key()
    headers = {"kid": key.kid, "typ": "at+jwt"}

    def signed(**override: Any) -> str:
        return _encode(_claims(org, **override), key.private_key, "EdDSA", headers)

    now = int(time.time())
    if case == "alg_none":
        return f"{_b64({'alg': 'none', 'typ': 'at+jwt', 'kid': key.kid})}.{_b64(_claims(org))}."
    if case == "hs256_with_public_key":
        public = key.private_key.public_key().public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        )
        # PyJWT itself refuses PEM keys as HMAC secrets, so sign by hand
        import hashlib
        import hmac as hmac_

        signing_input = (
            f"{_b64({'alg': 'HS256', 'typ': 'at+jwt', 'kid': key.kid})}.{_b64(_claims(org))}"
        )
        mac = hmac_.new(public, signing_input.encode(), hashlib.sha256).digest()
        return signing_input + "." + base64.urlsafe_b64encode(mac).decode().rstrip("=")
    if case == "expired":
        return signed(iat=now - 2000, nbf=now - 2000, exp=now - 1000)
    if case == "not_yet_valid":
        return signed(nbf=now + 600, exp=now + 1200)
    if case == "wrong_aud":
        return signed(aud="someone-else")
    if case == "wrong_iss":
        return signed(iss="https://evil.example")
    if case == "missing_exp":
        return signed(exp=None)
    if case == "role_escalation_tampered":
        good = signed()
        head, _, sig = good.split(".")
        return f"{head}.{_b64(_claims(org, role='operator'))}.{sig}"
    if case == "unknown_kid":
        return _encode(_claims(org), key.private_key, "EdDSA", {**headers, "kid": "nope"})
    if case == "no_kid":
        return _encode(_claims(org), key.private_key, "EdDSA", {"typ": "at+jwt"})
    if case == "wrong_typ":
        return _encode(_claims(org), key.private_key, "EdDSA", {**headers, "typ": "JWT"})
    if case == "other_key":
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return _encode(_claims(org), Ed25519PrivateKey.generate(), "EdDSA", headers)
    if case == "garbage":
        return "not.a.jwt"
    raise AssertionError(case)


ATTACKS = [
    "alg_none",
    "hs256_with_public_key",
    "expired",
    "not_yet_valid",
    "wrong_aud",
    "wrong_iss",
    "missing_exp",
    "role_escalation_tampered",
    "unknown_kid",
    "no_kid",
    "wrong_typ",
    "other_key",
    "garbage",
]


@pytest.mark.parametrize("case", ATTACKS)
async def test_forged_or_invalid_tokens_are_401(http, make_org, case):
    org = await make_org(Role.supplier)
    token = await _forge(org, case)
    response = await http.get("/v1/me", headers=bearer(token))
    assert response.status_code == 401, (case, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == 'Bearer realm="qilian", error="invalid_token"'


async def test_a_correctly_forged_control_token_is_accepted(http, make_org):
    """The forging helper itself is sound: the same claims, signed properly, pass."""
    org = await make_org(Role.supplier)
    key = await _signing_key()
    token = jwt.encode(_claims(org), key.private_key, "EdDSA", {"kid": key.kid, "typ": "at+jwt"})
    assert (await http.get("/v1/me", headers=bearer(token))).status_code == 200


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer ", "Basic abc", "Token xyz"],
    ids=["empty", "b", "b2", "basic", "tok"],
)
async def test_missing_or_malformed_authorization_is_401(http, header):
    headers = {"Authorization": header} if header else {}
    response = await http.get("/v1/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="qilian"')
    assert response.json()["status"] == 401


async def test_key_rotation_keeps_old_tokens_valid_until_the_old_key_is_retired(http, make_org):
    org = await make_org(Role.bank)
    old_token = await get_token(http, org)
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    async with db.transaction() as session:
        rotation = await keys.rotate(session, get_settings().secret_key, 900)
    new_token = await get_token(http, org)
    assert jwt.get_unverified_header(new_token)["kid"] == rotation.new_kid != old_kid
    published = {k["kid"] for k in (await http.get("/.well-known/jwks.json")).json()["keys"]}
    assert {old_kid, rotation.new_kid} <= published
    assert (await http.get("/v1/me", headers=bearer(old_token))).status_code == 200
    assert (await http.get("/v1/me", headers=bearer(new_token))).status_code == 200

    async with db.transaction() as session:
        await keys.retire(session, [old_kid])
    assert (await http.get("/v1/me", headers=bearer(old_token))).status_code == 401
    assert (await http.get("/v1/me", headers=bearer(new_token))).status_code == 200
    published = {k["kid"] for k in (await http.get("/.well-known/jwks.json")).json()["keys"]}
    assert old_kid not in published


async def test_rotation_retires_keys_superseded_longer_than_a_token_lives(db_engine):
    from sqlalchemy import update

    from services.api.auth.models import SigningKey

    secret = get_settings().secret_key
    async with db.transaction() as session:
        first = await keys.rotate(session, secret, 900)
        second = await keys.rotate(session, secret, 900)
        assert first.new_kid not in second.retired  # superseded just now: tokens may still live
        # pretend both were made hours ago: `first` was superseded longer ago than 900 s
        for kid, hours in ((first.new_kid, 2), (second.new_kid, 1)):
            await session.execute(
                update(SigningKey)
                .where(col(SigningKey.kid) == kid)
                .values(created_at=datetime.now(UTC) - timedelta(hours=hours))
            )
        third = await keys.rotate(session, secret, 900)
        assert first.new_kid in third.retired
        assert second.new_kid not in third.retired
        live = {k.kid for k in await keys.live_keys(session)}
    assert {second.new_kid, third.new_kid} <= live
    assert first.new_kid not in live


async def test_private_keys_are_stored_encrypted(db_engine):
    from sqlalchemy import select

    from services.api.auth.models import SigningKey

    key = await _signing_key()
    async with db.transaction() as session:
        row = (
            await session.execute(select(SigningKey).where(col(SigningKey.kid) == key.kid))
        ).scalar_one()
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    raw = key.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    assert raw not in row.private_key_encrypted
    assert "d" not in row.public_jwk


async def test_refusals_are_counted_in_metrics(http):
    await http.get("/v1/me", headers=bearer("not.a.jwt"))
    metrics = (await http.get("/metrics")).text
    assert 'qilian_auth_refusals_total{problem="unauthorized"}' in metrics
