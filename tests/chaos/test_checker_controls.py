"""Negative controls: every invariant of :mod:`tests.chaos.checker` is shown able to fail.

Each test builds something deliberately broken — the marketplace without its row locks and partial
unique indexes (in a scratch database), the API without its idempotency middleware, a relay that
never runs, clear text or an unrecorded transaction on the chain, a split off by one cent, an
edited audit row, a bank's offer list unfiltered, a backup restored over acknowledged writes — and
asserts that the checker fails *and names the invariant*. The positive control runs the same races
on the intact build and finds nothing.

The anvil-without-its-state-file control needs the whole process stack; it is in
:mod:`tests.chaos.test_market_faults` (``make chaos``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlmodel import col
from web3 import Web3

from qilian.kit import db
from qilian.kit.anvil import DEV_PRIVATE_KEY, Anvil
from qilian.kit.settings import get_settings
from services.api.auth import ratelimit
from services.api.auth.idempotency import IdempotencyMiddleware
from services.api.financing import service as financing_service
from services.api.financing.models import FinancingRequest, Offer
from services.api.invoices.blobs import LocalBlobStore
from services.api.main import create_app
from services.api.organizations.models import Role
from services.api.receivables.models import Receivable
from tests.chaos import checker
from tests.chaos.checker import Target, Violation
from tests.chaos.workload import Actor, Profile, Workload
from tests.conftest import Infra, _psycopg_dsn, create_database, drop_database
from tests.integration.auth.conftest import RELAXED
from tests.integration.financing.conftest import SHORT
from tests.integration.financing.market import Market, closes_in, offer
from tests.integration.financing.market import receivable as confirmed_receivable
from tests.integration.invoices.intake_helpers import Party, new_party
from tests.integration.receivables.lifecycle_helpers import call

pytestmark = pytest.mark.chaos


@dataclass
class Scratch:
    url: str

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(_psycopg_dsn(self.url), autocommit=True) as conn:
            return list(conn.execute(sql, params).fetchall())

    def execute(self, sql: str) -> None:
        with psycopg.connect(_psycopg_dsn(self.url), autocommit=True) as conn:
            conn.execute(sql)


@pytest.fixture
def scratch(migrated: Infra, monkeypatch: pytest.MonkeyPatch) -> Iterator[Scratch]:
    """A database of its own at head; the settings (and the api in process) point at it."""
    from qilian.cli.main import migrate_database

    name = f"qilian_scratch_{uuid.uuid4().hex[:10]}"
    create_database(migrated.admin_url, name)
    url = make_url(migrated.database_url).set(database=name).render_as_string(False)
    try:
        migrate_database(url)
        monkeypatch.setenv("QILIAN_DATABASE_URL", url)
        get_settings.cache_clear()
        yield Scratch(url)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        drop_database(migrated.admin_url, name)


@pytest.fixture
async def scratch_app(scratch: Scratch, tmp_path: Any) -> AsyncIterator[Any]:
    await db.dispose_engine()
    application = create_app(get_settings())
    application.state.auth_settings = RELAXED
    application.state.blob_store = LocalBlobStore(tmp_path / "blobs")
    application.state.ledger_transport = httpx.MockTransport(
        lambda r: httpx.Response(503, json={"detail": "no ledger in this test"})
    )
    application.state.import_dispatcher = lambda _id: None
    application.state.financing_settings = SHORT
    yield application
    await ratelimit.dispose()
    await db.dispose_engine()


@pytest.fixture
async def http(scratch_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    # a broken build answers 500 (a deadlock, say) rather than raising into the test
    transport = httpx.ASGITransport(
        app=scratch_app, client=("127.0.0.1", 40000), raise_app_exceptions=False
    )
    async with httpx.AsyncClient(transport=transport, base_url="https://test") as client:
        yield client


async def market() -> Market:
    return Market(
        supplier=await new_party(Role.supplier),
        other_supplier=await new_party(Role.supplier),
        core=await new_party(Role.core_firm),
        banks=[await new_party(Role.bank) for _ in range(3)],
    )


def names(violations: list[Violation]) -> set[str]:
    return {v.invariant for v in violations}


# the marketplace without its guards ---------------------------------------------------------------


async def _unlocked_request(session: Any, request_id: str) -> FinancingRequest | None:
    result = await session.execute(
        select(FinancingRequest)
        .where(col(FinancingRequest.id) == request_id)
        .execution_options(populate_existing=True)
    )
    found: FinancingRequest | None = result.scalar_one_or_none()
    return found


async def _unlocked_offer(session: Any, offer_id: str) -> Offer | None:
    found: Offer | None = await session.get(Offer, offer_id, populate_existing=True)
    return found


async def _unlocked_receivables(session: Any, receivable_ids: Any) -> list[Receivable]:
    rows = []
    for rid in sorted(set(receivable_ids)):
        rows.append(await session.get(Receivable, rid, populate_existing=True))
    return rows


def break_the_guards(scratch: Scratch, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``SELECT … FOR UPDATE`` on requests, offers and receivables; no partial unique index on
    live request items or accepted offers; no unique financing per request."""
    monkeypatch.setattr(financing_service, "_lock_request", _unlocked_request)
    monkeypatch.setattr(financing_service, "_lock_offer", _unlocked_offer)
    monkeypatch.setattr(financing_service, "_lock_receivables", _unlocked_receivables)
    # without its locks the build waits on rows instead of queueing for them: fail such waits fast
    name = make_url(scratch.url).database
    scratch.execute(f"ALTER DATABASE {name} SET lock_timeout = '1s'")
    scratch.execute("DROP INDEX platform.uq_financing_request_items_live_receivable")
    scratch.execute("DROP INDEX platform.uq_offers_accepted_request")
    for (constraint,) in scratch.rows(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'platform.financings'::regclass"
        " AND contype = 'u'"
    ):
        scratch.execute(f"ALTER TABLE platform.financings DROP CONSTRAINT {constraint}")


