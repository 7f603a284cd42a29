"""The endpoints API and publish(): create (secret shown once), list, get, change, delete; URL
and event-type validation naming the field; another organisation's endpoints and messages are 404;
filters (exact, family, everything, none) and the audience (only the organisations named)."""

from __future__ import annotations

from typing import Any

import pytest

from qilian.kit import db
from services.api.organizations.models import Role
from services.api.webhooks import service
from services.api.webhooks.settings import WebhookSettings
from tests.integration.webhooks.conftest import FAST
from tests.integration.webhooks.helpers import caller, messages, new_endpoint

URL = "https://hooks.bank.example/qilian"


async def publish(org_ids: list[str], event_type: str, **kwargs: Any) -> int:
    async with db.transaction() as session:
        return await service.publish(session, org_ids, event_type, {"x": 1}, **kwargs)


async def test_create_shows_the_secret_once_and_lists_only_the_own(http):
    bank, other = await caller(http), await caller(http, Role.supplier)
    created = await new_endpoint(http, bank, URL, ["offer.*", "financing.funded", "offer.*"])
    assert created["secret"].startswith("whsec_")
    assert created["id"].startswith("whk_")
    assert created["event_types"] == ["financing.funded", "offer.*"]
    assert created["enabled"] is True
    assert created["organization_id"] == bank.org.id
    await new_endpoint(http, other, URL)
    listed = await http.get("/v1/webhook-endpoints", headers=bank.headers)
    assert listed.status_code == 200
    assert [e["id"] for e in listed.json()["items"]] == [created["id"]]
    assert "secret" not in listed.json()["items"][0]
    one = await http.get(f"/v1/webhook-endpoints/{created['id']}", headers=bank.headers)
    assert one.status_code == 200
    assert "secret" not in one.json()
    assert one.json()["url"] == URL


async def test_the_list_is_paginated(http):
    bank = await caller(http)
    made = {(await new_endpoint(http, bank, URL))["id"] for _ in range(3)}
    first = await http.get("/v1/webhook-endpoints?limit=2", headers=bank.headers)
    assert len(first.json()["items"]) == 2
    cursor = first.json()["next_cursor"]
    second = await http.get(f"/v1/webhook-endpoints?limit=2&cursor={cursor}", headers=bank.headers)
    assert second.json()["next_cursor"] is None
    seen = {e["id"] for e in first.json()["items"] + second.json()["items"]}
    assert seen == made


async def test_the_secret_is_sealed_at_rest(http):
    bank = await caller(http)
    created = await new_endpoint(http, bank, URL)
    async with db.transaction() as session:
        endpoint = await service.get_endpoint(session, _principal(bank), created["id"])
    assert created["secret"].encode() not in endpoint.secret_sealed
    assert created["secret"][6:].encode() not in endpoint.secret_sealed


def _principal(who: Any) -> Any:
    from services.api.auth.models import Principal, PrincipalKind

    return Principal(PrincipalKind.client, who.org.client_id, who.org.id, who.org.role)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://hooks.bank.example/", "event_types": ["*"]}, "url"),
        ({"url": "https://user:pw@hooks.bank.example/", "event_types": ["*"]}, "url"),
        ({"url": URL, "event_types": ["offer.received", "offer.bogus"]}, "event_types.1"),
        ({"url": URL, "event_types": ["nothing.*"]}, "event_types.0"),
        ({"url": URL, "event_types": []}, "event_types"),
        ({"url": URL}, "event_types"),
        ({"event_types": ["*"]}, "url"),
        ({"url": URL, "event_types": ["*"], "secret": "mine"}, "secret"),
    ],
)
async def test_invalid_bodies_name_the_field(http, body, field):
    bank = await caller(http)
    response = await http.post("/v1/webhook-endpoints", json=body, headers=bank.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in response.json()["errors"]]


