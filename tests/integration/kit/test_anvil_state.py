"""anvil killed in the middle of a state dump leaves a torn file it refuses to start on: the
launcher puts the last good copy in its place (and keeps the torn one), so the chain comes back."""

from __future__ import annotations

from pathlib import Path

import httpx

from qilian.kit.anvil import Anvil, keep_last_good, last_good, repair_state

RICH = "0x00000000000000000000000000000000000000a1"


def rpc(chain: Anvil, method: str, *params: object) -> object:
    answer = httpx.post(
        chain.rpc_url,
        json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
        timeout=10,
    ).json()
    assert "result" in answer, answer
    return answer["result"]


def test_a_torn_state_file_restarts_from_its_last_good_copy(tmp_path: Path):
    state = tmp_path / "chain" / "state.json"
    with Anvil(state_file=state) as first:
        rpc(first, "anvil_setBalance", RICH, hex(12345))
        rpc(first, "evm_mine")
    assert keep_last_good(state)  # what the keeper does while anvil runs (SIGTERM wrote it)
    whole = state.read_bytes()
    state.write_bytes(whole[: len(whole) // 2])  # a kill in the middle of the next dump

    with Anvil(state_file=state) as again:  # without the repair: "anvil exited with 2"
        assert int(str(rpc(again, "eth_getBalance", RICH, "latest")), 16) == 12345
    torn = list(state.parent.glob("state.json.torn-*"))
    assert len(torn) == 1
    assert torn[0].read_bytes() == whole[: len(whole) // 2]  # kept for whoever looks into it


def test_a_whole_state_is_left_alone_and_copied_a_torn_one_without_copy_starts_anew(
    tmp_path: Path,
):
    state = tmp_path / "state.json"
    assert repair_state(state) is None  # nothing yet: nothing to do
    state.write_text('{"block": 1}')
    assert repair_state(state) is None
    assert last_good(state).read_text() == '{"block": 1}'
    last_good(state).unlink()
    state.write_text('{"block": ')
    assert "no good copy" in (repair_state(state) or "")
    assert not state.exists()  # anvil starts a new chain
    assert not keep_last_good(state)
