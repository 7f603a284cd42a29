"""The whole path under faults (issue 10): a workload of suppliers, core firms and banks runs
against the process stack while the nemesis breaks it; afterwards every unknown is settled with
its key, the outbox and the anchoring must drain within a bound, and the checker must find
nothing.

Profiles (``QILIAN_CHAOS_PROFILE``):

- ``modest`` (default, in ``make test``): one run with the faults in turn (worker, api and ledger
  killed, anvil paused, PostgreSQL crashed, the broker out, the api link slowed);
- ``full`` (``make chaos``): that, plus each fault on its own and all of them together, and the
  figures written to ``docs/reliability.md``;
- ``long`` (``make chaos-long``): ``full`` with the long workload (more actors, five minutes a run).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.chaos import checker, report
from tests.chaos.history import History
from tests.chaos.nemesis import FAULTS, Injection, Nemesis, recovery_times
from tests.chaos.stack import MarketStack, remove, start_stack
from tests.chaos.workload import LONG, MODEST, Profile, Workload
from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(1800)]

PROFILE = os.environ.get("QILIAN_CHAOS_PROFILE", "modest")
DRAIN_BOUND = 180.0  # seconds for the outbox and the anchoring to drain after the run
MODEST_FAULTS = [
    "kill-worker",
    "pause-anvil",
    "kill-api",
    "pg-crash",
    "broker-outage",
    "kill-ledger",
    "slow-api",
]


def profile(seconds: float | None = None) -> Profile:
    base = LONG if PROFILE == "long" else MODEST
    if seconds is not None and PROFILE != "long":
        return Profile(**{**base.__dict__, "seconds": seconds})
    return base


@pytest.fixture(scope="module")
def market(request: pytest.FixtureRequest) -> Iterator[MarketStack]:
    """One stack for the module; its directory (logs, data, history) kept after a failure."""
    before = request.session.testsfailed
    stack = start_stack()
    try:
        yield stack
    finally:
        remove(stack, keep=request.session.testsfailed > before)


@dataclass
class Outcome:
    history: History
    injections: list[Injection]
    violations: list[checker.Violation]
    drain: float
    workload: Workload


DRAIN_QUERIES = {
    "outbox undelivered": "SELECT count(*) FROM platform.outbox WHERE delivered_at IS NULL",
    "events not anchored": "SELECT count(*) FROM platform.receivable_events e WHERE NOT EXISTS ("
    " SELECT 1 FROM ledger.records r JOIN ledger.batches b ON b.id = r.batch_id"
    " WHERE r.event_id = e.event_id AND b.status IN ('anchored', 'final'))",
    "batches open": "SELECT count(*) FROM ledger.batches WHERE status IN ('pending', 'sent')",
    "registry operations open": "SELECT count(*) FROM ledger.registry_operations"
    " WHERE state IN ('pending', 'sent')",
    "financings registering": "SELECT count(*) FROM platform.financings"
    " WHERE state = 'registering'",
}


def backlog(stack: MarketStack) -> dict[str, int]:
    """What is still on its way: outbox rows, unanchored events, open batches and registry
    operations, financings waiting for their registration."""
    try:
        return {name: int(stack.scalar(sql)) for name, sql in DRAIN_QUERIES.items()}
    except Exception as exc:  # the database is still recovering
        return {"database": 1, type(exc).__name__: 1}


# what the timers will still do on their own: an auction still open closes (its receivables
# return to the market, a receivable event each), an offer past its expiry expires, a funded
# financing whose receivables are all paid settles (events again)
PENDING_TIMERS = {
    "auctions open": "SELECT count(*) FROM platform.financing_requests WHERE state = 'open'",
    "offers past expiry": "SELECT count(*) FROM platform.offers"
    " WHERE state = 'active' AND expires_at <= now()",
    "financings to settle": "SELECT count(*) FROM platform.financings f WHERE f.state = 'funded'"
    " AND NOT EXISTS (SELECT 1 FROM platform.financing_request_items i"
    " JOIN platform.receivables r ON r.id = i.receivable_id"
    " WHERE i.request_id = f.request_id AND r.settlement <> 'paid')",
}
# the stack is still when nothing is on its way and the newest outbox row, batch and registry
# operation stay the same for this long — longer than the stack's reconciliation interval (5 s),
# so that what a restarted chain lost has been found and re-opened before the checks read
QUIET_SECONDS = 6.0
MOVEMENT = (
    "SELECT (SELECT count(*) FROM platform.outbox), (SELECT count(*) FROM ledger.batches),"
    " (SELECT count(*) FROM ledger.registry_operations),"
    " (SELECT count(*) FROM platform.receivable_events)"
)


def wait_drained(stack: MarketStack, bound: float) -> float:
    """Wait until the stack is still: the backlog empty, no timer left to fire, and nothing new
    for ``QUIET_SECONDS``. The checker reads the database and the chain in several queries; on a
    stack still moving (an auction closing as it reads) it would report the movement as a loss.
    The time returned is the drain's: from the call until the backlog was first empty."""
    started = time.monotonic()
    left: dict[str, int] = {}
    drained: float | None = None
    still: tuple[float, Any] | None = None
    while time.monotonic() - started < bound + QUIET_SECONDS:
        left = backlog(stack)
        if not any(left.values()):
            if drained is None:
                drained = time.monotonic() - started
            left = pending_timers(stack)
        if any(left.values()):
            still = None
        else:
            at = time.monotonic()
            seen = stack.rows(MOVEMENT)[0]
            if still is None or still[1] != seen:
                still = (at, seen)
            elif at - still[0] >= QUIET_SECONDS:
                assert drained is not None
                return drained
        time.sleep(0.5)
    raise AssertionError(f"not drained within {bound}s: {left}")


