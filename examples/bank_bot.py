"""A bank's bot for the Qilian marketplace: it prices open financing requests by a rule, bids,
and funds what it wins once it has checked, without trusting the platform's word, that the
receivables are anchored and that the financing is registered on chain.

Run it (``--help`` lists every option)::

    python examples/bank_bot.py --api-url http://127.0.0.1:8000 \\
        --ledger-url http://127.0.0.1:8001 --rpc-url http://127.0.0.1:8545 \\
        --client-id cli_… --client-secret … \\
        --rule "advance=0.90,rate=0.045,fee=50,tier=0.005,month=0.001,cluster.pv=-0.002"

One round (:meth:`BankBot.run_once`):

1. **bid**: list the requests open for bids (``GET /v1/financing-requests``), price each one the
   bot has not bid on with its :class:`Rule`, and bid (``POST /v1/financing-requests/{id}/offers``)
   with an ``Idempotency-Key`` derived from the request and the terms, so that a retried bid has
   exactly one effect;
2. **fund**: for each financing it won that is ``awaiting_disbursement``
   (``GET /v1/financings?state=awaiting_disbursement``), check before paying
   (:meth:`BankBot.check_before_funding`):

   - the ledger's FinancingRegistry operations of the financing are all done, with a transaction
     (``GET {ledger}/v1/registry/financings/{id}``), and the chain says each fingerprint is active
     for this financing: ``financingRef == keccak256(financing_id)``
     (``GET {ledger}/v1/registry/status/{fingerprint}``);
   - every event the platform lists for each receivable (``GET /v1/receivables/{id}/events``) has
     an anchored proof bundle of the same record (``GET /v1/receivables/{id}/proof``);
   - with ``--rpc-url``, ``qilian verify`` checks those bundles against the chain itself
     (independently of the platform: only the bundle files and the RPC endpoint);

   then confirm the disbursement (``POST /v1/financings/{id}/disbursement``), after paying the
   net proceeds (a real bank calls its payment system in :meth:`BankBot.pay`).

With ``--webhook-port`` the bot also registers a webhook endpoint (``POST /v1/webhook-endpoints``)
and reacts to ``financing_request.opened``, ``offer.accepted`` and ``financing.registered`` at once,
verifying each delivery's Standard Webhooks signature; it still polls, more slowly, because a
webhook can be late or lost.

The bot is importable (``from examples.bank_bot import BankBot, Rule``): the end-to-end test and
the market benchmark drive it. It uses nothing of Qilian's code, only HTTP (``httpx``), the
``standardwebhooks`` package for signatures, ``web3`` for Keccak, and, optionally, the
``qilian verify`` command.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import queue
import subprocess
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, Final

import httpx

log = logging.getLogger("bank_bot")

JSON = dict[str, Any]
MONTH_DAYS: Final = 30
WEBHOOK_EVENTS: Final = ["financing_request.opened", "offer.accepted", "financing.registered"]


# ---------------------------------------------------------------- pricing


@dataclass(frozen=True)
class Bid:
    """The terms of one offer, as the API takes them (rates and amounts as decimal strings)."""

    advance_rate: Decimal
    annual_rate: Decimal
    fee: Decimal
    currency: str
    day_count: str
    recourse: bool

    def body(self) -> JSON:
        return {
            "advance_rate": str(self.advance_rate),
            "annual_rate": str(self.annual_rate),
            "fee": {"amount": str(self.fee), "currency": self.currency},
            "day_count": self.day_count,
            "recourse": self.recourse,
        }


@dataclass(frozen=True)
class Rule:
    """How the bank prices a request.

    ``annual_rate = rate + per_tier × (tier − 1) + per_month × ⌈days / 30⌉ + clusters[cluster]
    (+ non_recourse when the offer is without recourse)``; the bank declines a request whose rate
    would exceed ``max_rate``, whose face value exceeds ``max_face``, whose currency it does not
    lend in, whose requester wants more than ``advance`` of it, or whose receivables are not
    anchored yet (``anchored``: the least anchoring it accepts before bidding).
    """

    advance: Decimal = Decimal("0.90")
    rate: Decimal = Decimal("0.045")
    fee: Decimal = Decimal("0")
    day_count: str = "ACT/360"
    recourse: bool = True
    per_tier: Decimal = Decimal("0.005")
    per_month: Decimal = Decimal("0.001")
    non_recourse: Decimal = Decimal("0.01")
    clusters: Mapping[str, Decimal] = field(default_factory=dict)
    max_rate: Decimal = Decimal("0.12")
    max_face: Decimal | None = None
    currencies: frozenset[str] | None = None
    anchored: str = "pending"

    KEYS: ClassVar[str] = (
        "advance rate fee day_count recourse tier month non_recourse max_rate max_face "
        "currencies anchored cluster.<code>"
    )

    @classmethod
    def parse(cls, text: str) -> Rule:
        """``key=value`` pairs separated by commas, e.g. ``advance=0.9,rate=0.04,cluster.pv=-0.002``
        (currencies separated by ``|``: ``currencies=CNY|EUR``)."""
        values: dict[str, Any] = {}
        clusters: dict[str, Decimal] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, raw = item.partition("=")
            key, raw = key.strip(), raw.strip()
            if not sep or not raw:
                raise ValueError(f"rule item {item!r} is not key=value")
            try:
                if key.startswith("cluster."):
                    clusters[key.removeprefix("cluster.")] = Decimal(raw)
                elif key in ("advance", "rate", "fee", "non_recourse", "max_rate", "max_face"):
                    values[key] = Decimal(raw)
                elif key in ("tier", "month"):
                    values["per_" + key] = Decimal(raw)
                elif key == "day_count":
                    if raw not in ("ACT/360", "ACT/365"):
                        raise ValueError("day_count is ACT/360 or ACT/365")
                    values[key] = raw
                elif key == "recourse":
                    values[key] = raw.lower() in ("1", "true", "yes")
                elif key == "currencies":
                    values[key] = frozenset(c.strip().upper() for c in raw.split("|"))
                elif key == "anchored":
                    if raw not in ANCHORING:
                        raise ValueError(f"anchored is one of {', '.join(ANCHORING)}")
                    values[key] = raw
                else:
                    raise ValueError(f"unknown rule key {key!r} (known: {cls.KEYS})")
            except InvalidOperation:
                raise ValueError(f"rule item {item!r}: not a decimal number") from None
        return cls(clusters=clusters, **values)

    def price(self, request: JSON, today: date) -> Bid | None:
        """The bid on ``request`` (as ``GET /v1/financing-requests`` shows it), or None."""
        face = request["face_value"]
        currency = face["currency"]
        if self.currencies is not None and currency not in self.currencies:
            return None
        if self.max_face is not None and Decimal(face["amount"]) > self.max_face:
            return None
        minimum = request.get("min_advance_rate")
        if minimum is not None and self.advance < Decimal(str(minimum)):
            return None
        # (``anchored=unknown`` bids whatever the listing says; the checks before funding apply)
        if ANCHORING.get(request.get("anchoring", "unknown"), -1) < ANCHORING[self.anchored]:
            return None
        days = (date.fromisoformat(request["due_date"]) - today).days
        if days <= 0:
            return None
        wanted = request.get("recourse", "any")
        recourse = self.recourse if wanted == "any" else wanted == "recourse"
        cluster = (request.get("debtor") or {}).get("cluster")
        rate = (
            self.rate
            + self.per_tier * (int(request.get("tier", 1)) - 1)
            + self.per_month * -(-days // MONTH_DAYS)
            + self.clusters.get(cluster or "", Decimal(0))
            + (Decimal(0) if recourse else self.non_recourse)
        )
        if rate < 0 or rate > self.max_rate:
            return None
        return Bid(self.advance, rate, self.fee, currency, self.day_count, recourse)


# how far a request's receivables are anchored; "unknown": the ledger did not answer the platform
ANCHORING: Final = {"unknown": -1, "pending": 0, "anchored": 1, "final": 2}


# ---------------------------------------------------------------- the client


class ApiError(Exception):
    """The API refused a call (a 4xx or 5xx with its problem+json)."""

    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        try:
            self.problem: JSON = response.json()
        except ValueError:
            self.problem = {"detail": response.text[:200]}
        super().__init__(
            f"{response.request.method} {response.request.url.path}: {self.status} "
            f"{self.problem.get('title', '')} — {self.problem.get('detail', '')}"
        )


@dataclass
class Check:
    """The outcome of the checks before funding: ``ok``, or what is missing (``pending``: try
    again later) or wrong (``failed``: never fund)."""

    ok: bool
    pending: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)


@dataclass
class Report:
    """What one round did."""

    seen: int = 0
    bids: list[str] = field(default_factory=list)  # offer ids
    declined: list[str] = field(default_factory=list)  # request ids the rule declined
    refused: list[str] = field(default_factory=list)  # "request_id: why" the API refused
    funded: list[str] = field(default_factory=list)  # financing ids
    checks: dict[str, list[str]] = field(default_factory=dict)  # funded id → the checks passed
    waiting: dict[str, list[str]] = field(default_factory=dict)  # financing id → pending checks
    rejected: dict[str, list[str]] = field(default_factory=dict)  # financing id → failed checks


def keccak_hex(text: str) -> str:
    from web3 import Web3

    return "0x" + Web3.keccak(text=text).hex().removeprefix("0x")


class BankBot:
    """One bank's bot. ``run_once()`` does one round; ``run()`` repeats it."""

    def __init__(
        self,
        api_url: str,
        client_id: str,
        client_secret: str,
        rule: Rule,
        *,
        ledger_url: str | None = None,
        rpc_url: str | None = None,
        anchor_contract: str | None = None,
        qilian_command: str = "qilian",
        reference_prefix: str = "BANKBOT",
        timeout: float = 30.0,
        page_size: int = 50,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.rule = rule
        self.client_id = client_id
        self._secret = client_secret
        self.ledger_url = ledger_url.rstrip("/") if ledger_url else None
        self.rpc_url = rpc_url
        self.anchor_contract = anchor_contract
        self.qilian_command = qilian_command
        self.reference_prefix = reference_prefix
        self.page_size = page_size  # the API asks the ledger about each receivable listed
        self.http = httpx.Client(base_url=api_url.rstrip("/"), timeout=timeout, transport=transport)
        self.ledger = httpx.Client(
            base_url=self.ledger_url or "http://ledger.invalid", timeout=timeout
        )
        self._token: str | None = None
        self._token_until = 0.0
        self._bid_on: set[str] | None = None  # request ids this bank has bid on
        self.latencies: dict[str, list[float]] = {"bid": [], "fund": []}  # seconds
        self.organization_id: str | None = None
        self.rounds: deque[Report] = deque(maxlen=100)  # what run() did, latest rounds
        self.webhooks: deque[JSON] = deque(maxlen=100)  # verified webhook events run() acted on

    # -- plumbing

    def close(self) -> None:
        self.http.close()
        self.ledger.close()

    def __enter__(self) -> BankBot:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def token(self) -> str:
        """A client-credentials token, renewed a minute before it expires."""
        if self._token is None or time.monotonic() > self._token_until:
            response = self.http.post(
                "/v1/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": self.client_id,
                    "client_secret": self._secret,
                },
            )
            if response.status_code != 200:
                raise ApiError(response)
            body = response.json()
            self._token = str(body["access_token"])
            self._token_until = time.monotonic() + max(int(body["expires_in"]) - 60, 1)
        return self._token

    def call(
        self,
        method: str,
        path: str,
        body: JSON | None = None,
        *,
        key: str | None = None,
        params: Mapping[str, str | int] | None = None,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token()}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        response = self.http.request(method, path, json=body, headers=headers, params=params)
        if response.status_code == 401:  # revoked or expired early: one fresh token, one retry
            self._token = None
            headers["Authorization"] = f"Bearer {self.token()}"
            response = self.http.request(method, path, json=body, headers=headers, params=params)
        return response

    def get(self, path: str, **params: str | int) -> Any:
        response = self.call("GET", path, params=params or None)
        if response.status_code != 200:
            raise ApiError(response)
        return response.json()

    def pages(self, path: str, **params: str | int) -> Iterator[JSON]:
        """Every item of a list endpoint, following ``next_cursor``."""
        cursor: str | None = None
        while True:
            query: dict[str, str | int] = {"limit": self.page_size, **params}
            if cursor:
                query["cursor"] = cursor
            page = self.get(path, **query)
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def me(self) -> str:
        if self.organization_id is None:
            self.organization_id = str(self.get("/v1/me")["organization"]["id"])
        return self.organization_id

    # -- bidding

    def bid_on(self) -> set[str]:
        """The requests this bank has bid on (read from its offers once, then kept up to date)."""
        if self._bid_on is None:
            self._bid_on = {o["request_id"] for o in self.pages("/v1/offers")}
        return self._bid_on

    def open_requests(self) -> list[JSON]:
        return list(self.pages("/v1/financing-requests"))

    def place(self, request: JSON, bid: Bid) -> JSON:
        """Bid on ``request``; the Idempotency-Key names the request and the terms."""
        body = bid.body()
        key = str(
            uuid.uuid5(
                uuid.NAMESPACE_URL,
                f"{self.client_id}/{request['id']}/{json.dumps(body, sort_keys=True)}",
            )
        )
        start = time.perf_counter()
        response = self.call(
            "POST", f"/v1/financing-requests/{request['id']}/offers", body, key=key
        )
        self.latencies["bid"].append(time.perf_counter() - start)
        if response.status_code != 201:
            raise ApiError(response)
        self.bid_on().add(request["id"])
        offer: JSON = response.json()
        return offer

    def bid_round(self, report: Report, requests: list[JSON] | None = None) -> None:
        today = datetime.now(UTC).date()
        for request in self.open_requests() if requests is None else requests:
            report.seen += 1
            if request["id"] in self.bid_on():
                continue
            bid = self.rule.price(request, today)
            if bid is None:
                report.declined.append(request["id"])
                continue
            try:
                offer = self.place(request, bid)
            except ApiError as exc:
                if exc.status >= 500 or exc.status == 429:
                    raise
                report.refused.append(f"{request['id']}: {exc.problem.get('detail')}")
                self.bid_on().add(request["id"])  # closed, or the rule is outside the limits
                continue
            log.info(
                "bid %s on %s: %s (net proceeds %s)",
                offer["id"],
                request["id"],
                bid.body(),
                (offer.get("net_proceeds") or {}).get("amount"),
            )
            report.bids.append(offer["id"])

    # -- funding

    def pay(self, financing: JSON) -> str:
        """Pay the net proceeds to the supplier; return the payment's reference. A real bank
        calls its payment system here; this one only makes up a reference."""
        return f"{self.reference_prefix}-{financing['id']}"

    def check_registry(self, financing: JSON, check: Check) -> None:
        if self.ledger_url is None:
            check.pending.append("registry: no --ledger-url to check the chain with")
            return
        response = self.ledger.get(f"/v1/registry/financings/{financing['id']}")
        if response.status_code == 404:
            check.pending.append("registry: the ledger has no operation of it yet")
            return
        response.raise_for_status()
        registers = [o for o in response.json()["operations"] if o["action"] == "register"]
        wanted = set(financing["receivable_ids"])
        if {o["receivable_id"] for o in registers} != wanted:
            check.pending.append("registry: not every receivable has a registration yet")
            return
        ref = keccak_hex(financing["id"])
        for op in registers:
            if op["state"] == "refused":
                check.failed.append(f"registry refused {op['receivable_id']}: {op['error']}")
                continue
            if op["state"] != "done" or not op["tx_hash"]:
                check.pending.append(f"registry: {op['receivable_id']} is {op['state']}")
                continue
            status = self.ledger.get(f"/v1/registry/status/{op['fingerprint']}")
            status.raise_for_status()
            on_chain = status.json()
            if not on_chain["active"] or on_chain["financing_ref"] != ref:
                holder = on_chain["financing_ref"] if on_chain["active"] else "nobody"
                check.failed.append(
                    f"registry: {op['fingerprint']} is active on chain for {holder}, "
                    f"not for this financing ({ref})"
                )
                continue
            check.passed.append(
                f"registry: {op['receivable_id']} active on chain in tx "
                f"{op['tx_hash']} (block {op['block_number']})"
            )

    def check_anchoring(self, receivable_id: str, check: Check, folder: Path) -> Path | None:
        """Every event the platform lists for the receivable has an anchored bundle of that very
        record; the proofs are written to ``folder`` for ``qilian verify``."""
        events = self.get(f"/v1/receivables/{receivable_id}/events")
        response = self.call("GET", f"/v1/receivables/{receivable_id}/proof")
        if response.status_code in (409, 503):
            check.pending.append(f"anchoring: {receivable_id}: {response.status_code}")
            return None
        if response.status_code != 200:
            raise ApiError(response)
        proofs = response.json()
        bundles = {e["event_id"]: e.get("bundle") for e in proofs["events"]}
        for event in events:
            bundle = bundles.get(event["event_id"])
            if bundle is None:
                check.pending.append(
                    f"anchoring: {receivable_id} event {event['seq']} "
                    f"({event['type']}) is not anchored yet"
                )
                continue
            record = bundle["record"]
            same = all(
                record.get(k) == event[k]
                for k in ("event_id", "seq", "type", "actor", "data", "receivable_id")
            )
            if not same:
                check.failed.append(
                    f"anchoring: {receivable_id} event {event['seq']}: the "
                    "anchored record differs from the platform's event"
                )
        if check.pending or check.failed:
            return None
        path = folder / f"{receivable_id}.json"
        path.write_text(json.dumps(proofs), encoding="utf-8")
        check.passed.append(f"anchoring: {receivable_id}: {len(events)} events anchored")
        return path

    def verify_on_chain(self, files: list[Path], check: Check) -> None:
        """``qilian verify`` of the bundles against the RPC endpoint (no platform involved)."""
        if self.rpc_url is None:
            return
        command = [
            *self.qilian_command.split(),
            "verify",
            *map(str, files),
            "--rpc-url",
            self.rpc_url,
            "--json",
        ]
        if self.anchor_contract:
            command += ["--contract", self.anchor_contract]
        try:
            result = subprocess.run(  # noqa: S603 - our own argument list, no shell
                command,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            report = json.loads(result.stdout) if result.stdout.strip() else {}
        except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
            check.pending.append(f"qilian verify could not run: {exc}")
            return
        if report.get("rpc_chain_id") is None:
            check.pending.append(f"qilian verify: the chain did not answer {result.stderr[-300:]}")
            return
        if result.returncode != 0:
            check.failed.append(
                f"qilian verify failed: {result.stdout[-500:]}{result.stderr[-500:]}"
            )
            return
        count = len(report["bundles"])
        check.passed.append(f"qilian verify: {count} bundles and their histories hold on chain")

    def check_before_funding(self, financing: JSON) -> Check:
        check = Check(ok=False)
        self.check_registry(financing, check)
        with tempfile.TemporaryDirectory(prefix="bank-bot-") as tmp:
            files = [
                self.check_anchoring(rid, check, Path(tmp)) for rid in financing["receivable_ids"]
            ]
            if not check.pending and not check.failed:
                self.verify_on_chain([f for f in files if f is not None], check)
        check.ok = not check.pending and not check.failed
        return check

    def fund(self, financing: JSON) -> JSON:
        reference = self.pay(financing)
        key = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.client_id}/fund/{financing['id']}"))
        start = time.perf_counter()
        response = self.call(
            "POST",
            f"/v1/financings/{financing['id']}/disbursement",
            {"reference": reference, "amount": financing["net_proceeds"]},
            key=key,
        )
        self.latencies["fund"].append(time.perf_counter() - start)
        if response.status_code != 200:
            raise ApiError(response)
        funded: JSON = response.json()
        return funded

    def fund_round(self, report: Report) -> None:
        for financing in self.pages("/v1/financings", state="awaiting_disbursement"):
            if financing["bank_id"] != self.me():
                continue  # a financing of a receivable this bank holds otherwise
            check = self.check_before_funding(financing)
            if check.failed:
                log.error("not funding %s: %s", financing["id"], check.failed)
                report.rejected[financing["id"]] = check.failed
                continue
            if check.pending:
                report.waiting[financing["id"]] = check.pending
                continue
            self.fund(financing)
            log.info(
                "funded %s: %s %s (%s)",
                financing["id"],
                financing["net_proceeds"]["amount"],
                financing["net_proceeds"]["currency"],
                "; ".join(check.passed),
            )
            report.funded.append(financing["id"])
            report.checks[financing["id"]] = check.passed

    def run_once(self) -> Report:
        """One round: bid on what is new, fund what was won and checks out."""
        report = Report()
        self.bid_round(report)
        self.fund_round(report)
        return report

    def run(
        self,
        every: float,
        events: queue.Queue[JSON] | None = None,
        stop: threading.Event | None = None,
        *,
        retry: float = 2.0,
    ) -> None:
        """Rounds every ``every`` seconds until ``stop``; a webhook event (from ``events``)
        starts one at once, and a financing waiting for its checks is looked at again after
        ``retry`` seconds."""
        stop = stop or threading.Event()
        while not stop.is_set():
            wait = every
            try:
                report = self.run_once()
                self.rounds.append(report)
                if report.waiting:
                    wait = min(every, retry)
                if report.bids or report.funded or report.rejected:
                    log.info(
                        "round: %d bids, %d funded, %d waiting, %d rejected",
                        len(report.bids),
                        len(report.funded),
                        len(report.waiting),
                        len(report.rejected),
                    )
            except (httpx.HTTPError, ApiError) as exc:
                log.warning("round failed, retrying: %s", exc)
                wait = min(every, retry)
            if events is None:
                stop.wait(wait)
                continue
            deadline = time.monotonic() + wait
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    event = events.get(timeout=min(0.5, max(deadline - time.monotonic(), 0.01)))
                except queue.Empty:
                    continue
                self.webhooks.append(event)
                log.info("webhook %s %s", event.get("type"), event.get("data"))
                break


