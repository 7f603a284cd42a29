"""Invoice intake end to end, in one run: parse-only rate, single uploads at 50 concurrent
clients, a bulk import, and peak memory, with the ratios between them.

Run: ``uv run python bench/ingest.py`` (``--count 10000 --uploads 2000 --clients 50``;
``--append-docs`` appends the printed section to docs/benchmarks.md).

Everything stays on this machine: an embedded PostgreSQL in a temporary directory (or the server
of ``--database-url``, on which a throwaway database is created and dropped), the API as a real
``uvicorn`` process on 127.0.0.1, the bulk import processed by the same coroutine the Celery task
runs (``services.api.invoices.imports.process``), in this process. Every phase has a time bound.

Phases, over generated UBL 2.1 invoices of one supplier on one registered core firm, every
invoice distinct (numbers, dates and amounts vary):

1. **parse-only**: ``parse()`` of every invoice, one thread — what intake costs before rules,
   SQL and HTTP;
2. **single uploads**: ``--uploads`` invoices, ``POST /v1/invoices`` (raw body), from
   ``--clients`` concurrent keep-alive clients, spread over ``--suppliers`` supplier
   organisations (each invoice uploaded by its seller); throughput and latency percentiles (the
   API process has ``--api-workers`` uvicorn workers);
3. **bulk import**: ``--count`` other invoices in one ZIP, ``POST /v1/invoice-imports`` then the
   import processed to the end in chunks of ``--chunk`` rows; rows per second of processing.

Peak memory: ``ru_maxrss`` of this process (it holds every invoice in memory and runs the
import) and of the API server (children).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
SELLER_VAT = "DE811907980"
BUYER_VAT = "DE136695976"


def seller_vat(n: int) -> str:
    return SELLER_VAT if n == 0 else f"DE9{n:08d}"


def generate(count: int, prefix: str, seed: int, sellers: int = 1) -> list[bytes]:
    from tests.unit.invoices.samples import ubl_invoice

    rng = random.Random(seed)
    out = []
    for i in range(count):
        net = rng.randrange(100, 10_000_000)
        tax = net * 19 // 100
        issue = date(2026, 1, 1) + timedelta(days=rng.randrange(0, 300))
        due = issue + timedelta(days=rng.choice([30, 45, 60, 90, 120]))
        out.append(
            ubl_invoice(
                number=f"{prefix}-{i:06d}",
                issue=issue.isoformat(),
                due=due.isoformat(),
                seller_vat=seller_vat(i % sellers),
                buyer_vat=BUYER_VAT,
                net=f"{net / 100:.2f}",
                tax=f"{tax / 100:.2f}",
                total=f"{(net + tax) / 100:.2f}",
                payable=f"{(net + tax) / 100:.2f}",
            )
        )
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Figures:
    parse_rate: float = 0.0
    parse_seconds: float = 0.0
    upload_rate: float = 0.0
    upload_seconds: float = 0.0
    upload_ok: int = 0
    latencies_ms: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    sequential_ms: tuple[float, float, float] = (0.0, 0.0, 0.0)  # one client: p50, p99, mean
    bulk_rate: float = 0.0
    bulk_seconds: float = 0.0
    bulk_submit_seconds: float = 0.0
    bulk_created: int = 0
    rss_self_mib: float = 0.0
    rss_children_mib: float = 0.0


def phase_parse(invoices: list[bytes]) -> tuple[float, float]:
    from services.api.invoices.parsing import parse

    start = time.perf_counter()
    for data in invoices:
        parse(data)
    elapsed = time.perf_counter() - start
    return len(invoices) / elapsed, elapsed


async def seed(suppliers: int) -> list[tuple[str, str]]:
    """Suppliers and a core firm with the generated invoices' tax ids; each supplier's client."""
    from qilian.kit import db
    from services.api.audit import service as audit
    from services.api.auth import service as auth_service
    from services.api.organizations import service as org_service
    from services.api.organizations.models import Cluster, OrganizationBase, Role

    clients = []
    async with db.transaction() as session:
        for n in range(suppliers):
            supplier = await org_service.register(
                session,
                OrganizationBase(
                    name=f"Bench Supplier {n}",
                    role=Role.supplier,
                    tax_id=seller_vat(n),
                    tax_scheme="BENCH",
                ),
            )
            issued = await auth_service.issue_client(session, audit.SYSTEM, supplier.id)
            clients.append((issued.client_id, issued.client_secret))
        await org_service.register(
            session,
            OrganizationBase(
                name="Bench Core Firm",
                role=Role.core_firm,
                tax_id=BUYER_VAT,
                tax_scheme="BENCH",
                cluster=Cluster.pv,
            ),
        )
    await db.dispose_engine()
    return clients


async def token(base: str, client_id: str, secret: str) -> str:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        response = await client.post(
            "/v1/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
            },
        )
        response.raise_for_status()
        return str(response.json()["access_token"])


async def phase_uploads(
    base: str, bearers: list[str], invoices: list[bytes], clients: int, bound: float
) -> tuple[float, float, int, list[float]]:
    """``clients`` concurrent clients, each uploading the invoices of its share of the suppliers
    as that supplier (invoice ``i`` is supplier ``i % len(bearers)``'s)."""
    queues: list[asyncio.Queue[bytes]] = [asyncio.Queue() for _ in bearers]
    for i, data in enumerate(invoices):
        queues[i % len(bearers)].put_nowait(data)
    latencies: list[float] = []
    statuses: list[int] = []

    async def client_loop(k: int) -> None:
        # client k uploads as supplier k mod n, or, with fewer clients than suppliers, for
        # suppliers k, k + clients, … (all of them when there is one client)
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            mine = (
                [k % len(bearers)] if clients >= len(bearers) else range(k, len(bearers), clients)
            )
            for n in mine:
                queue = queues[n]
                headers = {
                    "Authorization": f"Bearer {bearers[n]}",
                    "Content-Type": "application/xml",
                }
                while not queue.empty():
                    data = queue.get_nowait()
                    start = time.perf_counter()
                    response = await client.post("/v1/invoices", content=data, headers=headers)
                    latencies.append((time.perf_counter() - start) * 1000)
                    statuses.append(response.status_code)

    start = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(client_loop(k) for k in range(clients))), bound)
    elapsed = time.perf_counter() - start
    ok = statuses.count(201)
    if ok != len(invoices):
        others = sorted({s for s in statuses if s != 201})
        print(f"warning: {len(invoices) - ok} uploads not created (statuses {others})")
    return ok / elapsed, elapsed, ok, latencies


