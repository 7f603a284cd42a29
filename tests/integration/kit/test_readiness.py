"""Readiness on real dependencies: all three ok, or 503 naming the one that failed."""

import httpx
import pytest

from qilian.kit.settings import get_settings
from services.api.main import create_app as create_api
from services.ledger.main import create_app as create_ledger

pytestmark = pytest.mark.usefixtures("db_engine")


async def get(app, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        return await http.get(path)


@pytest.mark.parametrize("create", [create_api, create_ledger], ids=["api", "ledger"])
async def test_ready_when_database_broker_and_chain_answer(create):
    response = await get(create(get_settings()), "/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "broker": "ok", "chain": "ok"},
    }


@pytest.mark.parametrize("create", [create_api, create_ledger], ids=["api", "ledger"])
async def test_unreachable_broker_makes_readiness_503_naming_it(create):
    settings = get_settings().model_copy(update={"broker_url": "amqp://guest:guest@127.0.0.1:1//"})
    response = await get(create(settings), "/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["broker"]
    assert body["checks"]["database"] == "ok"


async def test_wrong_chain_id_is_not_ready():
    settings = get_settings().model_copy(update={"chain_id": 1})
    response = await get(create_api(settings), "/readyz")
    assert response.status_code == 503
    assert "expected 1" in response.json()["checks"]["chain"]


async def test_ledger_is_not_ready_without_contract_code():
    settings = get_settings().model_copy(
        update={"anchor_address": "0x000000000000000000000000000000000000dEaD"}
    )
    response = await get(create_ledger(settings), "/readyz")
    assert response.status_code == 503
    assert "no contract code" in response.json()["checks"]["chain"]


async def test_liveness_metrics_and_openapi_are_served():
    app = create_api(get_settings())
    assert (await get(app, "/healthz")).json() == {"status": "ok"}
    metrics = await get(app, "/metrics")
    assert "qilian_http_request_duration_seconds" in metrics.text
    assert (await get(app, "/openapi.json")).json()["info"]["title"] == "Qilian SCF API"
    response = await get(app, "/healthz")
    assert len(response.headers["x-request-id"]) == 32
