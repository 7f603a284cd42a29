"""The marketplace under load, in one run: bank bots bidding on open financing requests, the
suppliers accepting the best offers, and a bare FastAPI endpoint hit the same way as the ceiling.

Run: ``uv run python bench/market.py`` (``--requests 1000 --banks 20``; a smaller ``--requests``
for a quick run; ``--append-docs`` appends the printed section to docs/benchmarks.md).
``--statements 6`` is a diagnostic instead: in this process, one client, the SQL statements and time
of each bid and acceptance (and an acceptance's statements by kind).

Everything stays on this machine: an embedded PostgreSQL in a temporary directory (or the server
of ``--database-url``, on which a throwaway database is created and dropped), the API
(``--api-workers`` uvicorn workers) and the ledger (one worker, which answers the anchoring status
a bank sees on each request) as real ``uvicorn`` processes on 127.0.0.1. No worker, beat or chain:
what is measured is the API; the registry saga that an acceptance starts waits in the outbox.

Phases, all through the public API with client-credentials tokens:

1. **setup**: ``--suppliers`` suppliers upload ``--requests`` UBL invoices on one core firm (cluster
   ``pv``), the core firm confirms each, each supplier opens one financing request per receivable
   (``POST /v1/financing-requests``, closing in an hour);
2. **bids**: one bot lists every open request (pages of 50; the API asks the ledger about each
   receivable listed, which is timed apart), then ``--banks`` copies of ``examples/bank_bot.py``,
   one thread each, bid at the same time on every request of that list by their own rules
   (``POST …/offers`` with an ``Idempotency-Key``). Bids per second over the phase, and the
   latency of each bid;
3. **accepts**: as the suppliers, read each request's ranked offers and accept the best
   (``POST /v1/offers/{id}/accept``): the first ``--sequential-accepts`` requests one after another
   from one client (the cost of one acceptance), the others from ``--accept-clients`` threads at
   once; the latency of each acceptance (and of reading the ranking, apart);
4. **ceiling**: a bare FastAPI endpoint (a pydantic body like an offer's, no database, no auth)
   served by uvicorn with the same number of workers, posted to by the same number of threads as
   each phase, as many times: what the machine, uvicorn and the HTTP client allow at best.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import BaseModel

from bench.common import machine
from bench.ingest import free_port, percentile, wait_http

REPO_ROOT = Path(__file__).resolve().parents[1]
CORE_VAT = "DE136695976"
STALE: list[int] = []  # setup calls that did not yet see the previous call's committed change

# ---------------------------------------------------------------- the ceiling

ceiling_app = FastAPI()


class _Fee(BaseModel):
    amount: str
    currency: str


class _Offer(BaseModel):
    advance_rate: Decimal
    annual_rate: Decimal
    fee: _Fee
    day_count: str
    recourse: bool


@ceiling_app.post("/v1/echo/{request_id}", status_code=201)
async def echo(request_id: str, body: _Offer) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "request_id": request_id, **body.model_dump(mode="json")}


# ---------------------------------------------------------------- setup


def supplier_vat(n: int) -> str:
    return f"DE7{n:08d}"


async def seed(suppliers: int, banks: int) -> dict[str, list[tuple[str, str]]]:
    """The organisations and their API clients: ``{"supplier": […], "core": […], "bank": […]}``."""
    from qilian.kit import db
    from services.api.audit import service as audit
    from services.api.auth import service as auth_service
    from services.api.organizations import service as org_service
    from services.api.organizations.models import Cluster, OrganizationBase, Role

    out: dict[str, list[tuple[str, str]]] = {"supplier": [], "core": [], "bank": []}

    async def register(kind: str, role: Role, name: str, tax_id: str) -> None:
        org = await org_service.register(
            session,
            OrganizationBase(
                name=name,
                role=role,
                tax_id=tax_id,
                tax_scheme="BENCH",
                cluster=Cluster.pv if role == Role.core_firm else None,
            ),
        )
        issued = await auth_service.issue_client(session, audit.SYSTEM, org.id)
        out[kind].append((issued.client_id, issued.client_secret))

    async with db.transaction() as session:
        await register("core", Role.core_firm, "Bench Core Firm", CORE_VAT)
        for n in range(suppliers):
            await register("supplier", Role.supplier, f"Bench Supplier {n}", supplier_vat(n))
        for n in range(banks):
            await register("bank", Role.bank, f"Bench Bank {n}", f"BANK{n:04d}")
    await db.dispose_engine()
    return out


def token(base: str, client_id: str, secret: str) -> str:
    response = httpx.post(
        f"{base}/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def in_threads(count: int, work: Callable[[int], None]) -> float:
    """Run ``work(k)`` for k in 0…count−1, one thread each; the wall time."""
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            work(k)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(count)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - start


def setup_requests(
    base: str, clients: dict[str, list[tuple[str, str]]], count: int, threads: int
) -> tuple[list[tuple[int, str]], float, list[float]]:
    """``count`` confirmed receivables, each in a financing request of its supplier: the
    (supplier index, request id) pairs, the wall time and the creation latencies."""
    from tests.unit.invoices.samples import ubl_invoice

    suppliers = [token(base, *c) for c in clients["supplier"]]
    core = token(base, *clients["core"][0])
    today = datetime.now(UTC).date()
    created: list[tuple[int, str]] = []
    latencies: list[float] = []

    def settled(http: httpx.Client, path: str, **kw: Any) -> httpx.Response:
        """``POST path``, again while it answers 404/409 (at most 5 s): the API commits a
        request's transaction after it has sent the response, so the next call can miss it."""
        response = http.post(path, **kw)
        for _ in range(50):
            if response.status_code not in (404, 409):
                break
            STALE.append(response.status_code)
            time.sleep(0.1)
            response = http.post(path, **kw)
        return response

    def work(k: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as http:
            for i in range(k, count, threads):
                n = i % len(suppliers)
                auth = {"Authorization": f"Bearer {suppliers[n]}"}
                amount = f"{10_000 + (i * 7919) % 990_000}.00"
                document = ubl_invoice(
                    number=f"MKT-{i:06d}",
                    issue=(today - timedelta(days=3)).isoformat(),
                    due=(today + timedelta(days=30 + i % 140)).isoformat(),
                    seller_vat=supplier_vat(n),
                    buyer_vat=CORE_VAT,
                    net=amount,
                    tax="0.00",
                    total=amount,
                    payable=amount,
                )
                response = http.post(
                    "/v1/invoices",
                    content=document,
                    headers={**auth, "Content-Type": "application/xml"},
                )
                assert response.status_code == 201, response.text
                rid = response.json()["receivable"]["id"]
                response = settled(
                    http,
                    f"/v1/receivables/{rid}/confirm",
                    json={},
                    headers={"Authorization": f"Bearer {core}"},
                )
                assert response.status_code == 200, response.text
                closes_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
                start = time.perf_counter()
                response = settled(
                    http,
                    "/v1/financing-requests",
                    json={"receivable_ids": [rid], "closes_at": closes_at},
                    headers=auth,
                )
                latencies.append(time.perf_counter() - start)
                assert response.status_code == 201, response.text
                created.append((n, response.json()["id"]))

    elapsed = in_threads(threads, work)
    return created, elapsed, latencies


# ---------------------------------------------------------------- phases


def rule_of(n: int) -> str:
    """Twenty different banks: advance 80–99 %, base rate 3.0–6.8 %, fees 0–190; each bids
    whatever anchoring the listing shows (the ledger's answer to the API is not measured here)."""
    return (
        f"advance=0.{80 + n % 20},rate=0.{30 + 2 * n:03d},fee={10 * (n % 20)},"
        f"day_count=ACT/{360 if n % 2 else 365},tier=0.005,month=0.001,anchored=unknown"
    )


@dataclass
class Phase:
    count: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def ms(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000 if self.latencies else 0.0


def phase_bids(base: str, banks: list[tuple[str, str]], expected: int) -> Phase:
    from examples.bank_bot import BankBot, Report, Rule

    bots = [
        BankBot(base, cid, secret, Rule.parse(rule_of(n)), timeout=120)
        for n, (cid, secret) in enumerate(banks)
    ]
    for bot in bots:
        bot.token()
        bot.bid_on()  # what it bid on before: nothing
    reports = [Report() for _ in bots]
    # one listing, shared by every bot: listing costs the API a ledger lookup per receivable
    # (timed here on its own), and twenty listings at once would measure that, not the bids
    start = time.perf_counter()
    requests = bots[0].open_requests()
    listing = time.perf_counter() - start

    timeouts = [0] * len(bots)

    def work(k: int) -> None:
        # a round stops at a transport error; the next one skips what was bid and retries the
        # rest (a bid that timed out but was placed is answered again by its Idempotency-Key)
        for _ in range(10):
            try:
                bots[k].bid_round(reports[k], requests)
                return
            except httpx.HTTPError:
                timeouts[k] += 1

    elapsed = in_threads(len(bots), work)
    phase = Phase(
        count=sum(len(r.bids) for r in reports),
        seconds=elapsed,
        latencies=[t for bot in bots for t in bot.latencies["bid"]],
    )
    phase.extra = {
        "declined": sum(len(r.declined) for r in reports),
        "refused": sum(len(r.refused) for r in reports),
        "transport_errors": sum(timeouts),
        "seen": sum(r.seen for r in reports),
        "listed": len(requests),
        "listing_seconds": listing,
        "expected": expected,
    }
    for bot in bots:
        bot.close()
    return phase


def phase_accepts(
    base: str,
    suppliers: list[tuple[str, str]],
    requests: list[tuple[int, str]],
    threads: int,
) -> Phase:
    bearers = [token(base, *c) for c in suppliers]
    phase = Phase()
    ranking: list[float] = []
    wrong: list[str] = []
    unbid: list[str] = []

    def work(k: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as http:
            for n, request_id in requests[k::threads]:
                auth = {"Authorization": f"Bearer {bearers[n]}"}
                start = time.perf_counter()
                response = http.get(f"/v1/financing-requests/{request_id}/offers", headers=auth)
                ranking.append(time.perf_counter() - start)
                assert response.status_code == 200, response.text
                offers = [o for o in response.json() if o["rank"]]
                if not offers:  # every bank declined it
                    unbid.append(request_id)
                    continue
                best = offers[0]
                proceeds = [Decimal(o["net_proceeds"]["amount"]) for o in offers]
                if best["rank"] != 1 or proceeds != sorted(proceeds, reverse=True):
                    wrong.append(request_id)
                start = time.perf_counter()
                response = http.post(
                    f"/v1/offers/{best['id']}/accept",
                    headers={**auth, "Idempotency-Key": f"accept-{request_id}"},
                )
                phase.latencies.append(time.perf_counter() - start)
                assert response.status_code == 201, response.text

    phase.seconds = in_threads(threads, work)
    phase.count = len(phase.latencies)
    phase.extra = {
        "ranking_p50": percentile(ranking, 50),
        "ranking_p99": percentile(ranking, 99),
        "misranked": len(wrong),
        "without_offers": len(unbid),
    }
    return phase


def phase_ceiling(base: str, threads: int, total: int) -> Phase:
    phase = Phase()
    body = {
        "advance_rate": "0.90",
        "annual_rate": "0.045",
        "fee": {"amount": "10.00", "currency": "EUR"},
        "day_count": "ACT/360",
        "recourse": True,
    }
    lock = threading.Lock()

    def work(k: int) -> None:
        mine: list[float] = []
        with httpx.Client(base_url=base, timeout=60) as http:
            for i in range(k, total, threads):
                start = time.perf_counter()
                response = http.post(
                    f"/v1/echo/frq_{i}",
                    json=body,
                    headers={"Authorization": "Bearer x", "Idempotency-Key": str(i)},
                )
                mine.append(time.perf_counter() - start)
                assert response.status_code == 201, response.text
        with lock:
            phase.latencies.extend(mine)
            phase.count += len(mine)

    phase.seconds = in_threads(threads, work)
    return phase


# ---------------------------------------------------------------- processes


def uvicorn(app: str, port: int, workers: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "uvicorn"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
            app,
        ],
        env=env,
        cwd=REPO_ROOT,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Figures:
    setup: Phase = field(default_factory=Phase)
    bids: Phase = field(default_factory=Phase)
    accepts: Phase = field(default_factory=Phase)
    accepts_alone: Phase = field(default_factory=Phase)
    ceiling_bids: Phase = field(default_factory=Phase)
    ceiling_accepts: Phase = field(default_factory=Phase)
    ceiling_alone: Phase = field(default_factory=Phase)
    load: tuple[float, float] = (0.0, 0.0)  # load average before and after


def run(args: argparse.Namespace) -> Figures:
    figures = Figures(load=(os.getloadavg()[0], 0.0))
    workdir = Path(tempfile.mkdtemp(prefix="qilian-bench-market-"))
    pg = None
    admin_url = args.database_url
    created: tuple[str, str] | None = None  # (maintenance dsn, database): dropped at the end
    try:
        if admin_url is None:
            from qilian.cli import embedded

            pg = embedded.start(workdir / "pg")
            admin_url = pg.url("postgres")
        import psycopg
        from sqlalchemy.engine import make_url

        name = f"qilian_bench_{uuid.uuid4().hex[:8]}"
        admin = make_url(admin_url)
        dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created = (dsn, name)
        database_url = admin.set(drivername="postgresql+asyncpg", database=name).render_as_string(
            hide_password=False
        )
        from qilian.kit.db import sync_url

        api_port, ledger_port, ceiling_port = free_port(), free_port(), free_port()
        env = {
            **os.environ,
            "QILIAN_ENV": "development",
            "QILIAN_DATABASE_URL": database_url,
            "QILIAN_DATABASE_POOL_SIZE": "20",
            "QILIAN_BROKER_URL": "sqla+" + sync_url(database_url),
            "QILIAN_LEDGER_URL": f"http://127.0.0.1:{ledger_port}",
            "QILIAN_VAR_DIR": str(workdir / "var"),
            "QILIAN_LOG_LEVEL": "WARNING",
            "QILIAN_AUTH_WRITES_PER_PRINCIPAL": "10000000",
            "QILIAN_AUTH_WRITES_PER_IP": "10000000",
            "QILIAN_AUTH_TOKEN_PER_IP": "10000",
            "QILIAN_AUTH_TOKEN_PER_CLIENT": "10000",
        }
        os.environ.update({k: v for k, v in env.items() if k.startswith("QILIAN_")})
        from qilian.cli.main import migrate_database
        from qilian.kit.settings import get_settings

        get_settings.cache_clear()
        migrate_database(database_url)
        clients = asyncio.run(seed(args.suppliers, args.banks))
        if args.statements:
            asyncio.run(count_statements(clients, args.statements))
            return figures
        base = f"http://127.0.0.1:{api_port}"
        servers = [
            uvicorn("services.api.main:app", api_port, args.api_workers, env),
            uvicorn("services.ledger.main:app", ledger_port, 1, env),
        ]
        try:
            wait_http(f"{base}/healthz", 240)
            wait_http(f"http://127.0.0.1:{ledger_port}/healthz", 240)
            print(f"setup: {args.requests} confirmed receivables in requests …", flush=True)
            requests, seconds, latencies = setup_requests(
                base, clients, args.requests, args.setup_clients
            )
            figures.setup = Phase(len(requests), seconds, latencies)
            print(f"  {figures.setup.rate:.1f}/s", flush=True)
            print(f"bids: {args.banks} bots …", flush=True)
            figures.bids = phase_bids(base, clients["bank"], args.requests * args.banks)
            b = figures.bids
            print(
                f"  {b.count} bids, {b.rate:.1f}/s, p50 {b.ms(50):.0f} ms, p99 {b.ms(99):.0f} ms",
                b.extra,
                flush=True,
            )
            alone, rest = requests[: args.sequential_accepts], requests[args.sequential_accepts :]
            print(f"accepts: {len(alone)} by one client …", flush=True)
            figures.accepts_alone = phase_accepts(base, clients["supplier"], alone, 1)
            print(f"accepts: {len(rest)} from {args.accept_clients} clients …", flush=True)
            figures.accepts = phase_accepts(base, clients["supplier"], rest, args.accept_clients)
            a = figures.accepts
            print(f"  p50 {a.ms(50):.0f} ms, p99 {a.ms(99):.0f} ms", a.extra, flush=True)
        finally:
            for server in servers:
                stop(server)
        ceiling = uvicorn("bench.market:ceiling_app", ceiling_port, args.api_workers, env)
        try:
            ceiling_base = f"http://127.0.0.1:{ceiling_port}"
            wait_http(f"{ceiling_base}/docs", 240)
            print("ceiling: a bare FastAPI endpoint …", flush=True)
            figures.ceiling_bids = phase_ceiling(
                ceiling_base, args.banks, max(figures.bids.count, 1)
            )
            figures.ceiling_accepts = phase_ceiling(
                ceiling_base, args.accept_clients, max(figures.accepts.count, 1)
            )
            figures.ceiling_alone = phase_ceiling(
                ceiling_base, 1, max(figures.accepts_alone.count, 1)
            )
        finally:
            stop(ceiling)
    finally:
        if created is not None:
            import psycopg

            with psycopg.connect(created[0], autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{created[1]}" WITH (FORCE)')
        if pg is not None:
            pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    figures.load = (figures.load[0], os.getloadavg()[0])
    return figures


# ---------------------------------------------------------------- diagnostic: statements


async def count_statements(clients: dict[str, list[tuple[str, str]]], rounds: int) -> None:
    """In this process (ASGI, one client): SQL statements and time of each bid and acceptance,
    ``rounds`` requests with one offer from every bank; the statements of an acceptance by kind."""
    from collections import Counter

    from sqlalchemy import event

    from qilian.kit import db
    from qilian.kit.settings import get_settings
    from services.api.main import create_app
    from tests.unit.invoices.samples import ubl_invoice

    app = create_app(get_settings())
    counts: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    current: list[str] = []

    @event.listens_for(db.get_engine().sync_engine, "before_cursor_execute")
    def _count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if current:
            counts[current[0]] += 1
            if current[0] == "accept":
                kinds[" ".join(statement.split())[:60]] += 1

    times: dict[str, list[float]] = {"bid": [], "accept": []}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=60) as h:

        async def auth(client_id: str, secret: str) -> dict[str, str]:
            response = await h.post(
                "/v1/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": client_id,
                    "client_secret": secret,
                },
            )
            return {"Authorization": "Bearer " + response.json()["access_token"]}

        supplier = await auth(*clients["supplier"][0])
        core = await auth(*clients["core"][0])
        banks = [await auth(*b) for b in clients["bank"]]
        today = datetime.now(UTC).date()
        for i in range(rounds):
            document = ubl_invoice(
                number=f"STMT-{i:04d}",
                issue=(today - timedelta(days=3)).isoformat(),
                due=(today + timedelta(days=60)).isoformat(),
                seller_vat=supplier_vat(0),
                buyer_vat=CORE_VAT,
                net="1000.00",
                tax="0.00",
                total="1000.00",
                payable="1000.00",
            )
            response = await h.post(
                "/v1/invoices",
                content=document,
                headers={**supplier, "Content-Type": "application/xml"},
            )
            rid = response.json()["receivable"]["id"]
            await h.post(f"/v1/receivables/{rid}/confirm", json={}, headers=core)
            closes_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
            response = await h.post(
                "/v1/financing-requests",
                json={"receivable_ids": [rid], "closes_at": closes_at},
                headers=supplier,
            )
            request_id = response.json()["id"]
            for n, bank in enumerate(banks):
                body = {
                    "advance_rate": "0.9",
                    "annual_rate": f"0.0{n + 10}",
                    "fee": {"amount": "1.00", "currency": "EUR"},
                    "day_count": "ACT/360",
                    "recourse": True,
                }
                current[:] = ["bid"]
                start = time.perf_counter()
                response = await h.post(
                    f"/v1/financing-requests/{request_id}/offers",
                    json=body,
                    headers={**bank, "Idempotency-Key": uuid.uuid4().hex},
                )
                times["bid"].append(time.perf_counter() - start)
                current.clear()
                assert response.status_code == 201, response.text
            ranked = await h.get(f"/v1/financing-requests/{request_id}/offers", headers=supplier)
            current[:] = ["accept"]
            start = time.perf_counter()
            response = await h.post(
                f"/v1/offers/{ranked.json()[0]['id']}/accept",
                headers={**supplier, "Idempotency-Key": uuid.uuid4().hex},
            )
            times["accept"].append(time.perf_counter() - start)
            current.clear()
            assert response.status_code == 201, response.text
    await db.dispose_engine()
    bids = rounds * len(banks)
    print(
        f"statements: {counts['bid'] / bids:.1f} per bid, {counts['accept'] / rounds:.1f} per "
        f"acceptance ({len(banks)} offers on the request)"
    )
    for what, values in times.items():
        print(
            f"{what}: median {percentile(values, 50) * 1000:.1f} ms, "
            f"fastest {min(values) * 1000:.1f} ms ({len(values)} calls)"
        )
    print("an acceptance's statements by kind:")
    for kind, n in kinds.most_common():
        print(f"  {n / rounds:5.1f}  {kind}")


def report(args: argparse.Namespace, f: Figures) -> str:
    def row(what: str, p: Phase, ceiling: Phase | None = None) -> str:
        ratios = (
            f"{p.rate / ceiling.rate:.2f} | {p.ms(50) / ceiling.ms(50):.1f}× / "
            f"{p.ms(99) / ceiling.ms(99):.1f}×"
            if ceiling and ceiling.rate and ceiling.ms(50) and ceiling.ms(99)
            else "— | —"
        )
        return (
            f"| {what} | {p.count:,} | {p.seconds:.1f} s | {p.rate:,.0f} | "
            f"{p.ms(50):.0f} / {p.ms(99):.0f} / {max(p.latencies, default=0) * 1000:.0f} ms | "
            f"{ratios} |"
        )

    bids, accepts = f.bids, f.accepts
    lines = [
        "```",
        "uv run python bench/market.py "
        f"--requests {args.requests} --banks {args.banks} --suppliers {args.suppliers} "
        f"--accept-clients {args.accept_clients} --sequential-accepts {args.sequential_accepts} "
        f"--api-workers {args.api_workers}",
        "```",
        "",
        f"{machine()}; load average {f.load[0]:.1f} before, {f.load[1]:.1f} after. "
        + (
            "PostgreSQL (a server on this machine, over TCP)"
            if args.database_url
            else "Embedded PostgreSQL (unix socket)"
        )
        + f", the API as uvicorn ({args.api_workers} workers) and the ledger (1) on "
        "127.0.0.1; clients are threads of the benchmark process with keep-alive connections.",
        "",
        "| phase | calls | time | calls / s | latency p50 / p99 / max | ÷ ceiling: rate | "
        "÷ ceiling: p50 / p99 |",
        "|---|---:|---:|---:|---|---:|---|",
        row(f"setup: open a request ({args.setup_clients} clients)", f.setup),
        row(f"bids: {args.banks} bots at once", bids, f.ceiling_bids),
        row("accepts: one client after another", f.accepts_alone, f.ceiling_alone),
        row(f"accepts: {args.accept_clients} clients", accepts, f.ceiling_accepts),
        row(f"ceiling: bare FastAPI, {args.banks} clients", f.ceiling_bids),
        row(f"ceiling: bare FastAPI, {args.accept_clients} clients", f.ceiling_accepts),
        row("ceiling: bare FastAPI, one client", f.ceiling_alone),
        "",
        f"Bids: {bids.count:,} of {bids.extra.get('expected', 0):,} possible "
        f"({bids.extra.get('declined', 0):,} declined by the rules, "
        f"{bids.extra.get('refused', 0):,} refused by the API, "
        f"{bids.extra.get('transport_errors', 0)} client timeouts retried). "
        "Before the phase, one bot "
        f"listed the {bids.extra.get('listed', 0):,} open requests in "
        f"{bids.extra.get('listing_seconds', 0):.1f} s (pages of 50), and every bot bid from "
        "that list. "
        "Accepts: reading the ranked offers took p50 "
        f"{accepts.extra.get('ranking_p50', 0) * 1000:.0f} ms, p99 "
        f"{accepts.extra.get('ranking_p99', 0) * 1000:.0f} ms; "
        f"{accepts.extra.get('misranked', 0)} rankings out of order; "
        f"{accepts.extra.get('without_offers', 0)} requests had no offer to accept. "
        f"Setup: {len(STALE)} calls right after a write still saw the state before it "
        f"({', '.join(sorted({str(c) for c in STALE})) or 'none'}) and were repeated.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--banks", type=int, default=20)
    parser.add_argument("--suppliers", type=int, default=10)
    parser.add_argument("--setup-clients", type=int, default=8)
    parser.add_argument("--accept-clients", type=int, default=10)
    parser.add_argument(
        "--sequential-accepts", type=int, default=50, help="accepted first, by one client"
    )
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--database-url", default=None, help="a server to use instead")
    parser.add_argument("--json", action="store_true", help="also print the raw figures")
    parser.add_argument(
        "--statements",
        type=int,
        default=0,
        metavar="N",
        help="diagnostic instead: N requests bid on by every bank and accepted in this process, "
        "counting SQL statements",
    )
    parser.add_argument("--append-docs", action="store_true", help="append to docs/benchmarks.md")
    args = parser.parse_args()
    if not 1 <= args.requests <= 10_000 or not 1 <= args.banks <= 100:
        parser.error("--requests is 1…10000 and --banks 1…100")
    figures = run(args)
    if args.statements:
        return
    section = report(args, figures)
    print(section)
    if args.json:
        print(
            json.dumps(
                {
                    k: {"count": p.count, "seconds": p.seconds, **p.extra}
                    for k, p in vars(figures).items()
                    if isinstance(p, Phase)
                },
                indent=1,
            )
        )
    if args.append_docs:
        with (REPO_ROOT / "docs" / "benchmarks.md").open("a", encoding="utf-8") as handle:
            handle.write("\n" + section)


if __name__ == "__main__":
    main()
