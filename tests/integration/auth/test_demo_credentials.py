"""The demo seed's credentials (``var/demo-credentials.json``): a client and a person per seeded
organisation, both working, and a second seeding finds them again."""

from qilian.cli.seed import seed_demo, write_credentials
from qilian.kit import db
from services.api.organizations.models import Role
from tests.integration.auth.conftest import Org, bearer, get_token


async def test_every_seeded_organisation_gets_a_token_with_its_role(http, tmp_path):
    async with db.transaction() as session:
        organizations = await seed_demo(session, tmp_path / "demo-credentials.json")
    assert {o["role"] for o in organizations} == {r.value for r in Role}
    for entry in organizations:
        creds = Org(entry["id"], Role(entry["role"]), entry["client_id"], entry["client_secret"])
        me = await http.get("/v1/me", headers=bearer(await get_token(http, creds)))
        assert me.status_code == 200, me.text
        assert (me.json()["organization_id"], me.json()["role"]) == (entry["id"], entry["role"])


async def test_every_seeded_person_logs_in_and_reseeding_keeps_the_passwords(http, tmp_path):
    credentials = tmp_path / "demo-credentials.json"
    async with db.transaction() as session:
        first = await seed_demo(session, credentials)
    write_credentials(credentials, {"organizations": first})
    async with db.transaction() as session:
        second = await seed_demo(session, credentials)
    assert [(o["username"], o["password"]) for o in second] == [
        (o["username"], o["password"]) for o in first
    ]
    for entry in second:
        response = await http.post(
            "/v1/auth/login", json={"username": entry["username"], "password": entry["password"]}
        )
        assert response.status_code == 200, (entry["username"], response.text)
    wrong = await http.post(
        "/v1/auth/login", json={"username": second[0]["username"], "password": "not-the-password"}
    )
    assert wrong.status_code == 401


async def test_a_forgotten_password_is_set_anew_by_the_next_seeding(http, tmp_path):
    async with db.transaction() as session:
        await seed_demo(session, tmp_path / "a.json")
    async with db.transaction() as session:  # no file: passwords are unknown, so they are reset
        fresh = await seed_demo(session, tmp_path / "missing.json")
    response = await http.post(
        "/v1/auth/login", json={"username": fresh[1]["username"], "password": fresh[1]["password"]}
    )
    assert response.status_code == 200, response.text