@pytest.fixture
def webhook_settings() -> WebhookSettings:
    # every test of this module runs under production's rules: https only (plain http to
    # loopback), no private networks
    return FAST.model_copy(update={"allow_http": False, "allow_private_networks": False})


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.bank.example/qilian",
        "https://10.0.0.8/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd12::1]/hook",
        "https://192.168.0.10:8443/hook",
    ],
)
async def test_production_rules_refuse_plain_http_and_private_networks(http, url):
    bank = await caller(http)
    response = await http.post(
        "/v1/webhook-endpoints", json={"url": url, "event_types": ["*"]}, headers=bank.headers
    )
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "url"
    patched = await http.patch(
        f"/v1/webhook-endpoints/{(await new_endpoint(http, bank, URL))['id']}",
        json={"url": url},
        headers=bank.headers,
    )
    assert patched.status_code == 422
    assert patched.json()["errors"][0]["field"] == "url"


async def test_production_rules_still_accept_loopback_http(http):
    bank = await caller(http)
    assert (await new_endpoint(http, bank, "http://127.0.0.1:9/hook"))["url"]


async def test_update_and_delete(http):
    bank = await caller(http)
    created = await new_endpoint(http, bank, URL, ["offer.*"])
    path = f"/v1/webhook-endpoints/{created['id']}"
    changed = await http.patch(
        path,
        json={"url": URL + "/v2", "event_types": ["receivable.paid"], "description": "v2"},
        headers=bank.headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["url"] == URL + "/v2"
    assert changed.json()["event_types"] == ["receivable.paid"]
    assert changed.json()["description"] == "v2"
    bad = await http.patch(path, json={"event_types": ["receivable.gone"]}, headers=bank.headers)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "event_types.0"
    await publish([bank.org.id], "receivable.paid")
    deleted = await http.delete(path, headers=bank.headers)
    assert deleted.status_code == 204
    assert (await http.get(path, headers=bank.headers)).status_code == 404
    assert await messages(endpoint_id=created["id"]) == []  # its queue went with it


async def test_another_organisations_endpoint_and_messages_are_404(http):
    bank, rival = await caller(http), await caller(http)
    created = await new_endpoint(http, bank, URL)
    await publish([bank.org.id], "offer.received")
    [message] = await messages(endpoint_id=created["id"])
    base = f"/v1/webhook-endpoints/{created['id']}"
    for method, path, body in [
        ("GET", base, None),
        ("PATCH", base, {"enabled": False}),
        ("DELETE", base, None),
        ("POST", base + "/rotate-secret", None),
        ("POST", base + "/test", None),
        ("GET", base + "/messages", None),
        ("POST", f"/v1/webhook-messages/{message.id}/replay", None),
        ("GET", "/v1/webhook-endpoints/whk_nope", None),
        ("POST", "/v1/webhook-messages/msg_nope/replay", None),
    ]:
        response = await http.request(method, path, json=body, headers=rival.headers)
        assert response.status_code == 404, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert (await http.get(base, headers=bank.headers)).json()["enabled"] is True
    listed = await http.get("/v1/webhook-endpoints", headers=rival.headers)
    assert listed.json()["items"] == []


async def test_filters_exact_family_everything_and_none(http):
    bank = await caller(http)
    exact = await new_endpoint(http, bank, URL, ["offer.received"])
    family = await new_endpoint(http, bank, URL, ["offer.*"])
    everything = await new_endpoint(http, bank, URL, ["*"])
    other = await new_endpoint(http, bank, URL, ["financing.funded", "receivable.*"])
    assert await publish([bank.org.id], "offer.received") == 3
    assert await publish([bank.org.id], "offer.withdrawn") == 2
    assert await publish([bank.org.id], "alert.raised") == 1
    types = {
        name: [m.event_type for m in await messages(endpoint_id=e["id"])]
        for name, e in [
            ("exact", exact),
            ("family", family),
            ("everything", everything),
            ("other", other),
        ]
    }
    assert types == {
        "exact": ["offer.received"],
        "family": ["offer.received", "offer.withdrawn"],
        "everything": ["offer.received", "offer.withdrawn", "alert.raised"],
        "other": [],
    }


async def test_publish_reaches_only_the_organisations_named(http):
    bank, rival, supplier = (
        await caller(http),
        await caller(http),
        await caller(http, Role.supplier),
    )
    for who in (bank, rival, supplier):
        await new_endpoint(http, who, URL, ["*"])
    assert await publish([bank.org.id], "offer.accepted") == 1
    assert await publish([bank.org.id, supplier.org.id, bank.org.id], "offer.received") == 2
    assert await publish([], "offer.received") == 0
    assert await messages(organization_id=rival.org.id) == []
    assert {m.event_type for m in await messages(organization_id=bank.org.id)} == {
        "offer.accepted",
        "offer.received",
    }
    assert [m.event_type for m in await messages(organization_id=supplier.org.id)] == [
        "offer.received"
    ]


async def test_publish_is_idempotent_per_event_id_and_refuses_unknown_types(http):
    bank = await caller(http)
    await new_endpoint(http, bank, URL)
    assert await publish([bank.org.id], "financing.funded", event_id="evt_" + "a" * 32) == 1
    assert await publish([bank.org.id], "financing.funded", event_id="evt_" + "a" * 32) == 0
    with pytest.raises(ValueError, match="unknown webhook event type"):
        await publish([bank.org.id], "financing.teleported")


async def test_publish_rolls_back_with_the_callers_transaction(http):
    bank = await caller(http)
    await new_endpoint(http, bank, URL)

    async def business_change_that_fails() -> None:
        async with db.transaction() as session:
            assert await service.publish(session, [bank.org.id], "offer.lost", {}) == 1
            raise RuntimeError("the business change failed")

    with pytest.raises(RuntimeError):
        await business_change_that_fails()
    assert await messages(organization_id=bank.org.id) == []


async def test_messages_show_state_attempts_and_next_attempt(http, refused_url):
    from tests.integration.webhooks.helpers import settle

    bank = await caller(http)
    created = await new_endpoint(http, bank, refused_url)
    await publish([bank.org.id], "offer.expired")
    path = f"/v1/webhook-endpoints/{created['id']}/messages"
    [queued] = (await http.get(path, headers=bank.headers)).json()["items"]
    assert queued["state"] == "pending"
    assert queued["next_attempt_at"] is not None
    assert queued["attempts"] == []
    await settle(FAST, created["id"])
    [dead] = (await http.get(path + "?state=dead", headers=bank.headers)).json()["items"]
    assert dead["id"] == queued["id"]
    assert dead["next_attempt_at"] is None
    assert dead["attempts_count"] == 3
    assert [a["attempt"] for a in dead["attempts"]] == [1, 2, 3]
    assert all(a["outcome"] == "failed" and a["error"] for a in dead["attempts"])
    none = await http.get(path + "?state=delivered", headers=bank.headers)
    assert none.json()["items"] == []


async def test_event_type_catalogue(http):
    auditor = await caller(http, Role.auditor)
    response = await http.get("/v1/webhook-event-types", headers=auditor.headers)
    assert response.status_code == 200
    names = [e["name"] for e in response.json()]
    assert "offer.received" in names
    assert "webhook.test" in names


async def test_operators_and_read_only_roles_may_not_register(http):
    for role in (Role.operator, Role.auditor, Role.regulator):
        who = await caller(http, role)
        response = await http.post(
            "/v1/webhook-endpoints", json={"url": URL, "event_types": ["*"]}, headers=who.headers
        )
        assert response.status_code == 403, (role, response.text)


async def test_concurrent_registrations_never_pass_the_limit(http, app):
    import asyncio

    app.state.webhook_settings = FAST.model_copy(update={"max_endpoints_per_organization": 3})
    bank = await caller(http)
    answers = await asyncio.gather(
        *(
            http.post(
                "/v1/webhook-endpoints",
                json={"url": f"{URL}/{n}", "event_types": ["*"]},
                headers=bank.headers,
            )
            for n in range(12)
        )
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 3 + [409] * 9
    listed = await http.get("/v1/webhook-endpoints", headers=bank.headers)
    assert len(listed.json()["items"]) == 3
