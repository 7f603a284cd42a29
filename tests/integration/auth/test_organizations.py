"""The organisation directory and credentials: explicit schemas, pagination, object scoping."""

import uuid

import pytest
from stdnum.cn import uscc

from services.api.organizations.models import Role
from tests.integration.auth.conftest import bearer, get_token


def valid_uscc() -> str:
    base = f"91630100MA{uuid.uuid4().int % 10**7:07d}"
    return base + uscc.calc_check_digit(base)


@pytest.fixture
async def operator_token(http, make_org):
    return await get_token(http, await make_org(Role.operator))


async def test_operator_registers_an_organisation_with_a_checked_uscc(http, operator_token):
    tax_id = valid_uscc()
    response = await http.post(
        "/v1/organizations",
        json={"name": "西宁测试 Test Co", "role": "core_firm", "tax_id": tax_id, "cluster": "pv"},
        headers=bearer(operator_token),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith("org_")
    assert body["tax_id"] == tax_id
    assert body["cluster"] == "pv"
    directory = await http.get(f"/v1/organizations/{body['id']}", headers=bearer(operator_token))
    assert directory.json() == {
        "id": body["id"],
        "name": "西宁测试 Test Co",
        "role": "core_firm",
        "cluster": "pv",
        "green": False,
        "signing_address": None,
    }
    again = await http.post(
        "/v1/organizations",
        json={"name": "Dup", "role": "supplier", "tax_id": tax_id},
        headers=bearer(operator_token),
    )
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "X", "role": "supplier", "tax_id": "91630100MA0000001X"}, "tax_id"),
        ({"name": "X", "role": "core_firm", "tax_id": "USCC"}, "cluster"),
        ({"name": "X", "role": "supplier", "tax_id": "USCC", "id": "org_mine"}, "id"),
        ({"name": "X", "role": "supplier", "tax_id": "USCC", "status": "active"}, "status"),
        ({"name": "X", "role": "operator", "tax_id": "USCC"}, "role"),
        ({"name": "X", "role": "supplier", "tax_id": "USCC", "signing_address": "0x12"}, None),
    ],
    ids=[
        "bad-check-char",
        "core-firm-no-cluster",
        "mass-assign-id",
        "unknown-field",
        "operator",
        "addr",
    ],
)
async def test_registration_refuses_invalid_or_unknown_fields(http, operator_token, body, field):
    body = {k: (valid_uscc() if v == "USCC" else v) for k, v in body.items()}
    response = await http.post("/v1/organizations", json=body, headers=bearer(operator_token))
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"].endswith("invalid-input")
    if field:
        assert field in {e["field"] for e in problem["errors"]}


async def test_directory_pages_with_limit_and_an_opaque_cursor(http, make_org, operator_token):
    for _ in range(3):
        await make_org(Role.guarantor)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, "role": "guarantor"} | ({"cursor": cursor} if cursor else {})
        page = await http.get("/v1/organizations", params=params, headers=bearer(operator_token))
        assert page.status_code == 200, page.text
        body = page.json()
        assert set(body) == {"items", "next_cursor"}
        assert len(body["items"]) <= 2
        seen += [item["id"] for item in body["items"]]
        assert all(item["role"] == "guarantor" for item in body["items"])
        assert "tax_id" not in body["items"][0]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) >= 3
    assert seen == sorted(seen)


@pytest.mark.parametrize(
    "params", [{"limit": 201}, {"limit": 0}, {"cursor": "%%%"}, {"cursor": "e30"}]
)
async def test_bad_limit_or_cursor_is_422(http, operator_token, params):
    response = await http.get("/v1/organizations", params=params, headers=bearer(operator_token))
    assert response.status_code == 422


async def test_limit_200_is_allowed(http, operator_token):
    response = await http.get(
        "/v1/organizations", params={"limit": 200}, headers=bearer(operator_token)
    )
    assert response.status_code == 200


