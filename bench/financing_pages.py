"""Render time of the financing web pages (supplier and bank), measured as ``bench/pages.py``
measures the other pages: the api application in this process over ASGI, each page against a
bare endpoint of the same application, p50 and p99 of ``--requests`` requests after a warm-up.

Run: ``uv run python bench/financing_pages.py`` (``--requests 300 --market 50``;
``--database-url`` to use a server instead of an embedded PostgreSQL).

Data: one supplier with ``--market`` + 20 confirmed receivables due in 60 to 120 days on one
core firm; ``--market`` financing requests (one receivable each); three banks bid on every one;
the supplier accepts the best offer on a fifth of them (financings ``registering``: no worker
runs). The ledger is answered by a stub that knows no event (instant ``404``), so the anchoring
figures exclude the ledger round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from bench.common import machine
from bench.ingest import percentile
from bench.pages import PASSWORD, Row, make_people, token, with_database

SUPPLIER_VAT, CORE_VAT = "DE811907981", "DE136695977"


async def _people() -> dict[str, tuple[str, str, str]]:
    """role key → (org id, username, client id:secret)."""
    return await make_people(
        [
            ("supplier", "supplier", SUPPLIER_VAT),
            ("core_firm", "core_firm", CORE_VAT),
            ("bank_1", "bank", "BANK-1"),
            ("bank_2", "bank", "BANK-2"),
            ("bank_3", "bank", "BANK-3"),
        ]
    )


async def _market(http: httpx.AsyncClient, people: dict[str, Any], count: int) -> dict[str, str]:
    from tests.unit.invoices.samples import ubl_invoice

    supplier = await token(http, people["supplier"][2])
    core = await token(http, people["core_firm"][2])
    banks = [await token(http, people[f"bank_{i}"][2]) for i in (1, 2, 3)]
    today = date.today()
    ids = []
    for i in range(count + 20):
        body = ubl_invoice(
            number=f"FP-{i:05d}",
            issue=(today - timedelta(days=5)).isoformat(),
            due=(today + timedelta(days=60 + i % 60)).isoformat(),
            seller_vat=SUPPLIER_VAT,
            buyer_vat=CORE_VAT,
            payable=f"{10000 + i}.00",
            total=f"{10000 + i}.00",
            currency="CNY",
        )
        answer = await http.post("/v1/invoices", files={"file": ("i.xml", body)}, headers=supplier)
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["receivable"]["id"])
    items = [{"receivable_id": i} for i in ids]
    confirmed = await http.post("/v1/receivables/bulk-confirm", json={"items": items}, headers=core)
    confirmed.raise_for_status()
    closes_at = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    requests, financings = [], []
    for n, rid in enumerate(ids[:count]):
        created = await http.post(
            "/v1/financing-requests",
            json={"receivable_ids": [rid], "closes_at": closes_at},
            headers=supplier,
        )
        assert created.status_code == 201, created.text
        request_id = created.json()["id"]
        requests.append(request_id)
        offers = []
        for b, bank in enumerate(banks):
            terms = {
                "advance_rate": "0.90",
                "annual_rate": f"0.0{4 + b}",
                "fee": {"amount": f"{10 * (b + 1)}.00", "currency": "CNY"},
                "day_count": "ACT/360",
                "recourse": True,
            }
            answer = await http.post(
                f"/v1/financing-requests/{request_id}/offers", json=terms, headers=bank
            )
            assert answer.status_code == 201, answer.text
            offers.append(answer.json()["id"])
        if n % 5 == 0:
            accepted = await http.post(f"/v1/offers/{offers[0]}/accept", headers=supplier)
            assert accepted.status_code == 201, accepted.text
            financings.append(accepted.json()["id"])
    return {"open": requests[1], "financing": financings[0]}


async def _measure(
    client: httpx.AsyncClient, path: str, requests: int, warmup: int
) -> tuple[list[float], int]:
    """Wall time of ``requests`` GETs of one page one after another, after ``warmup``."""
    size = 0
    for _ in range(warmup):
        answer = await client.get(path)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
        size = len(answer.content)
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        answer = await client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        assert answer.status_code == 200, path
    return times, size


async def _login(app: Any, username: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://bench", timeout=60
    )
    answer = await client.post("/web/login", data={"username": username, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    return client


async def _run(args: argparse.Namespace) -> list[Row]:
    from fastapi.responses import HTMLResponse

    from qilian.kit import db
    from qilian.kit.settings import get_settings
    from services.api.auth import ratelimit
    from services.api.auth.settings import AuthSettings
    from services.api.main import create_app

    people = await _people()
    app = create_app(get_settings())
    app.state.auth_settings = AuthSettings(
        writes_per_principal=10**7, writes_per_ip=10**7, login_per_ip=10**4, token_per_ip=10**4
    )
    app.state.ledger_transport = httpx.MockTransport(
        lambda request: httpx.Response(404, json={"status": 404, "title": "Not found"})
    )

    @app.get("/bench/bare", include_in_schema=False)
    async def bare() -> HTMLResponse:
        return HTMLResponse("<!doctype html><title>bare</title><p>ok</p>")

    api = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://bench")
    print(f"data: {args.market} financing requests …", flush=True)
    ids = await _market(api, people, args.market)
    clients = {key: await _login(app, people[key][1]) for key in ("supplier", "bank_1")}
    clients["anonymous"] = api
    quote = "advance_rate=0.9&annual_rate=0.05&fee=10&day_count=ACT/360"
    pages: list[tuple[str, str, str]] = [
        ("bare FastAPI endpoint (fixed HTML)", "anonymous", "/bench/bare"),
        ("my financing requests and financings", "supplier", "/web/financing"),
        ("request financing form", "supplier", "/web/financing/new"),
        ("one request, three ranked offers", "supplier", f"/web/financing/requests/{ids['open']}"),
        ("one financing", "supplier", f"/web/financings/{ids['financing']}"),
        ("open requests, Chinese", "bank_1", "/web/bank/requests?lang=zh-CN"),
        ("open requests, English", "bank_1", "/web/bank/requests?lang=en"),
        ("one request with the bid form", "bank_1", f"/web/bank/requests/{ids['open']}"),
        ("live quote (htmx)", "bank_1", f"/web/bank/requests/{ids['open']}/quote?{quote}"),
        ("my offers", "bank_1", "/web/bank/offers"),
        ("portfolio", "bank_1", "/web/bank/portfolio"),
    ]
    rows = []
    for name, who, path in pages:
        times, size = await _measure(clients[who], path, args.requests, args.warmup)
        rows.append(
            Row(
                name,
                who,
                percentile(times, 50),
                percentile(times, 99),
                statistics.mean(times),
                size,
            )
        )
        print(f"{name}: p50 {rows[-1].p50:.2f} ms", flush=True)
    for client in clients.values():
        await client.aclose()
    await ratelimit.dispose()
    await db.dispose_engine()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--market", type=int, default=50)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--database-url", default=None, help="a server to use instead")
    args = parser.parse_args()
    if not 5 <= args.market <= 1000 or not 10 <= args.requests <= 10_000:
        parser.error("--market is 5…1000 and --requests 10…10000")
    rows = with_database(args, lambda: asyncio.run(_run(args)))
    print(report(args, rows))


def report(args: argparse.Namespace, rows: list[Row]) -> str:
    bare = rows[0].p50
    lines = [
        "## Financing web pages: render time against a bare endpoint (`bench/financing_pages.py`)",
        "",
        "```",
        f"uv run python bench/financing_pages.py --market {args.market} --requests {args.requests}",
        "```",
        "",
        f"{machine()}; as `bench/pages.py`: the api application over ASGI in the benchmark "
        f"process; {args.market} financing requests with three offers each, a fifth accepted; "
        f"the ledger stubbed. {args.requests} requests per page after {args.warmup} of warm-up.",
        "",
        "| page | as | p50 ms | p99 ms | mean ms | p50 / bare | HTML bytes |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.page} | {row.who} | {row.p50:.2f} | {row.p99:.2f} | {row.mean:.2f} | "
            f"{row.p50 / bare:.1f}× | {row.size:,} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
