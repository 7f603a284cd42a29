"""Render time of each web page on a demo-sized data set, against a bare FastAPI endpoint of the
same application in the same run.

Run: ``uv run python bench/pages.py`` (``--receivables 300 --requests 300``; ``--database-url``
to use a server instead of an embedded PostgreSQL; ``--append-docs`` appends the printed section
to docs/benchmarks.md).

The api application runs in this process and is called over ASGI with ``httpx`` (no network, no
uvicorn): what is measured is the page's own work — the session lookup, the domain queries, the
template in the page's language — and the same for a bare ``GET`` that returns a fixed HTML
string, so the ratio is what a page costs above the framework's floor. The ledger is answered by
a stub that knows no event (instant ``404``), so the figures exclude the ledger round trip that
the receivable page and the table's anchoring badges make in production.

Data: one supplier uploads ``--receivables`` invoices on one core firm through ``POST
/v1/invoices``; the core firm confirms two thirds of them; the supplier splits ten and transfers
a part of each to a second supplier. Each page is requested once per round, ``--requests``
rounds after a warm-up (interleaved, so that the machine's load weighs on every page alike);
p50 and p99 of the wall time per request.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import os
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.common import machine
from bench.ingest import percentile

REPO_ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery staple"
SUPPLIER_VAT, RECEIVER_VAT, CORE_VAT = "DE811907980", "DE900000001", "DE136695976"


@dataclass
class Row:
    page: str
    who: str
    p50: float
    p99: float
    mean: float
    size: int


async def make_people(parties: list[tuple[str, str, str]]) -> dict[str, tuple[str, str, str]]:
    """Organisations with one person and one client each, from (key, role, tax id):
    key → (org id, username, client id:secret)."""
    from qilian.kit import db
    from services.api.audit import service as audit
    from services.api.auth import service as auth_service
    from services.api.organizations import service as org_service
    from services.api.organizations.models import Cluster, OrganizationBase, Role

    made: dict[str, tuple[str, str, str]] = {}
    async with db.transaction() as session:
        for key, role_name, vat in parties:
            role = Role(role_name)
            org = await org_service.register(
                session,
                OrganizationBase(
                    name=f"Bench {key}",
                    role=role,
                    tax_id=vat,
                    tax_scheme="BENCH",
                    cluster=Cluster.pv if role == Role.core_firm else None,
                ),
            )
            username = f"bench-{key}-{uuid.uuid4().hex[:6]}"
            await auth_service.create_user(session, audit.SYSTEM, org.id, username, PASSWORD)
            issued = await auth_service.issue_client(session, audit.SYSTEM, org.id)
            made[key] = (org.id, username, f"{issued.client_id}:{issued.client_secret}")
    return made


async def _people() -> dict[str, tuple[str, str, str]]:
    return await make_people(
        [
            ("supplier", "supplier", SUPPLIER_VAT),
            ("receiver", "supplier", RECEIVER_VAT),
            ("core_firm", "core_firm", CORE_VAT),
            ("auditor", "auditor", "AUDIT-1"),
        ]
    )


async def token(http: httpx.AsyncClient, client: str) -> dict[str, str]:
    client_id, secret = client.split(":", 1)
    answer = await http.post(
        "/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def _data(http: httpx.AsyncClient, people: dict[str, Any], count: int) -> dict[str, str]:
    from tests.unit.invoices.samples import ubl_invoice

    supplier = await token(http, people["supplier"][2])
    core = await token(http, people["core_firm"][2])
    ids = []
    for i in range(count):
        month, day = 3 + i % 4, 1 + i % 28  # due within 150 days of issue
        body = ubl_invoice(
            number=f"PG-{i:05d}",
            issue="2026-02-01",
            due=f"2026-{month:02d}-{day:02d}",
            seller_vat=SUPPLIER_VAT,
            buyer_vat=CORE_VAT,
            payable=f"{1000 + i}.00",
            total=f"{1000 + i}.00",
            currency="CNY",
        )
        answer = await http.post("/v1/invoices", files={"file": ("i.xml", body)}, headers=supplier)
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["receivable"]["id"])
    confirmed = ids[: count * 2 // 3]
    for start in range(0, len(confirmed), 200):
        items = [{"receivable_id": i} for i in confirmed[start : start + 200]]
        answer = await http.post(
            "/v1/receivables/bulk-confirm", json={"items": items}, headers=core
        )
        answer.raise_for_status()
    for i, rid in enumerate(confirmed[:10]):
        rest = f"{1000 + i - 400}.00"  # the invoice's amount (1000 + i) less the first part
        answer = await http.post(
            f"/v1/receivables/{rid}/split",
            json={"parts": [{"amount": "400.00"}, {"amount": rest}]},
            headers=supplier,
        )
        answer.raise_for_status()
        part = answer.json()["children"][0]["id"]
        moved = await http.post(
            f"/v1/receivables/{part}/transfer",
            json={"to_organization_id": people["receiver"][0]},
            headers=supplier,
        )
        moved.raise_for_status()
    return {"pending": ids[-1], "confirmed": confirmed[-1], "split": confirmed[0]}


async def _login(app: Any, username: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://bench", timeout=60
    )
    answer = await client.post("/web/login", data={"username": username, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    return client


async def _measure(
    clients: dict[str, httpx.AsyncClient],
    pages: list[tuple[str, str, str]],
    requests: int,
    warmup: int,
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Every page once per round, ``requests`` rounds: a change of the machine's load during the
    run weighs on every page alike, so the ratios hold even on a busy machine."""
    times: dict[str, list[float]] = {path: [] for _, _, path in pages}
    sizes: dict[str, int] = {}
    for round_ in range(warmup + requests):
        for _, who, path in pages:
            start = time.perf_counter()
            answer = await clients[who].get(path)
            elapsed = (time.perf_counter() - start) * 1000
            assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
            sizes[path] = len(answer.content)
            if round_ >= warmup:
                times[path].append(elapsed)
    return times, sizes


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
    print(f"data: {args.receivables} receivables …", flush=True)
    ids = await _data(api, people, args.receivables)
    clients = {key: await _login(app, people[key][1]) for key in ("supplier", "core_firm")}
    clients["auditor"] = await _login(app, people["auditor"][1])
    clients["anonymous"] = api
    table = (await clients["supplier"].get("/web/receivables?lang=en")).text
    found = re.search(r'hx-get="(/web/anchoring/receivables\?[^"]+)"', table)
    if found is None:
        raise SystemExit("the receivables table asks for no anchoring badges")
    badges = html.unescape(found[1])
    pages: list[tuple[str, str, str]] = [
        ("bare FastAPI endpoint (fixed HTML)", "anonymous", "/bench/bare"),
        ("login page", "anonymous", "/web/login"),
        ("receivables table (50 rows), Chinese", "supplier", "/web/receivables?lang=zh-CN"),
        ("receivables table (50 rows), English", "supplier", "/web/receivables?lang=en"),
        ("anchoring badges of the 50 rows (htmx, one request)", "supplier", badges),
        ("one receivable with its forms", "supplier", f"/web/receivables/{ids['confirmed']}"),
        ("upload page", "supplier", "/web/invoices"),
        ("confirmation queue", "core_firm", "/web/confirmations"),
        ("payables calendar", "core_firm", "/web/payables"),
        ("lineage tree", "core_firm", f"/web/receivables/{ids['split']}/lineage"),
        ("auditor form", "auditor", "/web/audit"),
    ]
    times, sizes = await _measure(clients, pages, args.requests, args.warmup)
    rows = [
        Row(
            name,
            who,
            percentile(times[path], 50),
            percentile(times[path], 99),
            statistics.mean(times[path]),
            sizes[path],
        )
        for name, who, path in pages
    ]
    for client in clients.values():
        await client.aclose()
    await ratelimit.dispose()
    await db.dispose_engine()
    return rows


