"""Keccak-256 and the hex conventions of the anchoring format.

Every hash the ledger publishes is Ethereum's Keccak-256 (not NIST SHA3-256), computed here with
``safe-pysha3`` directly: it is markedly faster than pycryptodome for the 32- and 64-byte inputs
of a Merkle tree (figures in docs/benchmarks.md). web3.py hashes through ``eth-hash``, which picks
its backend from the ``ETH_HASH_BACKEND`` environment variable (and otherwise prefers
pycryptodome); :func:`ensure_keccak_backend` pins it to ``pysha3`` so that both paths use the same
library, and refuses to start when either does not produce the known Keccak-256 of b"".

Hex convention (docs/anchoring.md): byte strings are written ``0x`` followed by an even number of
**lowercase** hex digits. :func:`from_hex` accepts only that form. A record is hashed as text, so
``0xAB`` and ``0xab`` would give two different record hashes for the same bytes; allowing a single
spelling removes that ambiguity everywhere instead of normalising in some places and not in others.
"""

from __future__ import annotations

import os
import re
from typing import Final

from sha3 import keccak_256

EMPTY_KECCAK256: Final = bytes.fromhex(
    "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
)
"""keccak256(b"") — the known answer checked at start (NIST SHA3-256 of b"" is a7ffc6f8…)."""

ETH_HASH_BACKEND: Final = "pysha3"

_HEX_RE: Final = re.compile(r"0x(?:[0-9a-f]{2})*")


def keccak256(data: bytes) -> bytes:
    """Ethereum Keccak-256 of ``data`` (32 bytes)."""
    digest: bytes = keccak_256(data).digest()
    return digest


def to_hex(value: bytes) -> str:
    """``0x``-prefixed lowercase hex of ``value`` (``b""`` gives ``"0x"``)."""
    return "0x" + value.hex()


def from_hex(text: str, *, length: int | None = None) -> bytes:
    """Bytes of a ``0x``-prefixed, even-length, lowercase hex string.

    Uppercase digits, a missing prefix, an odd number of digits or (when ``length`` is given) a
    different number of bytes raise :class:`ValueError`.
    """
    if not isinstance(text, str) or _HEX_RE.fullmatch(text) is None:
        raise ValueError(
            f"expected 0x-prefixed lowercase hex with an even number of digits, got {text!r:.80}"
        )
    value = bytes.fromhex(text[2:])
    if length is not None and len(value) != length:
        raise ValueError(f"expected {length} bytes of hex, got {len(value)}")
    return value


def ensure_keccak_backend() -> None:
    """Fail closed unless Keccak-256 is the real thing, here and in eth-hash.

    Call once at process start, before anything hashes through web3 / eth-hash:

    - ``keccak256(b"")`` must equal :data:`EMPTY_KECCAK256` (a wrong build or a SHA3-256
      substitute would silently produce roots nobody else can reproduce);
    - ``ETH_HASH_BACKEND`` is set to ``pysha3`` when unset; any other value is refused, as a
      contradicting configuration;
    - eth-hash's shared ``keccak`` must then resolve to its pysha3 backend and give the same
      known answer. eth-hash chooses its backend once, on the first hash; if something hashed
      before this call and eth-hash settled on another backend, this raises and says so.

    Raises :class:`RuntimeError` with the reason; returns ``None`` when everything holds.
    """
    got = keccak256(b"")
    if got != EMPTY_KECCAK256:
        raise RuntimeError(
            f"keccak256(b'') from safe-pysha3 is {to_hex(got)}, expected "
            f"{to_hex(EMPTY_KECCAK256)}: refusing to hash anything with a broken Keccak"
        )

    configured = os.environ.get("ETH_HASH_BACKEND", "")
    if configured == "":
        os.environ["ETH_HASH_BACKEND"] = ETH_HASH_BACKEND
    elif configured != ETH_HASH_BACKEND:
        raise RuntimeError(
            f"ETH_HASH_BACKEND={configured!r}, but Qilian requires {ETH_HASH_BACKEND!r} "
            "(unset it or set it to pysha3)"
        )

    from eth_hash.auto import keccak as eth_keccak

    try:
        eth_got = eth_keccak(b"")
    except Exception as exc:  # pragma: no cover - depends on the installed packages
        raise RuntimeError(f"eth-hash cannot load its {ETH_HASH_BACKEND} backend: {exc}") from exc
    if eth_got != EMPTY_KECCAK256:
        raise RuntimeError(
            f"eth-hash keccak(b'') is {to_hex(eth_got)}, expected {to_hex(EMPTY_KECCAK256)}"
        )
    owner = getattr(eth_keccak.hasher, "__self__", None)
    backend_module = type(owner).__module__ if owner is not None else "unknown"
    if backend_module != f"eth_hash.backends.{ETH_HASH_BACKEND}":
        raise RuntimeError(
            f"eth-hash already uses {backend_module}, not {ETH_HASH_BACKEND}: call "
            "ensure_keccak_backend() at process start, before anything hashes through web3"
        )
