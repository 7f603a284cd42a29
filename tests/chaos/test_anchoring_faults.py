"""The anchoring pipeline survives its chain and its worker failing under it (issue 5, "Faults it
must survive"): anvil paused, killed and restarted from its state, wiped, reorganised, and the
worker killed while a batch is in flight. Every test ends with the shared invariants of
:mod:`tests.chaos.invariants` over the database and the chain; every wait is bounded."""

from __future__ import annotations

import signal
import time

import pytest

from tests.chaos.conftest import ChaosStack, StackFactory, wait_for
from tests.chaos.invariants import Summary, anchor_chain, assert_consistent, batches

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900)]

SETTLE = 240  # seconds allowed for the pipeline to catch up after a fault (never asserted on)


def note(what: str, summary: Summary) -> None:
    """What the run showed (printed with ``-s``; the report of the fault tests quotes it)."""
    statuses = sorted({b.status for b in summary.batches})
    print(
        f"\n{what}: {summary.events} events in {len(summary.batches)} batches ({statuses}), "
        f"re-sent {summary.resent}, RootAnchored logs per batch all 1 on {summary.contract}"
    )


def anchored_roots(stack: ChaosStack) -> dict[int, str]:
    return {b.id: b.root for b in batches(stack) if b.status in ("anchored", "final")}


def test_anvil_paused_longer_than_a_batch_window_anchors_every_event_once_after_resume(
    chaos_stack: StackFactory,
):
    stack = chaos_stack()
    stack.emit(40, 3)
    stack.wait_all(SETTLE)
    before = anchored_roots(stack)

    stack.anvil_signal(signal.SIGSTOP)
    try:
        paused, chunks = time.monotonic(), 0
        while time.monotonic() - paused < 8:  # 16 batch windows of 0.5 s
            stack.emit(10, 2)  # events keep arriving: committed while the chain is frozen
            chunks += 1
            time.sleep(0.5)
        assert chunks >= 2
        # nothing is taken for anchored while the chain cannot answer
        assert anchored_roots(stack) == before
    finally:
        stack.anvil_signal(signal.SIGCONT)

    stack.wait_all(SETTLE)
    summary = assert_consistent(stack)
    note("anvil paused", summary)
    assert summary.events == stack.emitted == 120 + chunks * 20
    assert len(summary.batches) > len(before)
    assert {b.id: b.root for b in summary.batches if b.id in before} == before


def test_anvil_killed_and_restarted_from_its_state_file_loses_nothing_and_resends_in_flight(
    chaos_stack: StackFactory,
):
    stack = chaos_stack()
    stack.emit(30, 2)
    stack.wait_all(SETTLE)
    time.sleep(2.5)  # the state file (written every second) holds these
    settled = anchored_roots(stack)

    stack.emit(400, 1)  # eight full batches; the chain dies while they are being anchored
    wait_for(lambda: len(anchored_roots(stack)) > len(settled), SETTLE, "the burst to start")
    stack.kill_anvil()
    at_kill = {b.id: (b.status, b.root) for b in batches(stack)}
    stack.emit(20, 1)  # and events keep arriving while it is down
    time.sleep(2)
    stack.restart_anvil()

    stack.wait_all(SETTLE)
    summary = assert_consistent(stack)
    note("anvil killed and restarted", summary)
    after = {b.id: b.root for b in summary.batches}
    # nothing anchored before is lost or rewritten: same ids, same roots, in the DB and on chain
    assert {i: after[i] for i in settled} == settled
    assert {i: after[i] for i in at_kill} == {i: root for i, (_, root) in at_kill.items()}
    assert any(status != "final" for status, _ in at_kill.values()) or len(at_kill) > len(
        settled
    ), "the kill landed in the middle of the burst"


def test_anvil_restarted_with_an_empty_chain_is_reported_and_everything_reanchored_in_development(
    chaos_stack: StackFactory,
):
    stack = chaos_stack()
    stack.emit(30, 2)
    stack.wait_all(SETTLE)
    before = anchored_roots(stack)
    old_contract = stack.anchor_address()

    stack.kill_anvil()
    assert stack.anvil.state_file is not None
    stack.anvil.state_file.unlink()  # a wiped development chain
    stack.restart_anvil()
    assert stack.w3.eth.block_number == 0
    assert len(stack.w3.eth.get_code(stack.w3.to_checksum_address(old_contract))) == 0
    stack.emit(10, 2)

    # reconciliation (every 60 s) notices and says so, then redeploys (development)
    wait_for(lambda: "anchor_contract_missing" in stack.log("worker"), 150, "the report")
    wait_for(lambda: "anchor_contract_redeployed" in stack.log("worker"), 60, "the redeploy")
    stack.wait_all(SETTLE)
    summary = assert_consistent(stack)  # on the new contract: every root, every id, once
    note("empty chain", summary)
    assert {b.id: b.root for b in summary.batches if b.id in before} == before
    assert all(b.attempts >= 2 for b in summary.batches if b.id in before), "re-anchored"
    assert anchor_chain(stack).has_code()