async def race(http: httpx.AsyncClient, m: Market, rounds: int) -> None:
    """Per round: three requests at once on one receivable; two banks bid on each live one; then
    two offers of the first request and one of each other accepted at once (few enough at once
    for the connection pool, or a broken build would wait on it rather than race)."""
    for _ in range(rounds):
        rid = await confirmed_receivable(http, m)
        body = {"receivable_ids": [rid], "closes_at": closes_in(3600)}
        answers = await asyncio.gather(
            *(call(http, m.supplier, "POST", "/v1/financing-requests", body) for _ in range(3))
        )
        requests = [a.json()["id"] for a in answers if a.status_code == 201]
        offers = [[(await offer(http, bank, rq))["id"] for bank in m.banks[:2]] for rq in requests]
        picks = [*offers[0], *(o[0] for o in offers[1:])]
        await asyncio.gather(
            *(call(http, m.supplier, "POST", f"/v1/offers/{o}/accept") for o in picks)
        )


MARKET_RULES = ("financed-once", "one-accepted-offer", "split-conserves")


async def test_positive_control_the_intact_marketplace_passes_the_same_races(
    scratch: Scratch, http: httpx.AsyncClient
):
    m = await market()
    await race(http, m, rounds=2)
    assert int(scratch.rows("SELECT count(*) FROM platform.financings")[0][0]) == 2
    assert int(scratch.rows("SELECT count(*) FROM platform.financing_requests")[0][0]) == 2
    assert checker.run_checks(Target(db=scratch), MARKET_RULES) == []


async def test_without_locks_and_unique_indexes_double_financing_is_named(
    scratch: Scratch, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
):
    break_the_guards(scratch, monkeypatch)
    m = await market()
    found: list[Violation] = []
    for _ in range(4):
        await race(http, m, rounds=1)
        found = checker.run_checks(Target(db=scratch), MARKET_RULES)
        if {"financed-once", "one-accepted-offer"} <= names(found):
            break
    assert {"financed-once", "one-accepted-offer"} <= names(found), checker.describe(found)


