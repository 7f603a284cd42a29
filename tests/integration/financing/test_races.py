"""Exactly once under concurrency: 50 simultaneous acceptances of offers on one request give one
financing and 49 × 409, twenty rounds over; the same receivable raced into several requests ends
in one; and the same with two API processes sharing the database (real HTTP)."""

import asyncio
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from qilian.kit import db
from qilian.kit.anvil import free_port
from services.api.auth.models import Principal, PrincipalKind, scopes_for
from services.api.financing import service
from services.api.financing.pricing import DayCount
from services.api.financing.settings import FinancingSettings
from services.api.organizations.models import Role
from tests.integration.auth.conftest import bearer, get_token
from tests.integration.financing.market import closes_in, receivable, terms
from tests.integration.invoices.intake_helpers import new_party

BANKS = 50
ROUNDS = 20


async def _headers(http: Any, parties: list[Any]) -> list[dict[str, str]]:
    return [bearer(await get_token(http, p.org)) for p in parties]


async def _financings_of(request_id: str) -> int:
    async with db.transaction() as session:
        found = await session.execute(
            text("SELECT count(*) FROM platform.financings WHERE request_id = :r"),
            {"r": request_id},
        )
        return int(found.scalar_one())


async def _offers(request_id: str, banks: list[Any]) -> list[str]:
    """One offer per bank, through the marketplace's service in one transaction (the race under
    test is the acceptance; 50 bids over HTTP per round would only slow the test down)."""
    principals = [
        Principal(PrincipalKind.client, b.org.client_id, b.org.id, Role.bank, scopes_for(Role.bank))
        for b in banks
    ]
    offers = []
    async with db.transaction() as session:
        for principal in principals:
            placed, _ = await service.place_offer(
                session,
                principal,
                request_id,
                service.OfferTerms(
                    advance_rate=Decimal("0.9"),
                    annual_rate=Decimal("0.05"),
                    fee=Decimal("10.00"),
                    fee_currency="EUR",
                    day_count=DayCount.act_360,
                    recourse=True,
                    expires_at=None,
                ),
                FinancingSettings(),
            )
            offers.append(placed.id)
    return offers


async def _round(
    http: Any, market: Any, supplier_headers: dict[str, str], banks: list[Any]
) -> tuple[str, str, list[int]]:
    rid = await receivable(http, market)
    created = await http.post(
        "/v1/financing-requests",
        json={"receivable_ids": [rid], "closes_at": closes_in(3600)},
        headers=supplier_headers,
    )
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    offers = await _offers(request_id, banks)
    answers = await asyncio.gather(
        *(http.post(f"/v1/offers/{o}/accept", headers=supplier_headers) for o in offers)
    )
    return request_id, rid, [a.status_code for a in answers]


async def test_fifty_concurrent_acceptances_finance_once_twenty_rounds(http, market):
    banks = [await new_party(Role.bank) for _ in range(BANKS)]
    [supplier_headers] = await _headers(http, [market.supplier])
    for _ in range(ROUNDS):
        request_id, _, codes = await _round(http, market, supplier_headers, banks)
        assert sorted(codes) == [201] + [409] * (BANKS - 1), codes
        assert await _financings_of(request_id) == 1
        offers = await http.get(
            f"/v1/financing-requests/{request_id}/offers", headers=supplier_headers
        )
        states = sorted(o["state"] for o in offers.json())
        assert states == ["accepted"] + ["lost"] * (BANKS - 1)


async def test_one_receivable_raced_into_many_requests_is_offered_once(http, market):
    [supplier_headers] = await _headers(http, [market.supplier])
    for _ in range(5):
        rid = await receivable(http, market)
        answers = await asyncio.gather(
            *(
                http.post(
                    "/v1/financing-requests",
                    json={"receivable_ids": [rid], "closes_at": closes_in(3600)},
                    headers=supplier_headers,
                )
                for _ in range(10)
            )
        )
        codes = sorted(a.status_code for a in answers)
        assert codes == [201] + [409] * 9, codes
        async with db.transaction() as session:
            live = await session.execute(
                text(
                    "SELECT count(*) FROM platform.financing_request_items "
                    "WHERE receivable_id = :r AND live"
                ),
                {"r": rid},
            )
            assert live.scalar_one() == 1


def _api_process(port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "QILIAN_AUTH_TOKEN_PER_IP": "100000",
        "QILIAN_AUTH_TOKEN_PER_CLIENT": "100000",
        "QILIAN_AUTH_WRITES_PER_PRINCIPAL": "100000",
        "QILIAN_AUTH_WRITES_PER_IP": "100000",
        "QILIAN_FINANCING_MIN_AUCTION_SECONDS": "1",
    }
    command = [
        str(Path(sys.executable).parent / "uvicorn"),
        "services.api.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
    ]
    with open(log, "ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture
def two_apis(db_engine, tmp_path):
    ports = [free_port(), free_port()]
    processes = [_api_process(p, tmp_path / f"api-{p}.log") for p in ports]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    deadline = time.monotonic() + 60
    for url, process in zip(urls, processes, strict=True):
        while True:
            assert process.poll() is None, "an API process exited (see its log in tmp_path)"
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the API processes did not start"
            time.sleep(0.2)
    yield urls
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


async def test_two_api_processes_accept_once(two_apis, http, market):
    banks = [await new_party(Role.bank) for _ in range(BANKS)]
    async with (
        httpx.AsyncClient(base_url=two_apis[0], timeout=180) as one,
        httpx.AsyncClient(base_url=two_apis[1], timeout=180) as two,
    ):
        bank_headers = [bearer(await get_token(one, b.org)) for b in banks]
        supplier_headers = bearer(await get_token(one, market.supplier.org))
        for _ in range(3):
            rid = await receivable(http, market)
            created = await one.post(
                "/v1/financing-requests",
                json={"receivable_ids": [rid], "closes_at": closes_in(3600)},
                headers=supplier_headers,
            )
            assert created.status_code == 201, created.text
            request_id = created.json()["id"]
            offers = []
            for i, headers in enumerate(bank_headers):
                api = one if i % 2 else two
                placed = await api.post(
                    f"/v1/financing-requests/{request_id}/offers", json=terms(), headers=headers
                )
                assert placed.status_code == 201, placed.text
                offers.append(placed.json()["id"])
            answers = await asyncio.gather(
                *(
                    (one if i % 2 else two).post(f"/v1/offers/{o}/accept", headers=supplier_headers)
                    for i, o in enumerate(offers)
                )
            )
            codes = sorted(a.status_code for a in answers)
            assert codes == [201] + [409] * (BANKS - 1), codes
            assert await _financings_of(request_id) == 1