def test_worker_killed_while_a_batch_is_in_flight_loses_no_event_and_anchors_no_batch_twice(
    chaos_stack: StackFactory,
):
    # blocks every second: a broadcast transaction waits in the pool long enough to be caught
    stack = chaos_stack(block_time=1.0)
    stack.emit(400, 1)
    wait_for(
        lambda: stack.count("status = 'sent'") > 0 and stack.count("status = 'pending'") > 0,
        SETTLE,
        "a batch sent and unconfirmed while others wait",
    )
    stack.processes["worker"].kill()  # SIGKILL to the worker's process group
    in_flight = {
        int(r[0]): str(r[1])
        for r in stack.rows("SELECT id, tx_hash FROM ledger.batches WHERE status = 'sent'")
    }
    assert in_flight, "a batch was in flight at the kill"
    stack.emit(50, 1)
    time.sleep(3)  # its transaction is mined while no worker watches
    stack.start("worker")

    stack.wait_all(SETTLE)
    summary = assert_consistent(stack)  # one RootAnchored per batch id: none anchored twice
    note("worker killed", summary)
    for batch in summary.batches:
        if batch.id in in_flight:  # followed to its receipt after the restart, not sent again
            assert batch.tx_hash == in_flight[batch.id]
            assert batch.attempts == 1


def test_reorg_dropping_the_anchoring_block_returns_the_batch_to_pending_and_anchors_it_again(
    chaos_stack: StackFactory,
):
    stack = chaos_stack(confirmations=3)  # anchored, not yet final, for two more blocks
    stack.emit(30, 2)
    stack.wait_all(SETTLE)
    open_ = [b for b in batches(stack) if b.status == "anchored"]
    assert open_, "the newest batches wait for confirmations"
    head = stack.w3.eth.block_number
    lowest = min(b.block_number for b in open_ if b.block_number is not None)
    chain = anchor_chain(stack)

    stack.rpc("anvil_reorg", head - lowest + 1, [])  # their blocks replaced by empty ones
    for batch in open_:
        assert not chain.batch(batch.id).exists, f"batch {batch.id} still on chain"

    def anchored_again() -> bool:
        now = {b.id: b for b in batches(stack)}
        return all(
            now[b.id].attempts >= 2 and now[b.id].status in ("anchored", "final") for b in open_
        )

    wait_for(anchored_again, SETTLE, "the dropped batches to be anchored again")
    assert "anchored_block_left_chain" in stack.log("worker")
    stack.rpc("anvil_mine", "0x3")
    stack.wait_all(SETTLE, status=("final",))
    summary = assert_consistent(stack)
    note("reorg", summary)
    for old in open_:
        (new,) = [b for b in summary.batches if b.id == old.id]
        assert (new.tx_hash, new.block_hash) != (old.tx_hash, old.block_hash)
        assert new.root == old.root


def test_after_a_chain_wipe_no_batch_is_taken_for_anchored_on_a_contract_without_code(
    chaos_stack: StackFactory,
):
    """Between the wipe and the next reconciliation (up to a minute) new batches keep being sent;
    a transaction to an address without code succeeds (a plain call), so a batch sent then must
    not be called anchored. (Batches anchored before the wipe read as final until reconciliation
    notices; that delay is the reconciliation interval, covered by the test above.)"""
    stack = chaos_stack()
    stack.emit(10, 2)
    stack.wait_all(SETTLE)
    contract = stack.anchor_address()
    known = {b.id for b in batches(stack)}

    def reconciliations() -> int:
        return sum(
            "ledger.anchoring.reconcile[" in line and "succeeded" in line
            for line in stack.log("worker").splitlines()
        )

    # wipe just after a reconciliation, as an operator would at any moment: the next one is a
    # minute away, so the window is the whole interval rather than a race with it
    done = reconciliations()
    wait_for(lambda: reconciliations() > done, 90, "a periodic reconciliation")
    stack.kill_anvil()
    assert stack.anvil.state_file is not None
    stack.anvil.state_file.unlink()
    stack.restart_anvil()
    stack.emit(10, 2)

    def has_code() -> bool:
        return len(stack.w3.eth.get_code(stack.w3.to_checksum_address(contract))) > 0

    def new_batches_off_pending() -> list[tuple[int, str, str | None, str | None]]:
        return [
            (b.id, b.status, b.contract, b.tx_hash)
            for b in batches(stack)
            if b.id not in known and b.status != "pending"
        ]

    # until a batch of the new events is sent, or reconciliation redeploys (then all is well)
    wait_for(lambda: bool(new_batches_off_pending()) or has_code(), 150, "a send after the wipe")
    code = has_code()
    on_nothing = [
        b
        for b in new_batches_off_pending()
        if b[1] in ("anchored", "final") and b[2] == contract.lower()
    ]
    assert code or on_nothing == [], (
        f"batches sent after the wipe and taken for anchored on {contract}, which has no code"
    )
