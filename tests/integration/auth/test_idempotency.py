"""``Idempotency-Key``: one effect and the same response per (principal, key); a different body
is 422; a replay while the first request runs is 409; one principal's keys never match another's."""

import asyncio
import uuid

import httpx
from sqlalchemy import select
from sqlmodel import col

from qilian.kit import db
from services.api.auth.models import IdempotencyRecord
from services.api.organizations.models import Role
from tests.integration.auth.conftest import bearer, client_for, get_token


async def _clients(http, token, org_id) -> list[str]:
    page = await http.get(f"/v1/organizations/{org_id}/clients", headers=bearer(token))
    return [c["client_id"] for c in page.json()["items"]]


async def test_replay_with_same_key_and_body_returns_the_first_response(http, make_org):
    operator, target = await make_org(Role.operator), await make_org(Role.bank)
    token = await get_token(http, operator)
    headers = bearer(token) | {"Idempotency-Key": str(uuid.uuid4())}
    first = await http.post(f"/v1/organizations/{target.id}/clients", headers=headers)
    second = await http.post(f"/v1/organizations/{target.id}/clients", headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()  # the same secret, shown again to the same principal
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert second.headers["content-type"] == "application/json"
    assert len(await _clients(http, token, target.id)) == 2  # the fixture's and one more


async def test_same_key_with_a_different_body_is_422(http, make_org):
    operator = await make_org(Role.operator)
    token = await get_token(http, operator)
    key = str(uuid.uuid4())
    body = {"name": "Idem Co", "role": "supplier", "tax_id": uuid.uuid4().hex, "tax_scheme": "T"}
    first = await http.post(
        "/v1/organizations", json=body, headers=bearer(token) | {"Idempotency-Key": key}
    )
    assert first.status_code == 201
    changed = await http.post(
        "/v1/organizations",
        json=body | {"name": "Other Co"},
        headers=bearer(token) | {"Idempotency-Key": key},
    )
    assert changed.status_code == 422
    assert changed.headers["content-type"] == "application/problem+json"
    assert "different request" in changed.json()["detail"]


async def test_concurrent_replays_have_exactly_one_effect(http, make_org):
    operator, target = await make_org(Role.operator), await make_org(Role.supplier)
    token = await get_token(http, operator)
    headers = bearer(token) | {"Idempotency-Key": str(uuid.uuid4())}
    responses = await asyncio.gather(
        *(http.post(f"/v1/organizations/{target.id}/clients", headers=headers) for _ in range(20))
    )
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, statuses
    assert 201 in statuses
    created = {r.json()["client_id"] for r in responses if r.status_code == 201}
    assert len(created) == 1
    for conflict in (r for r in responses if r.status_code == 409):
        assert "still being processed" in conflict.json()["detail"]
    assert len(await _clients(http, token, target.id)) == 2


async def test_keys_are_scoped_per_principal(http, make_org):
    op_a, op_b = await make_org(Role.operator), await make_org(Role.operator)
    target = await make_org(Role.bank)
    key = str(uuid.uuid4())
    responses = [
        await http.post(
            f"/v1/organizations/{target.id}/clients",
            headers=bearer(await get_token(http, op)) | {"Idempotency-Key": key},
        )
        for op in (op_a, op_b)
    ]
    assert [r.status_code for r in responses] == [201, 201]
    assert responses[0].json()["client_id"] != responses[1].json()["client_id"]
    assert "idempotent-replayed" not in responses[1].headers


async def test_stored_responses_are_encrypted_at_rest(http, make_org):
    operator, target = await make_org(Role.operator), await make_org(Role.bank)
    token = await get_token(http, operator)
    key = str(uuid.uuid4())
    response = await http.post(
        f"/v1/organizations/{target.id}/clients", headers=bearer(token) | {"Idempotency-Key": key}
    )
    secret = response.json()["client_secret"]
    async with db.transaction() as session:
        record = (
            await session.execute(
                select(IdempotencyRecord).where(col(IdempotencyRecord.key) == key)
            )
        ).scalar_one()
    assert record.status_code == 201
    assert record.response_body is not None
    assert secret.encode() not in record.response_body


async def test_unauthenticated_write_with_a_key_is_just_401(http):
    response = await http.post("/v1/organizations", json={}, headers={"Idempotency-Key": "k1"})
    assert response.status_code == 401


async def test_an_unusable_key_is_422(http, make_org):
    token = await get_token(http, await make_org(Role.operator))
    response = await http.post(
        "/v1/organizations", json={}, headers=bearer(token) | {"Idempotency-Key": "x" * 300}
    )
    assert response.status_code == 422


async def test_a_first_request_that_never_finished_is_taken_over_after_its_lease(http, make_org):
    from datetime import UTC, datetime, timedelta

    operator, target = await make_org(Role.operator), await make_org(Role.bank)
    token = await get_token(http, operator)
    key = str(uuid.uuid4())
    async with db.transaction() as session:  # as if a replica died mid-request 10 minutes ago
        session.add(
            IdempotencyRecord(
                principal=f"client:{operator.client_id}",
                key=key,
                request_hash="0" * 64,
                method="POST",
                path=f"/v1/organizations/{target.id}/clients",
                created_at=datetime.now(UTC) - timedelta(minutes=10),
            )
        )
    response = await http.post(
        f"/v1/organizations/{target.id}/clients", headers=bearer(token) | {"Idempotency-Key": key}
    )
    assert response.status_code == 201, response.text


async def test_the_answer_is_stored_before_it_is_sent(app, make_org):
    """Whoever holds an answer can have it again: by the time the first byte of the answer
    leaves the api, the stored copy is committed."""
    operator, target = await make_org(Role.operator), await make_org(Role.bank)
    async with client_for(app) as http:
        token = await get_token(http, operator)
    key = str(uuid.uuid4())
    stored_when_sent: list[bool] = []

    async def watching(scope, receive, send):
        async def send_and_look(message):
            if message["type"] == "http.response.start":
                async with db.transaction() as session:
                    record = await session.get(
                        IdempotencyRecord, (f"client:{operator.client_id}", key)
                    )
                    stored_when_sent.append(record is not None and record.completed_at is not None)
            await send(message)

        await app(scope, receive, send_and_look)

    transport = httpx.ASGITransport(app=watching, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="https://test") as http:
        response = await http.post(
            f"/v1/organizations/{target.id}/clients",
            headers=bearer(token) | {"Idempotency-Key": key},
        )
    assert response.status_code == 201
    assert stored_when_sent == [True]


async def test_a_committed_request_whose_answer_was_lost_is_not_run_again(
    http, make_org, monkeypatch
):
    """The api dies after the request's transaction commits and before its answer is stored
    (here: storing the answer fails). The mark written in the request's own transaction keeps a
    retry — even after the lease — from running it a second time."""
    from datetime import UTC, datetime, timedelta

    from services.api.auth import keys

    operator, target = await make_org(Role.operator), await make_org(Role.bank)
    token = await get_token(http, operator)
    headers = bearer(token) | {"Idempotency-Key": str(uuid.uuid4())}
    before = len(await _clients(http, token, target.id))

    def lost(*args, **kwargs):
        raise ConnectionResetError("the api died before storing the answer")

    monkeypatch.setattr(keys, "seal", lost)
    first = await http.post(f"/v1/organizations/{target.id}/clients", headers=headers)
    assert first.status_code == 201  # the effect is committed and the answer still sent
    monkeypatch.undo()
    soon = await http.post(f"/v1/organizations/{target.id}/clients", headers=headers)
    assert soon.status_code == 409  # within the lease: it may still be storing its answer
    assert "still being processed" in soon.json()["detail"]
    principal = f"client:{operator.client_id}"
    async with db.transaction() as session:
        record = await session.get(IdempotencyRecord, (principal, headers["Idempotency-Key"]))
        assert record is not None
        assert record.committed_at is not None
        assert record.completed_at is None
        record.created_at = datetime.now(UTC) - timedelta(hours=1)  # well past the lease
        session.add(record)

    retry = await http.post(f"/v1/organizations/{target.id}/clients", headers=headers)
    assert retry.status_code == 409, retry.text
    assert retry.json()["type"].endswith("idempotency-outcome-lost")
    assert len(await _clients(http, token, target.id)) == before + 1  # one effect, not two