async def test_a_bank_cannot_see_or_touch_another_banks_credentials(http, make_org):
    bank_a, bank_b = await make_org(Role.bank), await make_org(Role.bank)
    token_a = await get_token(http, bank_a)
    own = await http.get(f"/v1/organizations/{bank_a.id}/clients", headers=bearer(token_a))
    assert own.status_code == 200
    assert [c["client_id"] for c in own.json()["items"]] == [bank_a.client_id]
    assert "client_secret" not in own.json()["items"][0]
    assert "secret_hash" not in own.json()["items"][0]

    other = await http.get(f"/v1/organizations/{bank_b.id}/clients", headers=bearer(token_a))
    missing = await http.get("/v1/organizations/org_doesnotexist/clients", headers=bearer(token_a))
    assert other.status_code == missing.status_code == 404
    assert other.json()["detail"] == missing.json()["detail"]  # indistinguishable
    assert bank_b.client_id not in other.text
    for action in ("rotate", "revoke"):
        response = await http.post(
            f"/v1/organizations/{bank_b.id}/clients/{bank_b.client_id}/{action}",
            headers=bearer(token_a),
        )
        assert response.status_code == 404
        # bank A naming its own organisation but B's client fares no better
        response = await http.post(
            f"/v1/organizations/{bank_a.id}/clients/{bank_b.client_id}/{action}",
            headers=bearer(token_a),
        )
        assert response.status_code == 404
    assert (await get_token(http, bank_b)).count(".") == 2  # B's secret still works


async def test_issued_secret_is_shown_once_and_rotation_replaces_it(http, make_org, operator_token):
    org = await make_org(Role.supplier)
    issued = await http.post(f"/v1/organizations/{org.id}/clients", headers=bearer(operator_token))
    assert issued.status_code == 201
    client = issued.json()
    assert len(client["client_secret"]) >= 40
    listing = await http.get(f"/v1/organizations/{org.id}/clients", headers=bearer(operator_token))
    assert client["client_secret"] not in listing.text

    rotated = await http.post(
        f"/v1/organizations/{org.id}/clients/{client['client_id']}/rotate",
        headers=bearer(operator_token),
    )
    assert rotated.status_code == 200
    new_secret = rotated.json()["client_secret"]
    assert new_secret != client["client_secret"]
    form = {"grant_type": "client_credentials", "client_id": client["client_id"]}
    old = await http.post("/v1/oauth/token", data=form | {"client_secret": client["client_secret"]})
    new = await http.post("/v1/oauth/token", data=form | {"client_secret": new_secret})
    assert old.status_code == 401
    assert new.status_code == 200


async def test_client_for_unknown_organisation_is_404(http, operator_token):
    response = await http.post("/v1/organizations/org_nope/clients", headers=bearer(operator_token))
    assert response.status_code == 404


@pytest.mark.parametrize("role", [Role.auditor, Role.regulator])
async def test_auditors_and_regulators_never_write(http, make_org, role):
    reader = await make_org(role)
    token = await get_token(http, reader, scope="read")
    for method, path in [
        ("POST", "/v1/organizations"),
        ("POST", f"/v1/organizations/{reader.id}/clients"),
        ("POST", f"/v1/organizations/{reader.id}/clients/{reader.client_id}/rotate"),
        ("POST", f"/v1/organizations/{reader.id}/clients/{reader.client_id}/revoke"),
        ("PUT", "/v1/organizations"),
        ("DELETE", f"/v1/organizations/{reader.id}"),
    ]:
        response = await http.request(method, path, json={}, headers=bearer(token))
        assert response.status_code in (403, 405), (method, path, response.text)
        if response.status_code == 403:
            assert "never writes" in response.json()["detail"]
    # it still reads
    assert (await http.get("/v1/audit-log", headers=bearer(token))).status_code == 200


async def test_a_read_scoped_token_of_a_writer_cannot_write(http, make_org):
    operator = await make_org(Role.operator)
    token = await get_token(http, operator, scope="read")
    response = await http.post(f"/v1/organizations/{operator.id}/clients", headers=bearer(token))
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