# splits -------------------------------------------------------------------------------------------


async def test_a_split_part_off_by_one_cent_is_named(scratch: Scratch, http: httpx.AsyncClient):
    m = await market()
    rid = await confirmed_receivable(http, m, payable="100.00")
    answer = await call(
        http,
        m.supplier,
        "POST",
        f"/v1/receivables/{rid}/split",
        {"parts": [{"amount": "60.00"}, {"amount": "40.00"}]},
    )
    assert answer.status_code == 201, answer.text
    assert checker.run_checks(Target(db=scratch), ["split-conserves"]) == []
    child = answer.json()["children"][0]["id"]
    # what a split that rounds each part on its own would store: one cent too many
    scratch.execute(
        "UPDATE platform.receivables SET face_value_minor = face_value_minor + 1,"
        f" open_amount_minor = open_amount_minor + 1 WHERE id = '{child}'"
    )
    found = checker.run_checks(Target(db=scratch), ["split-conserves"])
    assert names(found) == {"split-conserves"}, checker.describe(found)


# the anchoring: no relay --------------------------------------------------------------------------


async def test_events_never_relayed_are_named_unanchored(scratch: Scratch, http: httpx.AsyncClient):
    m = await market()
    await confirmed_receivable(http, m)  # two events in the outbox, and no worker to relay them
    found = checker.run_checks(Target(db=scratch), ["anchored"])
    assert names(found) == {"anchored"}, checker.describe(found)
    assert any("undelivered" in v.detail for v in found)
    assert any("never recorded" in v.detail for v in found)


# the chain ----------------------------------------------------------------------------------------


@pytest.fixture
def chain() -> Iterator[Anvil]:
    with Anvil() as own:
        yield own


def send(chain: Anvil, key: str, data: bytes) -> str:
    w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
    account = w3.eth.account.from_key(key)
    tx = {
        "to": "0x000000000000000000000000000000000000dEaD",
        "value": 0,
        "data": data,
        "gas": 200_000,
        "gasPrice": w3.eth.gas_price,
        "nonce": w3.eth.get_transaction_count(account.address),
        "chainId": w3.eth.chain_id,
    }
    signed = account.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    w3.eth.wait_for_transaction_receipt(tx_hash)
    return tx_hash.to_0x_hex()


OTHER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # anvil #1


async def test_a_supplier_name_in_a_transaction_is_named(
    scratch: Scratch, http: httpx.AsyncClient, chain: Anvil
):
    m = await market()
    await confirmed_receivable(http, m)
    target = Target(db=scratch, rpc_url=chain.rpc_url)
    assert checker.run_checks(target, ["hashes-only-on-chain"]) == []
    send(chain, OTHER_KEY, b"factoring for " + m.supplier.name.encode())
    found = checker.run_checks(target, ["hashes-only-on-chain"])
    assert names(found) == {"hashes-only-on-chain"}, checker.describe(found)
    assert m.supplier.name in found[0].detail


async def test_a_send_from_the_anchoring_account_the_ledger_never_made_is_named(
    scratch: Scratch, chain: Anvil
):
    target = Target(db=scratch, rpc_url=chain.rpc_url)
    assert checker.run_checks(target, ["nonces-contiguous"]) == []
    send(chain, DEV_PRIVATE_KEY, b"")
    found = checker.run_checks(target, ["nonces-contiguous"])
    assert names(found) == {"nonces-contiguous"}, checker.describe(found)


# idempotency: the middleware removed --------------------------------------------------------------


def workload_for(app: Any, parties: dict[str, tuple[Party, Role]]) -> Workload:
    workload = Workload(
        "http://api.test", "http://ledger.invalid", {}, Profile(), httpx.ASGITransport(app=app)
    )
    for name, (party, role) in parties.items():
        workload.actors[name] = Actor(
            name,
            role.value,
            party.org.id,
            party.org.client_id,
            party.org.client_secret,
            party.tax_id,
        )
    return workload