async def phase_bulk(
    base: str, bearer: str, invoices: list[bytes], chunk: int, bound: float
) -> tuple[float, float, float, int]:
    from qilian.kit import db
    from qilian.kit.settings import get_settings
    from services.api.invoices import imports
    from services.api.invoices.settings import IntakeSettings

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for n, data in enumerate(invoices):
            archive.writestr(f"invoices/{n:06d}.xml", data)
    start = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        response = await client.post(
            "/v1/invoice-imports",
            content=buffer.getvalue(),
            headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/zip"},
        )
    response.raise_for_status()
    submitted = time.perf_counter() - start
    job = response.json()
    config = IntakeSettings(import_chunk_size=chunk)
    start = time.perf_counter()
    status = await asyncio.wait_for(imports.process(job["id"], get_settings(), config), bound)
    elapsed = time.perf_counter() - start
    async with db.transaction() as session:
        from services.api.invoices import repository

        counts = await repository.count_rows(session, job["id"])
    await db.dispose_engine()
    if status != "done" or counts.get("created", 0) != len(invoices):
        print(f"warning: import {status}, outcomes {counts}")
    return len(invoices) / elapsed, elapsed, submitted, counts.get("created", 0)


def wait_http(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {seconds} s")


def run(args: argparse.Namespace) -> Figures:
    figures = Figures()
    uploads = generate(args.uploads, "UPL", 1, sellers=args.suppliers)
    sequential = generate(args.sequential, "SEQ", 3, sellers=args.suppliers)
    bulk = generate(args.count, "BLK", 2)
    print(f"parse-only: {len(bulk)} invoices …", flush=True)
    figures.parse_rate, figures.parse_seconds = phase_parse(bulk)

    workdir = Path(tempfile.mkdtemp(prefix="qilian-bench-ingest-"))
    pg = None
    admin_url = args.database_url
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
            if args.synchronous_commit != "on":  # a diagnostic: what the commits' fsyncs cost
                conn.execute(
                    f'ALTER DATABASE "{name}" SET synchronous_commit = {args.synchronous_commit}'
                )
        database_url = admin.set(drivername="postgresql+asyncpg", database=name).render_as_string(
            hide_password=False
        )
        from qilian.kit.db import sync_url

        env = {
            **os.environ,
            "QILIAN_ENV": "development",
            "QILIAN_DATABASE_URL": database_url,
            "QILIAN_DATABASE_POOL_SIZE": "20",
            "QILIAN_BROKER_URL": "sqla+" + sync_url(database_url),
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
        credentials = asyncio.run(seed(args.suppliers))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "uvicorn"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(args.api_workers),
                "--no-access-log",
                "--log-level",
                "warning",
                "services.api.main:app",
            ],
            env=env,
            cwd=REPO_ROOT,
        )
        try:
            wait_http(f"{base}/healthz", 60)
            bearers = [asyncio.run(token(base, cid, secret)) for cid, secret in credentials]
            print(f"sequential uploads: {len(sequential)} from one client …", flush=True)
            _, _, _, alone = asyncio.run(phase_uploads(base, bearers, sequential, 1, args.bound))
            figures.sequential_ms = (
                percentile(alone, 50),
                percentile(alone, 99),
                sum(alone) / len(alone),
            )
            print(f"uploads: {len(uploads)} at {args.clients} clients …", flush=True)
            rate, elapsed, ok, latencies = asyncio.run(
                phase_uploads(base, bearers, uploads, args.clients, args.bound)
            )
            figures.upload_rate, figures.upload_seconds, figures.upload_ok = rate, elapsed, ok
            figures.latencies_ms = (
                percentile(latencies, 50),
                percentile(latencies, 95),
                percentile(latencies, 99),
                max(latencies),
            )
            print(f"bulk import: {len(bulk)} invoices in one ZIP …", flush=True)
            (
                figures.bulk_rate,
                figures.bulk_seconds,
                figures.bulk_submit_seconds,
                figures.bulk_created,
            ) = asyncio.run(phase_bulk(base, bearers[0], bulk, args.chunk, args.bound))
        finally:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    figures.rss_self_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures.rss_children_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return figures


