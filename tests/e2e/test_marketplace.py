"""The marketplace end to end on the process stack (api, ledger, worker, beat, their own anvil),
driven over HTTP by three copies of the example bank bot (``examples/bank_bot.py``).

A supplier uploads an invoice, the core firm confirms it, the supplier asks for financing, three
banks bid by their rules, the supplier sees the offers ranked by net proceeds (checked against the
arithmetic of API.md computed here) and accepts the best; the financing waits for its
FinancingRegistry transaction to be mined (checked in the receipt on anvil) before it awaits
disbursement; the winning bot checks the registry and the anchoring (``qilian verify`` against
anvil) and funds it; the core firm pays the bank; beat's ``financing.tick`` marks the financing
repaid and releases the registry (``status(fingerprint)`` inactive on chain); finally every event
of the receivable, from upload to repayment, verifies with ``qilian verify``.

The payment is made today, long before the due date: the test cannot wait for maturity, and a
financing is repaid when its receivables are paid, whenever that is.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from examples.bank_bot import (
    BankBot,
    Report,
    Rule,
    keccak_hex,
    register_webhook,
    webhook_server,
)
from qilian.kit import db
from qilian.kit.anvil import free_port
from services.api.organizations.models import Role
from tests.e2e.conftest import BIN, Stack
from tests.integration.invoices.intake_helpers import Party, invoice_number, new_party, ubl

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]

FACE = Decimal("100000.00")
DAYS = 60  # from today to the due date
# three banks: (rule, annual rate it ends up asking for a pv debtor, tier 1)
RULES = {
    "steady": ("advance=0.90,rate=0.04,fee=100,tier=0,month=0", Decimal("0.04")),
    "cautious": ("advance=0.85,rate=0.03,fee=0,tier=0,month=0", Decimal("0.03")),
    "pv-specialist": (
        "advance=0.92,rate=0.06,fee=250,tier=0,month=0,cluster.pv=-0.01",
        Decimal("0.05"),
    ),
}


def parties(bank_names: Iterable[str] = RULES) -> tuple[Party, Party, dict[str, Party]]:
    async def make() -> tuple[Party, Party, dict[str, Party]]:
        try:
            supplier = await new_party(Role.supplier)
            core = await new_party(Role.core_firm)  # cluster pv
            banks = {name: await new_party(Role.bank) for name in bank_names}
            return supplier, core, banks
        finally:
            await db.dispose_engine()

    return asyncio.run(make())


def only_open_request(request_id: str) -> None:
    """The stack shares the session's database with the integration tests, which leave auctions
    open for an hour; close them (their time is past) so the bots see this test's market only."""

    async def close() -> None:
        try:
            async with db.transaction() as session:
                await session.execute(
                    text(
                        "UPDATE platform.financing_requests SET closes_at = now() "
                        "WHERE state = 'open' AND id <> :id"
                    ),
                    {"id": request_id},
                )
        finally:
            await db.dispose_engine()

    asyncio.run(close())


class Api:
    """One party's HTTP client on the stack's API."""

    def __init__(self, base: str, party: Party) -> None:
        self.party = party
        self.http = httpx.Client(base_url=base, timeout=30)
        response = self.http.post(
            "/v1/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": party.org.client_id,
                "client_secret": party.org.client_secret,
            },
        )
        assert response.status_code == 200, response.text
        self.http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def ok(self, method: str, path: str, expected: int = 200, **kw: Any) -> Any:
        response = self.http.request(method, path, **kw)
        assert response.status_code == expected, f"{method} {path}: {response.text}"
        return response.json()


def poll(check: Callable[[], Any], timeout: float, what: str, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def net_proceeds(advance: str, rate: Decimal, fee: str, days: int, basis: int = 360) -> Decimal:
    """API.md, "Money arithmetic for offers", rounded half-even to cents at the end only."""
    amount = FACE * Decimal(advance)
    proceeds = amount - amount * rate * days / basis - Decimal(fee)
    return proceeds.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


def rpc(stack: Stack, method: str, *params: Any) -> Any:
    response = httpx.post(
        stack.anvil.rpc_url,
        json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
        timeout=10,
    )
    return response.json()["result"]


def confirmed_receivable(supplier: Api, core: Api, due: date) -> str:
    """An invoice of ``FACE`` EUR uploaded by the supplier and confirmed by the core firm."""
    document = ubl(
        supplier.party,
        core.party,
        number=invoice_number(),
        issue=(due - timedelta(days=DAYS + 5)).isoformat(),
        due=due.isoformat(),
        payable=str(FACE),
    )
    upload = supplier.ok("POST", "/v1/invoices", 201, files={"file": ("i.xml", document)})
    rid: str = upload["receivable"]["id"]
    core.ok("POST", f"/v1/receivables/{rid}/confirm", json={})
    return rid


@pytest.fixture
def bots() -> Iterator[dict[str, BankBot]]:
    made: dict[str, BankBot] = {}
    yield made
    for bot in made.values():
        bot.close()


def qilian_verify(stack: Stack, path: Path) -> tuple[int, Any]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        # nothing of the platform: only the file and the chain
        "QILIAN_DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:1/nothing",
        "QILIAN_API_URL": "http://127.0.0.1:1",
        "QILIAN_LEDGER_URL": "http://127.0.0.1:1",
    }
    result = subprocess.run(
        [str(BIN / "qilian"), "verify", str(path), "--rpc-url", stack.anvil.rpc_url, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def test_three_bots_bid_the_best_wins_is_registered_funded_repaid_and_released(
    stack: Stack, bots: dict[str, BankBot], tmp_path: Path
):
    supplier_party, core_party, bank_parties = parties()
    supplier, core = Api(stack.api_url, supplier_party), Api(stack.api_url, core_party)
    banks = {name: Api(stack.api_url, party) for name, party in bank_parties.items()}

    # the invoice, confirmed by its debtor
    due = datetime.now(UTC).date() + timedelta(days=DAYS)
    rid = confirmed_receivable(supplier, core, due)

    # the supplier opens an auction (well beyond the shortest window, so the test never races it)
    closes_at = (datetime.now(UTC) + timedelta(minutes=15)).isoformat()
    request = supplier.ok(
        "POST",
        "/v1/financing-requests",
        201,
        json={"receivable_ids": [rid], "closes_at": closes_at, "recourse": "any"},
    )
    assert request["state"] == "open"
    only_open_request(request["id"])

    # three bots see it as a bank does (debtor, cluster, face value, tier) and bid by their rules
    for name, (rule, _) in RULES.items():
        bots[name] = BankBot(
            stack.api_url,
            bank_parties[name].org.client_id,
            bank_parties[name].org.client_secret,
            Rule.parse(rule),
            ledger_url=stack.ledger_url,
            rpc_url=stack.anvil.rpc_url,
            qilian_command=str(BIN / "qilian"),
            reference_prefix=f"PAY-{name}",
        )
    seen = banks["steady"].ok("GET", f"/v1/financing-requests/{request['id']}")
    assert seen["debtor"] == {"id": core_party.org.id, "name": core_party.name, "cluster": "pv"}
    assert (seen["face_value"], seen["due_date"], seen["tier"]) == (
        {"amount": "100000.00", "currency": "EUR"},
        due.isoformat(),
        1,
    )
    assert seen["requester_id"] is None  # a bank is not told who asks
    offer_of: dict[str, str] = {}
    for name, bot in bots.items():
        report = bot.run_once()
        mine = [o for o in banks[name].ok("GET", "/v1/offers")["items"] if o["id"] in report.bids]
        assert [o["request_id"] for o in mine] == [request["id"]], report
        offer_of[name] = mine[0]["id"]
        assert bot.run_once().bids == []  # it bids once per request

    # the bot as a command, restarted: it learns its earlier bids from the API and bids no more
    restarted = subprocess.run(
        [
            str(BIN / "python"),
            str(REPO_ROOT / "examples" / "bank_bot.py"),
            "--api-url",
            stack.api_url,
            "--client-id",
            bank_parties["steady"].org.client_id,
            "--client-secret",
            bank_parties["steady"].org.client_secret,
            "--rule",
            RULES["steady"][0],
            "--once",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert restarted.returncode == 0, restarted.stderr
    printed = json.loads(restarted.stdout)
    assert (printed["bids"], printed["refused"]) == ([], [])
    assert printed["seen"] >= 1

    # sealed bids: a bank sees its own offer only, in the request's list and in its own
    for name, api in banks.items():
        listed = api.ok("GET", f"/v1/financing-requests/{request['id']}/offers")
        assert [o["id"] for o in listed] == [offer_of[name]]
        assert {o["id"] for o in api.ok("GET", "/v1/offers")["items"]} == {offer_of[name]}

    # the requester sees every offer ranked by net proceeds, with the arithmetic of API.md
    offers = supplier.ok("GET", f"/v1/financing-requests/{request['id']}/offers")
    days = (due - datetime.now(UTC).date()).days
    expected = {
        offer_of["steady"]: net_proceeds("0.90", RULES["steady"][1], "100", days),
        offer_of["cautious"]: net_proceeds("0.85", RULES["cautious"][1], "0", days),
        offer_of["pv-specialist"]: net_proceeds("0.92", RULES["pv-specialist"][1], "250", days),
    }
    assert [o["rank"] for o in offers] == [1, 2, 3]
    assert {o["id"]: Decimal(o["net_proceeds"]["amount"]) for o in offers} == expected
    assert [o["id"] for o in offers] == sorted(expected, key=lambda i: -expected[i])
    best = offers[0]
    assert best["id"] == offer_of["pv-specialist"]  # the highest net proceeds, not the lowest rate
    assert Decimal(best["annual_rate"]) > Decimal(offers[1]["annual_rate"])
    winner = bots["pv-specialist"]

    # acceptance: the financing exists at once, and waits for its registration on chain
    financing = supplier.ok("POST", f"/v1/offers/{best['id']}/accept", 201)
    fid = financing["id"]
    assert financing["state"] == "registering"
    assert Decimal(financing["net_proceeds"]["amount"]) == expected[best["id"]]
    assert financing["bank_id"] == bank_parties["pv-specialist"].org.id

    # until it is registered on chain, the bank can neither fund nor see it as awaiting
    early = winner.run_once()
    assert fid not in early.funded

    def registered() -> dict[str, Any] | None:
        found: dict[str, Any] = supplier.ok("GET", f"/v1/financings/{fid}")
        return found if found["state"] == "awaiting_disbursement" else None

    financing = poll(registered, 180, "the registration to be mined")
    (register,) = financing["registry"]
    assert (register["action"], register["outcome"], register["receivable_id"]) == (
        "register",
        "done",
        rid,
    )
    receipt = rpc(stack, "eth_getTransactionReceipt", register["tx_hash"])
    assert receipt["status"] == "0x1"
    assert int(receipt["blockNumber"], 16) == register["block_number"]
    operations = httpx.get(f"{stack.ledger_url}/v1/registry/financings/{fid}", timeout=10).json()
    fingerprint = operations["operations"][0]["fingerprint"]
    status = httpx.get(f"{stack.ledger_url}/v1/registry/status/{fingerprint}", timeout=30).json()
    assert status["active"] is True
    assert status["financing_ref"] == keccak_hex(fid)

    # the bot's checks refuse what the chain does not show: a financing id nobody registered
    impostor = winner.check_before_funding({**financing, "id": "fin_" + "0" * 32})
    assert not impostor.ok
    assert impostor.pending[0] == "registry: the ledger has no operation of it yet"

    # the losers learn they lost and fund nothing
    for name in ("steady", "cautious"):
        assert bots[name].run_once().funded == []
        (lost,) = banks[name].ok("GET", "/v1/offers")["items"]
        assert lost["state"] == "lost"
        no_such = banks[name].http.get(f"/v1/financings/{fid}")
        assert no_such.status_code == 404

    # the winner checks the registry and the anchoring (qilian verify on anvil), then funds
    reports: list[Report] = []

    def funded_by_bot() -> bool:
        reports.append(winner.run_once())
        assert not reports[-1].rejected, reports[-1].rejected
        return fid in reports[-1].funded

    poll(funded_by_bot, 240, "the winning bot to fund", every=1)
    passed = reports[-1].checks[fid]
    assert any(c.startswith(f"registry: {rid} active on chain in tx 0x") for c in passed), passed
    assert any(c.startswith(f"anchoring: {rid}: ") for c in passed), passed
    assert any(c.startswith("qilian verify: ") for c in passed), passed
    funded = supplier.ok("GET", f"/v1/financings/{fid}")
    assert funded["state"] == "funded"
    assert funded["disbursement_reference"] == f"PAY-pv-specialist-{fid}"
    assert winner.run_once().funded == []  # once

    # the core firm pays the financier in full; beat marks the financing repaid and releases
    paid = core.ok(
        "POST",
        f"/v1/receivables/{rid}/payments",
        201,
        json={"amount": str(FACE), "paid_at": date.today().isoformat(), "reference": "ERP-1"},
    )
    assert paid["payment"]["payee_id"] == bank_parties["pv-specialist"].org.id

    def released() -> dict[str, Any] | None:
        found: dict[str, Any] = supplier.ok("GET", f"/v1/financings/{fid}")
        ops = {op["action"]: op for op in found["registry"]}
        done = found["state"] == "repaid" and ops.get("release", {}).get("outcome") == "done"
        return found if done else None

    repaid = poll(released, 180, "the financing to be repaid and released")
    assert repaid["repaid"] == {"amount": "100000.00", "currency": "EUR"}
    release = next(op for op in repaid["registry"] if op["action"] == "release")
    assert rpc(stack, "eth_getTransactionReceipt", release["tx_hash"])["status"] == "0x1"
    status = httpx.get(f"{stack.ledger_url}/v1/registry/status/{fingerprint}", timeout=30).json()
    assert (status["active"], status["financing_ref"]) == (False, None)

    # every event of the receivable, from its upload to the repayment, verifies on chain
    events = supplier.ok("GET", f"/v1/receivables/{rid}/events")
    types = [e["type"] for e in events]
    for step in (
        "financing_requested",
        "financing_accepted",
        "financing_funded",
        "financing_repaid",
    ):
        assert step in types, types

    def all_anchored() -> dict[str, Any] | None:
        response = supplier.http.get(f"/v1/receivables/{rid}/proof")
        if response.status_code != 200:
            return None
        body: dict[str, Any] = response.json()
        anchored = [e["event_id"] for e in body["events"] if e["bundle"]]
        return body if anchored == [e["event_id"] for e in events] else None

    proofs = poll(all_anchored, 180, "every event to be anchored", every=1)
    path = tmp_path / "receivable.json"
    path.write_text(json.dumps(proofs))
    code, verified = qilian_verify(stack, path)
    assert code == 0, json.dumps(verified, indent=1)
    assert [b["ok"] for b in verified["bundles"]] == [True] * len(events)
    (history,) = verified["histories"]
    assert (history["receivable_id"], history["ok"]) == (rid, True)
    assert history["seqs"] == list(range(1, len(events) + 1))

    # a tampered copy of the same proofs does not verify
    forged = json.loads(json.dumps(proofs))
    accepted = next(
        e for e in forged["events"] if e["bundle"]["record"]["type"] == "financing_accepted"
    )
    accepted["bundle"]["record"]["data"]["financier_id"] = bank_parties["steady"].org.id
    path.write_text(json.dumps(forged))
    code, verified = qilian_verify(stack, path)
    assert code == 1
    assert verified["ok"] is False


def test_a_bot_on_webhooks_bids_when_told_refuses_forged_deliveries_and_funds_once_registered(
    stack: Stack,
):
    supplier_party, core_party, bank_parties = parties(["hooked"])
    supplier, core = Api(stack.api_url, supplier_party), Api(stack.api_url, core_party)
    bank = Api(stack.api_url, bank_parties["hooked"])
    bot = BankBot(
        stack.api_url,
        bank_parties["hooked"].org.client_id,
        bank_parties["hooked"].org.client_secret,
        Rule.parse("advance=0.88,rate=0.05,fee=20,tier=0,month=0"),
        ledger_url=stack.ledger_url,
        rpc_url=stack.anvil.rpc_url,
        qilian_command=str(BIN / "qilian"),
    )
    port = free_port()
    _, secret = register_webhook(bot, f"http://127.0.0.1:{port}/")
    events: queue.Queue[dict[str, Any]] = queue.Queue()
    server = webhook_server(port, secret, events.put)
    stop = threading.Event()
    # it polls every ten minutes: within this test, only a webhook makes it act
    runner = threading.Thread(target=bot.run, args=(600, events, stop), daemon=True)
    runner.start()
    try:
        poll(lambda: len(bot.rounds) >= 1, 60, "the bot's first round")

        # a delivery signed with another secret is refused and never reaches the bot
        forged = httpx.post(
            f"http://127.0.0.1:{port}/",
            content=b'{"type":"financing_request.opened","timestamp":"2026-11-29T08:00:00Z",'
            b'"data":{"request_id":"frq_forged"}}',
            headers={
                "webhook-id": "msg_forged",
                "webhook-timestamp": str(int(time.time())),
                "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
            },
            timeout=10,
        )
        assert forged.status_code == 400
        assert events.empty()

        due = datetime.now(UTC).date() + timedelta(days=DAYS)
        rid = confirmed_receivable(supplier, core, due)
        closes_at = (datetime.now(UTC) + timedelta(minutes=15)).isoformat()
        request = supplier.ok(
            "POST",
            "/v1/financing-requests",
            201,
            json={"receivable_ids": [rid], "closes_at": closes_at},
        )

        def bid() -> dict[str, Any] | None:
            offers = bank.ok("GET", "/v1/offers")["items"]
            return next((o for o in offers if o["request_id"] == request["id"]), None)

        offer = poll(bid, 90, "the bot to bid after the webhook")
        told = [e for e in list(bot.webhooks) if e["type"] == "financing_request.opened"]
        assert {"request_id": request["id"]}.items() <= told[0]["data"].items()

        financing = supplier.ok("POST", f"/v1/offers/{offer['id']}/accept", 201)

        def funded() -> bool:
            found = supplier.ok("GET", f"/v1/financings/{financing['id']}")
            return bool(found["state"] == "funded")

        poll(funded, 240, "the bot to fund after financing.registered")
        types = {e["type"] for e in list(bot.webhooks)}
        assert {"offer.accepted", "financing.registered"} & types, types
        assert [r.funded for r in bot.rounds if r.funded] == [[financing["id"]]]
        assert not any(r.rejected for r in bot.rounds)
    finally:
        stop.set()
        runner.join(30)
        server.shutdown()
        bot.close()
