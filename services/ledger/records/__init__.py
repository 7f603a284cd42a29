"""The ledger's hashing core: anchored records, their hashes, the Merkle tree and proof bundles.

Pure functions and immutable models — no database, no chain — so that the exact bytes the ledger
anchors can be reproduced by anyone from the specification in docs/anchoring.md:

- :mod:`.keccak` — Keccak-256, the hex convention, the start-up self-check;
- :mod:`.canonical` — the ``qilian.receivable-event/1`` record, its RFC 8785 bytes, record_hash,
  entry_id and Merkle leaf;
- :mod:`.merkle` — OpenZeppelin's ``StandardMerkleTree`` (``standard-v1``), proofs, dump and load;
- :mod:`.bundle` — the ``qilian-proof/1`` proof bundle and its offline verification.
"""