def pending_timers(stack: MarketStack) -> dict[str, int]:
    try:
        return {name: int(stack.scalar(sql)) for name, sql in PENDING_TIMERS.items()}
    except Exception as exc:  # the database is still recovering
        return {"database": 1, type(exc).__name__: 1}


def heal_all(stack: MarketStack) -> None:
    """Whatever the nemesis left broken (it heals as it goes; this is the belt)."""
    for proxy in stack.proxies.values():
        proxy.heal()
    if not stack.pg_up():
        stack.pg_start()
    if stack.broker_down:
        stack.broker_accept()
    for process in stack.processes.values():
        if process.popen is None or process.popen.poll() is not None:
            process.start()


def target(stack: MarketStack, workload: Workload | None) -> checker.Target:
    auditor = next((o for o in _credentials(stack) if o["role"] == "auditor"), None)
    return checker.Target(
        db=stack,
        rpc_url=stack.rpc_url,
        history=workload.history if workload else None,
        api_url=f"http://127.0.0.1:{stack.api_port}",
        banks=[(a.org_id, a.client_id, a.client_secret) for a in workload.of("bank")]
        if workload
        else [],
        auditor=(auditor["client_id"], auditor["client_secret"]) if auditor else None,
        stack=stack,
    )


def _credentials(stack: MarketStack) -> list[dict[str, str]]:
    import json

    return list(json.loads((stack.root / "credentials.json").read_text())["organizations"])