# ---------------------------------------------------------------- webhooks


def register_webhook(bot: BankBot, url: str) -> tuple[str, str]:
    """A webhook endpoint of the bank for the events the bot acts on: (id, secret)."""
    response = bot.call(
        "POST",
        "/v1/webhook-endpoints",
        {"url": url, "event_types": WEBHOOK_EVENTS, "description": "bank bot"},
        key=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{bot.client_id}/hook/{url}")),
    )
    if response.status_code not in (200, 201):
        raise ApiError(response)
    body = response.json()
    return str(body["id"]), str(body["secret"])


def webhook_server(port: int, secret: str, sink: Callable[[JSON], None]) -> ThreadingHTTPServer:
    """An HTTP server on 127.0.0.1:``port`` that passes each delivery whose Standard Webhooks
    signature holds to ``sink`` (answers 204), and refuses the others (400)."""
    from standardwebhooks import Webhook, WebhookVerificationError

    verifier = Webhook(secret)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                event = verifier.verify(body, headers)
            except WebhookVerificationError as exc:
                log.warning("webhook refused: %s", exc)
                self.send_response(400)
                self.end_headers()
                return
            sink(event if isinstance(event, dict) else {"type": "unknown", "data": event})
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="webhooks").start()
    return server


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--rule", default="", help=f"pricing rule, key=value,… ({Rule.KEYS})")
    parser.add_argument("--ledger-url", help="the ledger, to check the registry before funding")
    parser.add_argument("--rpc-url", help="a JSON-RPC endpoint: verify bundles with qilian verify")
    parser.add_argument("--anchor-contract", help="the ReceivableAnchor address you expect")
    parser.add_argument("--qilian", default="qilian", help="how to run the qilian command")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between rounds")
    parser.add_argument("--once", action="store_true", help="one round, print it, exit")
    parser.add_argument("--webhook-port", type=int, help="receive webhooks on this port")
    parser.add_argument(
        "--webhook-url", help="the URL the platform posts to (default http://127.0.0.1:<port>/)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    bot = BankBot(
        args.api_url,
        args.client_id,
        args.client_secret,
        Rule.parse(args.rule),
        ledger_url=args.ledger_url,
        rpc_url=args.rpc_url,
        anchor_contract=args.anchor_contract,
        qilian_command=args.qilian,
    )
    with bot:
        if args.once:
            report = bot.run_once()
            print(json.dumps(report.__dict__, indent=2))
            return
        events: queue.Queue[JSON] | None = None
        every = args.every
        if args.webhook_port:
            events = queue.Queue()
            url = args.webhook_url or f"http://127.0.0.1:{args.webhook_port}/"
            endpoint_id, secret = register_webhook(bot, url)
            webhook_server(args.webhook_port, secret, events.put)
            log.info("webhook endpoint %s at %s", endpoint_id, url)
            every = max(every, 60.0)  # webhooks drive it; polling is the safety net
        with contextlib.suppress(KeyboardInterrupt):
            bot.run(every, events)


__all__ = [
    "ApiError",
    "BankBot",
    "Bid",
    "Check",
    "Report",
    "Rule",
    "register_webhook",
    "webhook_server",
]

if __name__ == "__main__":
    main()