def report(args: argparse.Namespace, rows: list[Row]) -> str:
    bare = rows[0].p50
    lines = [
        "## Web pages: render time against a bare endpoint (`bench/pages.py`)",
        "",
        "```",
        f"uv run python bench/pages.py --receivables {args.receivables} --requests {args.requests}"
        + (" --database-url postgresql://…" if args.database_url else ""),
        "```",
        "",
        f"{machine()}; the api application in the benchmark process over ASGI (no network), "
        "PostgreSQL "
        + ("of `--database-url`" if args.database_url else "embedded, on a unix socket")
        + f"; {args.receivables} receivables of one supplier on one core firm, two thirds "
        "confirmed, ten split with a part transferred; the ledger stubbed (no ledger round trip). "
        f"{args.requests} rounds of one request per page in turn, after {args.warmup} rounds "
        f"of warm-up; load average at the end {os.getloadavg()[0]:.1f}.",
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--receivables", type=int, default=300)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--database-url", default=None, help="a server to use instead")
    parser.add_argument("--append-docs", action="store_true", help="append to docs/benchmarks.md")
    args = parser.parse_args()
    if not 12 <= args.receivables <= 5000 or not 10 <= args.requests <= 10_000:
        parser.error("--receivables is 12…5000 and --requests 10…10000")
    rows = with_database(args, lambda: asyncio.run(_run(args)))
    section = report(args, rows)
    print(section)
    if args.append_docs:
        docs = REPO_ROOT / "docs" / "benchmarks.md"
        docs.write_text(docs.read_text(encoding="utf-8").rstrip("\n") + "\n\n" + section)


def with_database(args: argparse.Namespace, body: Callable[[], list[Row]]) -> list[Row]:
    """A throwaway database (on an embedded PostgreSQL unless ``--database-url``), migrated."""
    import psycopg
    from sqlalchemy.engine import make_url

    from qilian.cli.main import migrate_database
    from qilian.kit.db import sync_url
    from qilian.kit.settings import get_settings

    workdir = Path(tempfile.mkdtemp(prefix="qilian-bench-pages-"))
    pg = None
    admin_url = args.database_url
    if admin_url is None:
        from qilian.cli import embedded

        pg = embedded.start(workdir / "pg")
        admin_url = pg.url("postgres")
    name = f"qilian_bench_{uuid.uuid4().hex[:8]}"
    admin = make_url(admin_url)
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = admin.set(drivername="postgresql+asyncpg", database=name)
        database_url = url.render_as_string(hide_password=False)
        os.environ.update(
            {
                "QILIAN_ENV": "development",
                "QILIAN_DATABASE_URL": database_url,
                "QILIAN_BROKER_URL": "sqla+" + sync_url(database_url),
                "QILIAN_VAR_DIR": str(workdir / "var"),
                "QILIAN_LOG_LEVEL": "WARNING",
            }
        )
        get_settings.cache_clear()
        migrate_database(database_url)
        return body()
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    main()
