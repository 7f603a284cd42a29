"""The demo seed's client credentials (``var/demo-credentials.json``) work with the token endpoint
for every seeded organisation, and each token carries that organisation's role."""

from qilian.cli.seed import seed_demo
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
