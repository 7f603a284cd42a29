"""Keccak-256, the strict hex convention and the fail-closed start-up check."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from services.ledger.records import keccak
from services.ledger.records.keccak import (
    EMPTY_KECCAK256,
    ensure_keccak_backend,
    from_hex,
    keccak256,
    to_hex,
)


def test_keccak256_of_empty_input_is_the_known_answer():
    assert keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )


def test_keccak256_is_not_nist_sha3():
    # NIST SHA3-256(b"") differs; a library swapping one for the other must be caught.
    assert keccak256(b"").hex() != (
        "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"
    )


def test_keccak256_of_text_matches_cast_keccak():
    # `cast keccak "evt_00000000000000000000000000000001"` (Foundry 1.7.1)
    assert to_hex(keccak256(b"evt_00000000000000000000000000000001")) == (
        "0x161e90d5160b903a26eb8e80911f6977f6a00c82e587be3216b66a0a8d59767f"
    )


def test_to_hex_is_prefixed_lowercase():
    assert to_hex(b"\xab\xcd") == "0xabcd"
    assert to_hex(b"") == "0x"


def test_from_hex_round_trips_to_hex():
    data = bytes(range(256))
    assert from_hex(to_hex(data)) == data
    assert from_hex("0x") == b""


@pytest.mark.parametrize(
    "text",
    ["abcd", "0xABCD", "0xAbcd", "0Xabcd", "0xabc", "0x zz", " 0xab", "0xab\n", "0xgg"],
)
def test_from_hex_refuses_anything_but_prefixed_even_lowercase_hex(text):
    with pytest.raises(ValueError, match="lowercase hex"):
        from_hex(text)


def test_from_hex_refuses_a_wrong_length_when_one_is_asked_for():
    with pytest.raises(ValueError, match="expected 32 bytes"):
        from_hex("0x" + "00" * 31, length=32)
    assert from_hex("0x" + "00" * 32, length=32) == bytes(32)


def test_ensure_keccak_backend_fails_closed_when_keccak_is_wrong(monkeypatch):
    import hashlib

    monkeypatch.setattr(keccak, "keccak256", lambda data: hashlib.sha3_256(data).digest())
    with pytest.raises(RuntimeError, match="broken Keccak"):
        ensure_keccak_backend()


def _run_isolated(code: str, env_backend: str | None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter: eth-hash picks its backend once per process."""
    env = {k: v for k, v in os.environ.items() if k != "ETH_HASH_BACKEND"}
    if env_backend is not None:
        env["ETH_HASH_BACKEND"] = env_backend
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_ensure_keccak_backend_pins_eth_hash_to_pysha3_when_unset():
    result = _run_isolated(
        """
        import os
        from services.ledger.records.keccak import ensure_keccak_backend
        ensure_keccak_backend()
        from eth_hash.auto import keccak
        print(os.environ["ETH_HASH_BACKEND"], type(keccak.hasher.__self__).__module__)
        """,
        env_backend=None,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["pysha3", "eth_hash.backends.pysha3"]


def test_ensure_keccak_backend_refuses_another_configured_eth_hash_backend():
    result = _run_isolated(
        """
        from services.ledger.records.keccak import ensure_keccak_backend
        ensure_keccak_backend()
        """,
        env_backend="pycryptodome",
    )
    assert result.returncode != 0
    assert "RuntimeError" in result.stderr
    assert "ETH_HASH_BACKEND='pycryptodome'" in result.stderr


def test_ensure_keccak_backend_refuses_when_eth_hash_already_chose_another_backend():
    result = _run_isolated(
        """
        from eth_hash.auto import keccak
        keccak(b"warm up before the check")  # eth-hash settles on pycryptodome here
        from services.ledger.records.keccak import ensure_keccak_backend
        ensure_keccak_backend()
        """,
        env_backend=None,
    )
    assert result.returncode != 0
    assert "eth-hash already uses eth_hash.backends.pycryptodome" in result.stderr


def test_empty_keccak_constant_is_what_the_specification_states():
    assert to_hex(EMPTY_KECCAK256) == (
        "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )
