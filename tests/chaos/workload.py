"""A workload that plays many suppliers, core firms and banks at once against a running stack.

Only the public HTTP API is used, only on 127.0.0.1: the operator registers the organisations
(``POST /v1/organizations``, ``…/clients``), then every actor runs its own loop until the time or
operation budget is spent:

- a **supplier** uploads invoices (JSON), splits and transfers confirmed receivables to the other
  suppliers, opens financing requests (sometimes two at once on the same receivable, a race only
  one may win), accepts the best offer (sometimes twice at once), and verifies a receivable's
  proof against the ledger;
- a **core firm** confirms what its suppliers uploaded, opens and resolves disputes, and pays
  what falls due (here: what is financed and funded, at once);
- a **bank** bids on open requests and funds what it won.

Every write carries an ``Idempotency-Key``; some are deliberately replayed with the same key and
body (the answer must be the first one, with one effect), and an operation whose outcome is
unknown (timeout, lost connection, 5xx) is retried with its key until it answers or the run ends.
Every operation is recorded in a :class:`~tests.chaos.history.History`.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from stdnum.cn import uscc

from tests.chaos.history import History, Op

CLUSTERS = ("alloy", "chemicals", "pv", "lithium", "bio")


@dataclass(frozen=True)
class Profile:
    """How big a run is: actors, a time budget and an operation budget (whichever ends first)."""

    suppliers: int = 4
    cores: int = 2
    banks: int = 3
    seconds: float = 40.0
    max_ops: int = 600
    replay_share: float = 0.1  # share of writes replayed with the same key and body
    timeout: float = 8.0  # client timeout: beyond it the outcome is unknown
    seed: int = 1


MODEST = Profile()
LONG = Profile(suppliers=8, cores=3, banks=5, seconds=300.0, max_ops=6000)


def uscc_code(n: int) -> str:
    base = f"91630100MC{n:07d}"
    return base + uscc.calc_check_digit(base)


@dataclass
class Actor:
    name: str
    role: str
    org_id: str
    client_id: str
    client_secret: str
    tax_id: str
    token: str | None = None


@dataclass
class World:
    """What the clients know (from answers): ids to act on next."""

    pending: dict[str, str] = field(default_factory=dict)  # receivable → debtor actor
    confirmed: dict[str, str] = field(default_factory=dict)  # receivable → holder actor
    requests: dict[str, str] = field(default_factory=dict)  # request → requester actor
    financings: dict[str, str] = field(default_factory=dict)  # financing → supplier actor
    disputes: dict[str, str] = field(default_factory=dict)  # dispute → opener actor
    amounts: dict[str, int] = field(default_factory=dict)  # receivable → open amount (minor)
    debtor_of: dict[str, str] = field(default_factory=dict)  # receivable → debtor actor


class Workload:
    def __init__(
        self,
        api_url: str,
        ledger_url: str,
        operator: dict[str, Any],
        profile: Profile,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.api_url, self.ledger_url, self.profile = api_url, ledger_url, profile
        self.transport = transport
        self.operator = operator
        self.history = History()
        self.world = World()
        self.rng = random.Random(profile.seed)
        self.actors: dict[str, Actor] = {}
        self.deadline = 0.0
        self.unknown: list[Op] = []  # operations to retry with their key
        self.tag = uuid.uuid4().hex[:6]
        self._http: httpx.AsyncClient | None = None
        self.stopped = False

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.api_url, timeout=self.profile.timeout, transport=self.transport
        )

    # plumbing --------------------------------------------------------------------------------

    @property
    def http(self) -> httpx.AsyncClient:
        assert self._http is not None
        return self._http

    async def token(self, client_id: str, secret: str) -> str | None:
        try:
            response = await self.http.post(
                "/v1/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": client_id,
                    "client_secret": secret,
                },
            )
        except httpx.HTTPError:
            return None
        return str(response.json()["access_token"]) if response.status_code == 200 else None

    async def auth(self, actor: Actor) -> dict[str, str]:
        for _ in range(20):
            if actor.token is None:
                actor.token = await self.token(actor.client_id, actor.client_secret)
            if actor.token is not None:
                return {"Authorization": f"Bearer {actor.token}"}
            await asyncio.sleep(0.5)
        return {}

    async def get(self, actor: Actor, path: str, **params: Any) -> Any:
        """A read; None when it did not answer 200 (reads are not part of the history)."""
        try:
            response = await self.http.get(path, params=params, headers=await self.auth(actor))
        except httpx.HTTPError:
            return None
        if response.status_code == 401:
            actor.token = None
        return response.json() if response.status_code == 200 else None

    async def write(
        self,
        actor: Actor,
        kind: str,
        path: str,
        body: Any,
        *,
        key: str | None = None,
        replay_of: Op | None = None,
        **args: Any,
    ) -> Op:
        """One POST as one operation of the history, classified by what the client learnt."""
        key = key or f"{kind}-{uuid.uuid4().hex}"
        op = self.history.invoke(
            actor.name,
            kind,
            key,
            {"path": path, "body": body, **args},
            replay_of=replay_of.id if replay_of else None,
        )
        headers = {**(await self.auth(actor)), "Idempotency-Key": key}
        try:
            response = await self.http.post(path, json=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # never left this client: nothing can have been committed
            return self.history.complete(op, "fail", error=type(exc).__name__)
        except httpx.HTTPError as exc:
            self.unknown.append(op)
            self.history.complete(op, "unknown", error=type(exc).__name__)
            await asyncio.sleep(self.rng.uniform(0.5, 1.5))  # back off: the server is in trouble
            return op
        status = response.status_code
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if status == 401:
            actor.token = None
        if 200 <= status < 300:
            return self.history.complete(op, "ok", status=status, body=payload)
        if status == 409 and self._outcome_lost(payload):
            # carried out, its answer lost with a killed api: committed, but no answer to check
            return self.history.complete(op, "unknown", status=status, body=payload)
        if status >= 500 or (status in (401, 409, 429) and self._maybe_running(payload, status)):
            self.unknown.append(op)
            return self.history.complete(op, "unknown", status=status, body=payload)
        return self.history.complete(op, "fail", status=status, body=payload)

    @staticmethod
    def _maybe_running(payload: Any, status: int) -> bool:
        if status in (401, 429):
            return True  # refused before the business code ran: retried like an unknown
        detail = str(payload.get("detail", "")) if isinstance(payload, dict) else ""
        return "still being processed" in detail

    @staticmethod
    def _outcome_lost(payload: Any) -> bool:
        kind = str(payload.get("type", "")) if isinstance(payload, dict) else ""
        return kind.endswith("/idempotency-outcome-lost")

    async def retry(self, op: Op, actor: Actor) -> Op:
        """The same operation again with its key and body: settles an unknown."""
        body = op.args["body"]
        extra = {k: v for k, v in op.args.items() if k not in ("path", "body")}
        return await self.write(
            actor, op.kind, op.args["path"], body, key=op.key, replay_of=op, **extra
        )

    async def maybe_replay(self, op: Op, actor: Actor) -> None:
        if op.outcome == "ok" and self.rng.random() < self.profile.replay_share:
            await self.retry(op, actor)

    def live(self) -> bool:
        return (
            not self.stopped
            and time.monotonic() < self.deadline
            and len(self.history.ops) < self.profile.max_ops
        )

    # set-up ----------------------------------------------------------------------------------

    async def setup(self) -> None:
        op_token = None
        for _ in range(60):
            op_token = await self.token(self.operator["client_id"], self.operator["client_secret"])
            if op_token:
                break
            await asyncio.sleep(1)
        assert op_token, "the operator cannot get a token"
        headers = {"Authorization": f"Bearer {op_token}"}
        base = int(self.tag, 16) % 9_000_000 + 1  # fresh tax ids for each workload on a stack
        roles = (
            [("supplier", None)] * self.profile.suppliers
            + [("core_firm", CLUSTERS[i % len(CLUSTERS)]) for i in range(self.profile.cores)]
            + [("bank", None)] * self.profile.banks
        )
        for i, (role, cluster) in enumerate(roles):
            tax_id = uscc_code((base + i) % 10_000_000)
            name = f"chaos {role} {self.tag}-{i}"
            body: dict[str, Any] = {"name": name, "role": role, "tax_id": tax_id}
            if cluster:
                body["cluster"] = cluster
            org = await self.http.post("/v1/organizations", json=body, headers=headers)
            assert org.status_code == 201, org.text
            org_id = org.json()["id"]
            client = await self.http.post(f"/v1/organizations/{org_id}/clients", headers=headers)
            assert client.status_code == 201, client.text
            c = client.json()
            short = {"supplier": "s", "core_firm": "c", "bank": "b"}[role]
            actor_name = f"{short}{sum(1 for a in self.actors.values() if a.role == role)}"
            self.actors[actor_name] = Actor(
                actor_name, role, org_id, c["client_id"], c["client_secret"], tax_id
            )

    def of(self, role: str) -> list[Actor]:
        return [a for a in self.actors.values() if a.role == role]

    # the run ---------------------------------------------------------------------------------

    async def run(self) -> History:
        async with self.client() as client:
            self._http = client
            await self.setup()
            self.deadline = time.monotonic() + self.profile.seconds
            loops = [self.supplier_loop(a) for a in self.of("supplier")]
            loops += [self.core_loop(a) for a in self.of("core_firm")]
            loops += [self.bank_loop(a) for a in self.of("bank")]
            await asyncio.gather(*loops)
        self._http = None
        return self.history

    async def settle(self, seconds: float) -> None:
        """Retry every unknown with its key until it answers (or ``seconds`` pass)."""
        async with self.client() as client:
            self._http = client
            until = time.monotonic() + seconds
            while self.unknown and time.monotonic() < until:
                pending, self.unknown = self.unknown, []
                for op in pending:
                    settled = self.history.final(op.kind).get(op.key or "")
                    if settled is not None and settled.outcome in ("ok", "fail"):
                        continue
                    await self.retry(op, self.actors[op.actor])
                if self.unknown:
                    await asyncio.sleep(1)
        self._http = None

    async def pause(self) -> None:
        await asyncio.sleep(self.rng.uniform(0.05, 0.3))

    async def retry_some(self, actor: Actor) -> None:
        mine = [op for op in self.unknown if op.actor == actor.name]
        for op in mine[:2]:
            self.unknown.remove(op)
            settled = self.history.final(op.kind).get(op.key or "")
            if settled is not None and settled.outcome in ("ok", "fail"):
                continue
            await self.retry(op, actor)

    # suppliers -------------------------------------------------------------------------------

    async def supplier_loop(self, me: Actor) -> None:
        while self.live():
            await self.retry_some(me)
            held = [r for r, h in self.world.confirmed.items() if h == me.name]
            mine = [q for q, s in self.world.requests.items() if s == me.name]
            choices = ["upload"] * 3
            if held:
                choices += ["request"] * 3 + ["split", "transfer", "verify", "race_request"]
            if mine:
                choices += ["accept"] * 4 + ["race_accept"]
            action = self.rng.choice(choices)
            await getattr(self, f"s_{action}")(me)
            await self.pause()

    async def s_upload(self, me: Actor) -> None:
        core = self.rng.choice(self.of("core_firm"))
        minor = self.rng.randrange(1_000_00, 900_000_00)
        today = datetime.now(UTC).date()
        number = f"CH-{self.tag}-{uuid.uuid4().hex[:10]}"
        amount = f"{Decimal(minor) / 100:.2f}"
        body = {
            "invoice_number": number,
            "issue_date": (today - timedelta(days=5)).isoformat(),
            "due_date": (today + timedelta(days=self.rng.randrange(40, 120))).isoformat(),
            "currency": "CNY",
            "seller": {"name": me.name, "tax_id": me.tax_id},
            "buyer": {"name": core.name, "tax_id": core.tax_id},
            "total_amount": amount,
            "payable_amount": amount,
        }
        op = await self.write(me, "upload", "/v1/invoices", body, number=number, minor=minor)
        if op.outcome == "ok":
            rid = op.body["receivable"]["id"]
            op.result["receivable_id"] = rid
            self.world.pending[rid] = core.name
            self.world.amounts[rid] = minor
            self.world.debtor_of[rid] = core.name
            await self.maybe_replay(op, me)

    def _take(self, me: Actor) -> str | None:
        held = [r for r, h in self.world.confirmed.items() if h == me.name]
        return self.rng.choice(held) if held else None

    async def s_split(self, me: Actor) -> None:
        rid = self._take(me)
        if rid is None or self.world.amounts.get(rid, 0) < 300:
            return
        total = self.world.amounts[rid]
        cut = sorted(self.rng.sample(range(1, total), k=self.rng.choice((1, 2))))
        parts = [b - a for a, b in zip([0, *cut], [*cut, total], strict=True)]
        body = {"parts": [{"amount": f"{Decimal(p) / 100:.2f}"} for p in parts]}
        op = await self.write(me, "split", f"/v1/receivables/{rid}/split", body, receivable=rid)
        if op.outcome == "ok":
            self.world.confirmed.pop(rid, None)
            children = op.body["children"]
            op.result["children"] = [c["id"] for c in children]
            for child, part in zip(children, parts, strict=True):
                self.world.confirmed[child["id"]] = me.name
                self.world.amounts[child["id"]] = part
                self.world.debtor_of[child["id"]] = self.world.debtor_of.get(rid, "")
            await self.maybe_replay(op, me)

    async def s_transfer(self, me: Actor) -> None:
        rid = self._take(me)
        others = [a for a in self.of("supplier") if a.name != me.name]
        if rid is None or not others:
            return
        to = self.rng.choice(others)
        body = {"to_organization_id": to.org_id}
        op = await self.write(
            me, "transfer", f"/v1/receivables/{rid}/transfer", body, receivable=rid, to=to.name
        )
        if op.outcome == "ok":
            self.world.confirmed.pop(rid, None)
            moved = op.body["transferred"]["id"]
            op.result["transferred"] = moved
            self.world.confirmed[moved] = to.name
            self.world.amounts[moved] = self.world.amounts.get(rid, 0)
            self.world.debtor_of[moved] = self.world.debtor_of.get(rid, "")
            await self.maybe_replay(op, me)

    def _request_body(self, rid: str) -> dict[str, Any]:
        closes = datetime.now(UTC) + timedelta(seconds=self.rng.randrange(15, 40))
        return {"receivable_ids": [rid], "closes_at": closes.isoformat()}

    async def s_request(self, me: Actor) -> None:
        rid = self._take(me)
        if rid is None:
            return
        op = await self.write(
            me, "request", "/v1/financing-requests", self._request_body(rid), receivable=rid
        )
        self._requested(me, rid, op)
        if op.outcome == "ok":
            await self.maybe_replay(op, me)

    def _requested(self, me: Actor, rid: str, op: Op) -> None:
        if op.outcome == "ok":
            op.result["request_id"] = op.body["id"]
            self.world.requests[op.body["id"]] = me.name
            self.world.confirmed.pop(rid, None)
        elif op.outcome == "fail":
            self.world.confirmed.pop(rid, None) if op.status == 409 else None

    async def s_race_request(self, me: Actor) -> None:
        """Two requests at once on one receivable: at most one may be live."""
        rid = self._take(me)
        if rid is None:
            return
        ops = await asyncio.gather(
            *(
                self.write(
                    me,
                    "request",
                    "/v1/financing-requests",
                    self._request_body(rid),
                    receivable=rid,
                    race=True,
                )
                for _ in range(2)
            )
        )
        for op in ops:
            self._requested(me, rid, op)

    async def _best_offer(self, me: Actor) -> tuple[str, str] | None:
        mine = [q for q, s in self.world.requests.items() if s == me.name]
        if not mine:
            return None
        rq = self.rng.choice(mine)
        offers = await self.get(me, f"/v1/financing-requests/{rq}/offers")
        if offers is None:
            return None
        active = [o for o in offers if o["state"] == "active"]
        if not active:
            request = await self.get(me, f"/v1/financing-requests/{rq}")
            if request is not None and request["state"] != "open":
                self.world.requests.pop(rq, None)
            return None
        return rq, active[0]["id"]

    async def s_accept(self, me: Actor) -> None:
        found = await self._best_offer(me)
        if found is None:
            return
        rq, offer = found
        op = await self.write(me, "accept", f"/v1/offers/{offer}/accept", None, offer=offer)
        self._accepted(me, rq, op)
        if op.outcome == "ok":
            await self.maybe_replay(op, me)

    def _accepted(self, me: Actor, rq: str, op: Op) -> None:
        if op.outcome == "ok":
            op.result["financing_id"] = op.body["id"]
            self.world.financings[op.body["id"]] = me.name
            self.world.requests.pop(rq, None)

    async def s_race_accept(self, me: Actor) -> None:
        """Two acceptances at once (of the best offer and of another, or the same twice)."""
        mine = [q for q, s in self.world.requests.items() if s == me.name]
        if not mine:
            return
        rq = self.rng.choice(mine)
        offers = await self.get(me, f"/v1/financing-requests/{rq}/offers")
        active = [o["id"] for o in offers or [] if o["state"] == "active"]
        if not active:
            return
        pick = [active[0], active[-1] if len(active) > 1 else active[0]]
        ops = await asyncio.gather(
            *(
                self.write(me, "accept", f"/v1/offers/{o}/accept", None, offer=o, race=True)
                for o in pick
            )
        )
        for op in ops:
            self._accepted(me, rq, op)

    async def s_verify(self, me: Actor) -> None:
        """A receivable's newest proof bundle, checked by the ledger's ``POST /v1/verify``."""
        rid = self._take(me)
        if rid is None:
            return
        op = self.history.invoke(me.name, "verify", None, {"receivable": rid})
        try:
            response = await self.http.get(
                f"/v1/receivables/{rid}/proof", headers=await self.auth(me)
            )
            if response.status_code != 200:  # not anchored yet: nothing to verify
                self.history.complete(op, "fail", status=response.status_code)
                return
            checked = await self.http.post(
                f"{self.ledger_url}/v1/verify", json=response.json(), timeout=self.profile.timeout
            )
        except httpx.HTTPError as exc:
            self.history.complete(op, "unknown", error=type(exc).__name__)
            return
        answer = checked.json() if checked.status_code == 200 else None
        verified = bool(answer and answer.get("ok"))
        self.history.complete(
            op,
            "ok" if checked.status_code == 200 else "fail",
            status=checked.status_code,
            body=answer,
            verified=verified,
        )

    # core firms ------------------------------------------------------------------------------

    async def core_loop(self, me: Actor) -> None:
        while self.live():
            await self.retry_some(me)
            pending = [r for r, c in self.world.pending.items() if c == me.name]
            choices = ["pay"] * 2 + ["dispute"]
            if pending:
                choices += ["confirm"] * 6
            if any(d == me.name for d in self.world.disputes.values()):
                choices += ["resolve"] * 2
            await getattr(self, f"c_{self.rng.choice(choices)}")(me)
            await self.pause()

    async def c_confirm(self, me: Actor) -> None:
        pending = [r for r, c in self.world.pending.items() if c == me.name]
        if not pending:
            return
        rid = self.rng.choice(pending)
        op = await self.write(me, "confirm", f"/v1/receivables/{rid}/confirm", {}, receivable=rid)
        if op.outcome == "ok":
            self.world.pending.pop(rid, None)
            self.world.confirmed[rid] = self._actor_of(op.body["holder_id"])
            await self.maybe_replay(op, me)
        elif op.outcome == "fail":
            self.world.pending.pop(rid, None)

    def _actor_of(self, org_id: str) -> str:
        return next((a.name for a in self.actors.values() if a.org_id == org_id), "")

    async def c_dispute(self, me: Actor) -> None:
        mine = [
            r for r, h in self.world.confirmed.items() if self.world.debtor_of.get(r) == me.name
        ]
        if not mine or self.rng.random() < 0.5:
            return
        rid = self.rng.choice(mine)
        body = {"reason": f"chaos dispute {uuid.uuid4().hex[:8]}"}
        op = await self.write(
            me, "dispute", f"/v1/receivables/{rid}/disputes", body, receivable=rid
        )
        if op.outcome == "ok":
            op.result["dispute_id"] = op.body["dispute"]["id"]
            self.world.disputes[op.body["dispute"]["id"]] = me.name

    async def c_resolve(self, me: Actor) -> None:
        mine = [d for d, o in self.world.disputes.items() if o == me.name]
        if not mine:
            return
        did = self.rng.choice(mine)
        body = {"resolution": "settled (chaos)"}
        op = await self.write(me, "resolve", f"/v1/disputes/{did}/resolve", body, dispute=did)
        if op.outcome in ("ok", "fail"):
            self.world.disputes.pop(did, None)

    async def c_pay(self, me: Actor) -> None:
        page = await self.get(me, "/v1/receivables", **{"as": "debtor", "financing": "financed"})
        if not page or not page["items"]:
            return
        rcv = self.rng.choice(page["items"])
        if rcv["states"]["settlement"] == "paid" or rcv["open_amount"]["amount"] in ("0", "0.00"):
            return
        open_amount = rcv["open_amount"]["amount"]
        reference = f"PAY-{self.tag}-{uuid.uuid4().hex[:10]}"
        body = {
            "amount": open_amount,
            "paid_at": date.today().isoformat(),
            "reference": reference,
        }
        op = await self.write(
            me,
            "pay",
            f"/v1/receivables/{rcv['id']}/payments",
            body,
            receivable=rcv["id"],
            reference=reference,
        )
        await self.maybe_replay(op, me)

    # banks -----------------------------------------------------------------------------------

    async def bank_loop(self, me: Actor) -> None:
        bid_on: set[str] = set()
        while self.live():
            await self.retry_some(me)
            if self.rng.random() < 0.6:
                await self.b_bid(me, bid_on)
            else:
                await self.b_fund(me)
            await self.pause()

    async def b_bid(self, me: Actor, bid_on: set[str]) -> None:
        page = await self.get(me, "/v1/financing-requests", limit=50)
        fresh = [r for r in (page or {}).get("items", []) if r["id"] not in bid_on]
        if not fresh:
            return
        request = self.rng.choice(fresh)
        fee = f"{self.rng.randrange(0, 200)}.00"
        body = {
            "advance_rate": f"0.{self.rng.randrange(70, 96)}",
            "annual_rate": f"0.0{self.rng.randrange(30, 90)}",
            "fee": {"amount": fee, "currency": request["face_value"]["currency"]},
            "day_count": self.rng.choice(("ACT/360", "ACT/365")),
            "recourse": self.rng.random() < 0.5,
        }
        op = await self.write(
            me,
            "bid",
            f"/v1/financing-requests/{request['id']}/offers",
            body,
            request=request["id"],
            bank=me.org_id,
        )
        if op.outcome in ("ok", "fail"):
            bid_on.add(request["id"])
        if op.outcome == "ok":
            op.result["offer_id"] = op.body["id"]
            await self.maybe_replay(op, me)

    async def b_fund(self, me: Actor) -> None:
        page = await self.get(me, "/v1/financings", state="awaiting_disbursement")
        if not page or not page["items"]:
            return
        financing = self.rng.choice(page["items"])
        reference = f"DISB-{self.tag}-{uuid.uuid4().hex[:10]}"
        op = await self.write(
            me,
            "fund",
            f"/v1/financings/{financing['id']}/disbursement",
            {"reference": reference},
            financing=financing["id"],
            reference=reference,
        )
        await self.maybe_replay(op, me)
