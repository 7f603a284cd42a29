"""Property-based (hypothesis, stateful): random sequences of split, transfer, payment, dispute
and credit note over several receivables. After every step: value is conserved exactly, no part
is held twice, no frozen receivable changed, and every transition is in the event history (and
in the outbox) with a valid ``prev`` chain as the ledger builds it.

The machine runs in a thread and hands each database step to the test's event loop, where the
engine lives; transitions go through the service layer, each in its own transaction.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Coroutine
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from sqlalchemy import select
from sqlmodel import col

from qilian.kit import db
from qilian.kit.errors import QilianError
from qilian.kit.money import Money
from qilian.kit.outbox import OutboxEvent
from services.api.auth.models import Principal, PrincipalKind, Scope
from services.api.organizations.models import Role
from services.api.receivables import lifecycle, repository
from services.api.receivables import service as receivables
from services.api.receivables.models import Receivable
from services.api.receivables.settings import ReceivableSettings
from services.ledger.records.canonical import ReceivableEventRecord, new_salt, record_hash
from tests.integration.invoices.intake_helpers import Party, new_party
from tests.integration.receivables.lifecycle_helpers import confirmed

CONFIG = ReceivableSettings(min_part_minor=1, max_depth=6, max_parts=4)
# an open dispute freezes splitting, transfer and financing (payments and credit notes go on)
FROZEN_FIELDS = ("holding", "moved_minor", "holder_id", "financing")
# a split or transferred-away receivable never changes again
FINAL_FIELDS = (
    *FROZEN_FIELDS,
    "open_amount_minor",
    "paid_minor",
    "diluted_minor",
    "settlement",
    "dispute",
    "event_seq",
)


def principal(org_id: str, role: Role) -> Principal:
    return Principal(PrincipalKind.client, f"cli_{org_id}", org_id, role, frozenset(Scope))


def build_machine(
    run: Callable[[Coroutine[Any, Any, Any]], Any],
    http: Any,
    suppliers: list[Party],
    core: Party,
) -> type[RuleBasedStateMachine]:
    supplier_ids = [p.org.id for p in suppliers]

    class Lifecycle(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.roots: list[str] = []
            self.known: list[str] = []  # every node, in the order it appeared (deterministic)
            self.expected_events: dict[str, int] = {}
            self.before: dict[str, Receivable] = {}

        # ------------------------------------------------------------ helpers

        async def _nodes(self) -> list[Receivable]:
            async with db.transaction() as session:
                nodes: list[Receivable] = []
                for root in self.roots:
                    nodes.extend(await repository.tree(session, root))
                return nodes

        def nodes(self) -> dict[str, Receivable]:
            return {n.id: n for n in run(self._nodes())}

        def pick(
            self, data: st.DataObject, held_only: bool = True, disputed: bool = False
        ) -> Receivable:
            by_id = self.nodes()
            nodes = [by_id[i] for i in self.known]
            if held_only:
                nodes = [n for n in nodes if n.holding == "held"] or nodes
            if disputed:
                nodes = [n for n in nodes if n.dispute == "open"] or nodes
            return data.draw(st.sampled_from(nodes))

        def attempt(self, name: str, work: Callable[[Any], Coroutine[Any, Any, Any]]) -> Any:
            """Run one transition in its own transaction; None when refused (4xx)."""

            async def go() -> tuple[Any, int]:
                try:
                    async with db.transaction() as session:
                        return await work(session), 200
                except QilianError as exc:
                    if exc.status >= 500:
                        raise
                    return None, exc.status

            self.before = self.nodes()
            result, status = run(go())
            event(f"{name}: {'done' if result is not None else f'refused {status}'}")
            return result

        def count(self, *ids: str) -> None:
            for rid in ids:
                self.expected_events[rid] = self.expected_events.get(rid, 0) + 1
                if rid not in self.known:
                    self.known.append(rid)

        # ------------------------------------------------------------ rules

        @initialize()
        def receivables(self) -> None:
            for amount in ("119.00", "2500.37"):
                rid = run(confirmed(http, suppliers[0], core, payable=amount))
                self.roots.append(rid)
                self.known.append(rid)
                self.expected_events[rid] = 2  # created, confirmed

        @rule(data=st.data())
        def split(self, data: st.DataObject) -> None:
            row = self.pick(data)
            n = data.draw(st.integers(2, 4))
            if data.draw(st.integers(0, 3)) > 0 and row.open_amount_minor >= n:
                cuts = sorted(
                    data.draw(
                        st.lists(
                            st.integers(1, row.open_amount_minor - 1),
                            min_size=n - 1,
                            max_size=n - 1,
                            unique=True,
                        )
                    )
                )
                edges = [0, *cuts, row.open_amount_minor]
                parts = [b - a for a, b in itertools.pairwise(edges)]
            else:  # anything, usually not summing to the open amount
                parts = data.draw(st.lists(st.integers(0, 10_000), min_size=n, max_size=n))
            amounts = [str(Money(p, row.currency).amount) for p in parts]
            who = principal(row.holder_id, Role.supplier)
            children = self.attempt(
                "split", lambda s: lifecycle.split(s, who, row.id, amounts, CONFIG)
            )
            if children is not None:
                assert sum(parts) == row.open_amount_minor
                self.count(row.id, *(c.id for c in children))

        @rule(data=st.data())
        def transfer(self, data: st.DataObject) -> None:
            row = self.pick(data)
            to = data.draw(st.sampled_from(supplier_ids))
            amount = None
            if data.draw(st.booleans()):
                minor = data.draw(st.integers(1, max(row.open_amount_minor, 1)))
                amount = str(Money(minor, row.currency).amount)
            who = principal(row.holder_id, Role.supplier)
            outcome = self.attempt(
                "transfer", lambda s: lifecycle.transfer(s, who, row.id, to, amount, CONFIG)
            )
            if outcome is None:
                return
            if outcome.remainder is None:
                self.count(row.id, outcome.transferred.id)
            else:
                moved = outcome.transferred.parent_id
                self.count(row.id, outcome.remainder.id, moved, moved, outcome.transferred.id)

        @rule(data=st.data())
        def payment(self, data: st.DataObject) -> None:
            row = self.pick(data)
            most = max(row.open_amount_minor, 1)
            minor = data.draw(
                st.one_of(st.integers(1, max(most // 4, 1)), st.integers(1, most + 500))
            )
            amount = str(Money(minor, row.currency).amount)
            final = data.draw(st.booleans())
            who = principal(row.debtor_id, Role.core_firm)
            done = self.attempt(
                "payment",
                lambda s: lifecycle.record_payment(
                    s, who, row.id, amount, row.due_date, "REF", final
                ),
            )
            if done is not None:
                _, payment = done
                assert payment.applied_minor + payment.unapplied_minor == minor
                self.count(row.id)

        @rule(data=st.data())
        def open_dispute(self, data: st.DataObject) -> None:
            row = self.pick(data)
            by_debtor = data.draw(st.booleans())
            who = (
                principal(row.debtor_id, Role.core_firm)
                if by_debtor
                else principal(row.holder_id, Role.supplier)
            )
            if (
                self.attempt("dispute", lambda s: lifecycle.open_dispute(s, who, row.id, "why"))
                is not None
            ):
                self.count(row.id)

        @rule(data=st.data())
        def resolve_dispute(self, data: st.DataObject) -> None:
            row = self.pick(data, disputed=True)

            async def open_ones() -> list[str]:
                async with db.transaction() as session:
                    found = await repository.disputes(session, row.id)
                    return [d.id for d in found if d.status == "open"]

            ids = run(open_ones())
            dispute_id = ids[0] if ids else "dsp_nope"
            who = principal(row.holder_id, Role.supplier)
            done = self.attempt(
                "resolve", lambda s: lifecycle.resolve_dispute(s, who, dispute_id, "ok")
            )
            if done is not None:
                self.count(row.id)

        @rule(data=st.data())
        def credit_note(self, data: st.DataObject) -> None:
            row = self.pick(data, held_only=data.draw(st.booleans()))
            credit = Money(data.draw(st.integers(1, row.open_amount_minor + 10)), row.currency)
            done = self.attempt(
                "credit note",
                lambda s: receivables.dilute(s, row.id, credit, row.creditor_id, {"test": True}),
            )
            if done is not None:
                self.count(row.id)

        # ------------------------------------------------------------ invariants

        @invariant()
        def value_is_conserved_and_no_part_is_held_twice(self) -> None:
            if not self.roots:
                return
            nodes = self.nodes()
            children: dict[str, list[Receivable]] = {}
            for node in nodes.values():
                assert (
                    node.open_amount_minor + node.paid_minor + node.diluted_minor + node.moved_minor
                    == node.face_value_minor
                )
                if node.parent_id is not None:
                    children.setdefault(node.parent_id, []).append(node)
            for node in nodes.values():
                below = children.get(node.id, [])
                if node.holding == "held":
                    assert below == []
                else:
                    assert node.open_amount_minor == 0
                    assert sum(c.face_value_minor for c in below) == node.moved_minor
                    assert len(below) == (1 if node.holding == "transferred" else len(below))
            for root in self.roots:
                tree = [n for n in nodes.values() if n.id == root or n.root_id == root]
                held = sum(n.open_amount_minor for n in tree if n.holding == "held")
                gone = sum(n.paid_minor + n.diluted_minor for n in tree)
                assert held + gone == nodes[root].face_value_minor

        @invariant()
        def no_frozen_receivable_changed(self) -> None:
            if not self.before:
                return
            after = self.nodes()
            for rid, old in self.before.items():
                new = after[rid]
                if old.holding != "held":
                    for name in FINAL_FIELDS:
                        assert getattr(new, name) == getattr(old, name), (rid, name)
                elif old.dispute == "open":
                    for name in FROZEN_FIELDS:
                        assert getattr(new, name) == getattr(old, name), (rid, name)

        @invariant()
        def every_transition_is_in_the_history_with_a_valid_prev_chain(self) -> None:
            if not self.roots:
                return

            async def check() -> None:
                async with db.transaction() as session:
                    for root in self.roots:
                        for node in await repository.tree(session, root):
                            events = await repository.events(session, node.id)
                            assert len(events) == self.expected_events[node.id], node.id
                            assert [e.seq for e in events] == list(range(1, node.event_seq + 1))
                            assert events[0].type == "created"
                            ids = [e.event_id for e in events]
                            rows = await session.execute(
                                select(OutboxEvent).where(col(OutboxEvent.event_id).in_(ids))
                            )
                            outbox = {o.event_id: o.payload for o in rows.scalars()}
                            prev = None
                            for event in events:
                                payload = receivables.payload(event)
                                assert outbox[event.event_id] == payload
                                record = ReceivableEventRecord.model_validate(
                                    {
                                        **payload,
                                        "event_id": event.event_id,
                                        "prev": prev,
                                        "salt": new_salt(),
                                    }
                                )
                                prev = "0x" + record_hash(record).hex()

            run(check())

    return Lifecycle


async def test_random_lifecycles_keep_every_invariant(http, db_engine):
    suppliers = [await new_party(Role.supplier) for _ in range(3)]
    core = await new_party(Role.core_firm)
    loop = asyncio.get_running_loop()

    def run(coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=120)

    machine = build_machine(run, http, suppliers, core)
    machine.TestCase.settings = settings(
        max_examples=15,
        stateful_step_count=20,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    await asyncio.to_thread(machine.TestCase().runTest)