def report(args: argparse.Namespace, f: Figures) -> str:
    from lxml import etree

    p50, p95, p99, worst = f.latencies_ms
    lines = [
        "## Invoice intake end to end (`bench/ingest.py`)",
        "",
        "```",
        "uv run python bench/ingest.py "
        f"--count {args.count} --uploads {args.uploads} --clients {args.clients} "
        f"--sequential {args.sequential} "
        f"--suppliers {args.suppliers} --api-workers {args.api_workers} --chunk {args.chunk}"
        + (
            f" --synchronous-commit {args.synchronous_commit}"
            if args.synchronous_commit != "on"
            else ""
        ),
        "```",
        "",
        f"{platform.machine()}, {os.cpu_count()} CPUs available, Python "
        f"{platform.python_version()}, lxml {'.'.join(map(str, etree.LXML_VERSION))}; embedded "
        "PostgreSQL on a unix socket, the API as a uvicorn process on 127.0.0.1 "
        f"({args.api_workers} worker(s)), the import processed by the task's coroutine in the "
        "benchmark process. Generated UBL 2.1 invoices, all distinct, on one core firm; uploads "
        f"spread over {args.suppliers} supplier(s), each client uploading as one of them; the "
        "import by one supplier."
        + (
            f" **Diagnostic run: `synchronous_commit = {args.synchronous_commit}`** (commits do "
            "not wait for the WAL flush; not a production setting)."
            if args.synchronous_commit != "on"
            else ""
        ),
        "",
        "| what | invoices | time | invoices / s | notes |",
        "|---|---:|---:|---:|---|",
        f"| parse-only (`parse()`, one thread) | {args.count:,} | {f.parse_seconds:.2f} s | "
        f"{f.parse_rate:,.0f} | no rules, no SQL, no HTTP |",
        f"| single uploads, {args.clients} concurrent clients | {f.upload_ok:,} | "
        f"{f.upload_seconds:.2f} s | {f.upload_rate:,.0f} | {args.suppliers} supplier(s); "
        f"latency p50 {p50:.0f} ms, p95 "
        f"{p95:.0f} ms, p99 {p99:.0f} ms, max {worst:.0f} ms |",
        f"| single uploads, one client after another | {args.sequential:,} | — | "
        f"{1000 / max(f.sequential_ms[2], 1e-9):,.0f} | latency p50 {f.sequential_ms[0]:.0f} ms, "
        f"p99 {f.sequential_ms[1]:.0f} ms: the cost of one request without queueing |",
        f"| bulk import (one ZIP, chunks of {args.chunk}) | {f.bulk_created:,} | "
        f"{f.bulk_seconds:.2f} s | {f.bulk_rate:,.0f} | upload + job "
        f"{f.bulk_submit_seconds:.2f} s before processing |",
        "",
        f"Ratios: bulk / parse-only = **{f.bulk_rate / f.parse_rate:.2f}** "
        f"(parse-only is {f.parse_rate / f.bulk_rate:.1f}× faster); single uploads / "
        f"parse-only = {f.upload_rate / f.parse_rate:.2f}; bulk / single uploads = "
        f"{f.bulk_rate / max(f.upload_rate, 1e-9):.2f}.",
        "",
        f"Peak RSS: benchmark process (all invoices in memory, the import) "
        f"{f.rss_self_mib:.0f} MiB; API server (largest child) {f.rss_children_mib:.0f} MiB.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=10_000, help="invoices parsed and imported")
    parser.add_argument("--uploads", type=int, default=2_000, help="single uploads")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--sequential", type=int, default=200, help="uploads from one client")
    parser.add_argument("--suppliers", type=int, default=50, help="uploading organisations")
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument(
        "--synchronous-commit",
        default="on",
        choices=["on", "off"],
        help="PostgreSQL synchronous_commit of the bench database (off: a diagnostic)",
    )
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--bound", type=float, default=900.0, help="seconds per phase, at most")
    parser.add_argument("--database-url", default=None, help="a server to use instead")
    parser.add_argument("--append-docs", action="store_true", help="append to docs/benchmarks.md")
    args = parser.parse_args()
    if not 1 <= args.count <= 100_000 or not 1 <= args.uploads <= 20_000:
        parser.error("--count is 1…100000 and --uploads 1…20000")
    if not 1 <= args.sequential <= 10_000:
        parser.error("--sequential is 1…10000")
    if not 1 <= args.suppliers <= 1000:
        parser.error("--suppliers is 1…1000")
    figures = run(args)
    section = report(args, figures)
    print(section)
    if args.append_docs:
        with (REPO_ROOT / "docs" / "benchmarks.md").open("a", encoding="utf-8") as handle:
            handle.write("\n" + section)


if __name__ == "__main__":
    main()