async def replayed_payment(app: Any, m: Market, rid: str, amount: str) -> Workload:
    workload = workload_for(app, {"core": (m.core, Role.core_firm)})
    me = workload.actors["core"]
    body = {"amount": amount, "paid_at": "2026-11-01", "reference": f"PAY-{uuid.uuid4().hex[:8]}"}
    async with workload.client() as client:
        workload._http = client
        first = await workload.write(
            me,
            "pay",
            f"/v1/receivables/{rid}/payments",
            body,
            receivable=rid,
            reference=body["reference"],
        )
        assert first.outcome == "ok", first.body
        await workload.retry(first, me)  # the same key and body: one effect, the same answer
    return workload


async def test_positive_control_a_replayed_payment_has_one_effect(
    scratch: Scratch, scratch_app: Any, http: httpx.AsyncClient
):
    m = await market()
    rid = await confirmed_receivable(http, m, payable="100.00")
    workload = await replayed_payment(scratch_app, m, rid, "10.00")
    found = checker.run_checks(
        Target(db=scratch, history=workload.history), ["history-effects", "idempotent-replay"]
    )
    assert found == [], checker.describe(found)


async def test_without_the_idempotency_middleware_a_replay_is_named_duplicated(
    scratch: Scratch, scratch_app: Any, http: httpx.AsyncClient
):
    scratch_app.user_middleware = [
        m for m in scratch_app.user_middleware if m.cls is not IdempotencyMiddleware
    ]
    scratch_app.middleware_stack = None  # rebuilt without it on the next request
    m = await market()
    rid = await confirmed_receivable(http, m, payable="100.00")
    workload = await replayed_payment(scratch_app, m, rid, "10.00")
    found = checker.run_checks(
        Target(db=scratch, history=workload.history), ["history-effects", "idempotent-replay"]
    )
    assert {"no-duplicate-effect", "idempotent-replay"} <= names(found), checker.describe(found)


# acknowledged writes lost -------------------------------------------------------------------------


async def test_a_backup_restored_over_acknowledged_writes_is_named_lost(
    scratch: Scratch, scratch_app: Any, http: httpx.AsyncClient
):
    m = await market()
    rid = await confirmed_receivable(http, m, payable="100.00")
    workload = await replayed_payment(scratch_app, m, rid, "10.00")
    assert (
        checker.run_checks(Target(db=scratch, history=workload.history), ["history-effects"]) == []
    )
    # a restore of a backup taken before the payment: the acknowledged write is gone
    scratch.execute("DELETE FROM platform.receivable_payments")
    found = checker.run_checks(Target(db=scratch, history=workload.history), ["history-effects"])
    assert names(found) == {"ok-effect-present"}, checker.describe(found)


# a bank's view: the offer list unfiltered ---------------------------------------------------------


async def bids_of_three_banks(http: httpx.AsyncClient, m: Market) -> None:
    rid = await confirmed_receivable(http, m)
    answer = await call(
        http,
        m.supplier,
        "POST",
        "/v1/financing-requests",
        {"receivable_ids": [rid], "closes_at": closes_in(3600)},
    )
    assert answer.status_code == 201, answer.text
    for bank in m.banks:
        await offer(http, bank, answer.json()["id"])


def bank_target(scratch: Scratch, app: Any, m: Market) -> Target:
    return Target(
        db=scratch,
        api_url="http://api.test",
        transport=httpx.ASGITransport(app=app),
        banks=[(b.org.id, b.org.client_id, b.org.client_secret) for b in m.banks],
    )


async def test_a_bank_listing_every_offer_is_named(
    scratch: Scratch, scratch_app: Any, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
):
    m = await market()
    await bids_of_three_banks(http, m)
    target = bank_target(scratch, scratch_app, m)
    assert await checker.run_api_checks(target, ["bank-isolation"]) == []
    original = financing_service.list_offers_query

    def everyone(principal: Any, state: Any) -> Any:
        original(principal, state)
        return select(Offer)  # the bank's filter forgotten

    monkeypatch.setattr(financing_service, "list_offers_query", everyone)
    found = await checker.run_api_checks(target, ["bank-isolation"])
    assert names(found) == {"bank-isolation"}, checker.describe(found)