def play(
    stack: MarketStack,
    faults: list[str],
    run: Profile,
    *,
    together: bool = False,
    hold: float = 3.0,
    interval: float = 6.0,
) -> Outcome:
    workload = Workload(stack.api_url, stack.ledger_url, stack.operator, run)
    nemesis = Nemesis(
        stack, workload.history, faults, together=together, hold=hold, interval=interval
    )

    async def main() -> None:
        chaos = asyncio.create_task(asyncio.to_thread(nemesis.run, run.seconds))
        try:
            await workload.run()
        finally:
            nemesis.stop.set()
            await chaos

    try:
        if faults:
            asyncio.run(main())
        else:
            asyncio.run(workload.run())
    finally:
        heal_all(stack)
        workload.history.dump(stack.root / f"history-{int(time.time())}.jsonl")
    wait_for(stack.ready, 120, "the stack to be ready after the faults")
    asyncio.run(workload.settle(60))
    drain = wait_drained(stack, DRAIN_BOUND)
    checked = target(stack, workload)
    violations = checker.run_checks(checked) + asyncio.run(checker.run_api_checks(checked))
    history = workload.history
    recover = recovery_times(history, nemesis.injections)
    counts = history.counts()
    figures = checker.summary(violations)
    report.record(
        report.Row(
            fault="+".join(faults) if together else ", ".join(faults) or "none",
            profile=PROFILE,
            injected=len(nemesis.injections),
            operations=len(history.ops),
            ok=counts["ok"],
            fail=counts["fail"],
            unknown=counts["unknown"],
            lost=figures["lost"],
            duplicated=figures["duplicated"],
            double_financed=figures["double_financed"],
            violations=len(violations),
            recover_seconds=max(recover) if recover else None,
            drain_seconds=drain,
            financings=int(stack.scalar("SELECT count(*) FROM platform.financings")),
        )
    )
    print(
        f"\n{faults}: {len(history.ops)} operations {dict(counts)}, "
        f"{len(nemesis.injections)} injected, recovered in {recover}, drained in {drain:.1f}s"
    )
    return Outcome(history, nemesis.injections, violations, drain, workload)


def assert_clean(outcome: Outcome) -> None:
    assert outcome.violations == [], checker.describe(outcome.violations)
    kinds = outcome.history.kinds()
    assert kinds["upload"]["ok"] > 0, kinds
    assert kinds["confirm"]["ok"] > 0, kinds
    assert outcome.history.counts()["ok"] > 20, outcome.history.counts()


def test_faults_in_turn_lose_nothing_duplicate_nothing_and_finance_once(market: MarketStack):
    outcome = play(market, MODEST_FAULTS, profile(40.0), hold=2.0, interval=3.0)
    assert len(outcome.injections) >= 5
    assert_clean(outcome)


@pytest.mark.skipif(PROFILE == "modest", reason="make chaos: each fault on its own")
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_fault_on_its_own(market: MarketStack, fault: str):
    outcome = play(market, [fault], profile(25.0), hold=3.0)
    assert outcome.injections
    assert_clean(outcome)


@pytest.mark.skipif(PROFILE == "modest", reason="make chaos: every fault at once")
def test_all_faults_together(market: MarketStack):
    faults = ["kill-worker", "kill-beat", "pause-anvil", "cut-ledger", "slow-api", "reorg"]
    outcome = play(market, faults, profile(30.0), together=True, hold=4.0)
    assert_clean(outcome)


@pytest.mark.skipif(PROFILE == "modest", reason="make chaos: a second stack, broken on purpose")
def test_negative_control_anvil_without_its_state_interval_loses_registrations_and_is_named():
    """anvil dumping its state only on a clean exit (``--state-interval`` far beyond the run),
    killed and restarted: the chain forgets the registrations the database holds, and the checker
    names ``financed-once-on-chain`` (and the anchoring)."""
    stack = start_stack(state_interval=10_000_000)
    try:
        workload = Workload(stack.api_url, stack.ledger_url, stack.operator, profile(30.0))
        asyncio.run(workload.run())
        registered = "SELECT count(*) FROM platform.financings WHERE state = ANY(%(s)s)"
        wait_for(
            lambda: stack.scalar(registered, {"s": list(checker.REGISTERED)}) > 0,
            120,
            "a financing registered on chain",
        )
        intact = checker.run_checks(target(stack, workload), ["financed-once-on-chain"])
        assert intact == [], checker.describe(intact)

        stack.kill_anvil()
        stack.restart_anvil()
        found = checker.run_checks(
            target(stack, workload), ["financed-once-on-chain", "anchoring-chain"]
        )
        assert {v.invariant for v in found} == {"financed-once-on-chain", "anchoring-chain"}, (
            checker.describe(found)
        )
    finally:
        remove(stack, keep=False)