# the audit log edited -----------------------------------------------------------------------------


async def test_an_edited_audit_row_is_named(
    scratch: Scratch, scratch_app: Any, http: httpx.AsyncClient
):
    m = await market()
    await confirmed_receivable(http, m)
    auditor = await new_party(Role.auditor)
    target = Target(
        db=scratch,
        api_url="http://api.test",
        transport=httpx.ASGITransport(app=scratch_app),
        auditor=(auditor.org.client_id, auditor.org.client_secret),
    )
    assert await checker.run_api_checks(target, ["audit-chain"]) == []
    scratch.execute("ALTER TABLE platform.audit_log DISABLE TRIGGER USER")
    scratch.execute(
        "UPDATE platform.audit_log SET action = action || ' (edited)'"
        " WHERE seq = (SELECT max(seq) FROM platform.audit_log) - 1"
    )
    found = await checker.run_api_checks(target, ["audit-chain"])
    assert names(found) == {"audit-chain"}, checker.describe(found)


# the risk-sharing ledger: an entry that does not balance ---------------------------------------


async def test_an_unbalanced_journal_entry_is_named(scratch: Scratch):
    assert checker.run_checks(Target(db=scratch), ["ledger-balanced"]) == []
    # the build without the deferred balance trigger: a debit with no credit is committed
    scratch.execute("ALTER TABLE platform.risk_ledger_lines DISABLE TRIGGER USER")
    scratch.execute("ALTER TABLE platform.risk_ledger_entries DISABLE TRIGGER USER")
    scratch.execute(
        "INSERT INTO platform.risk_accounts (id, kind, currency, balance_minor)"
        " VALUES ('pool:CNY', 'pool', 'CNY', 0)"
    )
    scratch.execute(
        "INSERT INTO platform.risk_ledger_entries (id, seq, kind, currency, actor, posted_at,"
        " prev_hash, hash) VALUES ('jnl_broken', 1, 'top_up', 'CNY', 'test', now(), '0', '1')"
    )
    scratch.execute(
        "INSERT INTO platform.risk_ledger_lines (entry_id, line, account_id, debit_minor)"
        " VALUES ('jnl_broken', 1, 'pool:CNY', 100)"
    )
    found = checker.run_checks(Target(db=scratch), ["ledger-balanced"])
    assert names(found) == {"ledger-balanced"}, checker.describe(found)


# a 4xx for a committed write ----------------------------------------------------------------------


class LyingGateway(httpx.AsyncBaseTransport):
    """Forwards every request to the app, then answers ``400`` for the writes: a broken gateway
    (or API) that reports failure for what it committed."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        await response.aread()
        if request.method == "POST" and request.url.path != "/v1/oauth/token":
            return httpx.Response(400, json={"title": "Bad request", "status": 400})
        return response


async def test_a_committed_write_answered_4xx_is_named(
    scratch: Scratch, scratch_app: Any, http: httpx.AsyncClient
):
    m = await market()
    rid = await confirmed_receivable(http, m, payable="100.00")
    workload = workload_for(scratch_app, {"core": (m.core, Role.core_firm)})
    workload.transport = LyingGateway(scratch_app)
    body = {"amount": "5.00", "paid_at": "2026-11-01", "reference": f"PAY-{uuid.uuid4().hex[:8]}"}
    async with workload.client() as client:
        workload._http = client
        op = await workload.write(
            workload.actors["core"],
            "pay",
            f"/v1/receivables/{rid}/payments",
            body,
            receivable=rid,
            reference=body["reference"],
        )
    assert op.outcome == "fail"
    found = checker.run_checks(Target(db=scratch, history=workload.history), ["history-effects"])
    assert names(found) == {"fail-effect-absent"}, checker.describe(found)
