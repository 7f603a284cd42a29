"""Time to build the batch Merkle tree: Qilian's implementation against baselines in the same run.

Run: ``uv run python bench/merkle.py`` (``--repeat N``, ``--sizes 1000,10000``, ``--js``). Prints
the Markdown table quoted in docs/benchmarks.md. Implementations, all checked to give one root:

- ``qilian``: ``services.ledger.records.merkle.build`` — safe-pysha3, one list comprehension per
  tree level;
- ``naive pysha3``: the specification transcribed one node at a time (a function call per leaf and
  per node, no input checks), same Keccak library — isolates the cost of the loop structure;
- ``naive eth-hash/pycryptodome``: the same naive loop hashing through eth-hash's pycryptodome
  backend, i.e. what ``Web3.keccak`` does when ``ETH_HASH_BACKEND`` is not set;
- ``openzeppelin js`` (with ``--js``): ``StandardMerkleTree.of`` in node, timed inside node.

Each figure is the median of ``--repeat`` runs (and the fastest); the Python implementations take
turns within each repeat. The machine is shared and noisy, so only ratios measured in the same
run are worth comparing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from eth_hash.backends import pycryptodome
from sha3 import keccak_256

from bench.common import machine
from services.ledger.records import merkle
from services.ledger.records.keccak import to_hex

Values = Sequence[tuple[bytes, bytes]]
REPO_ROOT = Path(__file__).resolve().parents[1]
OZ_MERKLE_TREE = REPO_ROOT / "contracts" / "node_modules" / "@openzeppelin" / "merkle-tree"


def naive_root(values: Values, keccak: Callable[[bytes], bytes]) -> bytes:
    """StandardMerkleTree's makeMerkleTree, one node at a time."""

    def leaf(entry: bytes, record: bytes) -> bytes:
        return keccak(keccak(entry + record))

    def node(a: bytes, b: bytes) -> bytes:
        return keccak(a + b if a < b else b + a)

    leaves = sorted(leaf(entry, record) for entry, record in values)
    tree: list[bytes] = [b""] * (2 * len(leaves) - 1)
    for k, hashed in enumerate(leaves):
        tree[len(tree) - 1 - k] = hashed
    for i in range(len(tree) - 1 - len(leaves), -1, -1):
        tree[i] = node(tree[2 * i + 1], tree[2 * i + 2])
    return tree[0]


def pysha3(data: bytes) -> bytes:
    digest: bytes = keccak_256(data).digest()
    return digest


IMPLEMENTATIONS: dict[str, Callable[[Values], bytes]] = {
    "qilian": lambda values: merkle.build(values).root,
    "naive pysha3": lambda values: naive_root(values, pysha3),
    "naive eth-hash/pycryptodome": lambda values: naive_root(values, pycryptodome.keccak256),
}

JS_TIMER = """
const fs = require("fs");
const { StandardMerkleTree } = require(process.env.OZ_MERKLE_TREE);
const values = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
const repeat = Number(process.argv[2]);
const times = [];
let root;
for (let r = 0; r < repeat; r++) {
  const start = process.hrtime.bigint();
  root = StandardMerkleTree.of(values, ["bytes32", "bytes32"]).root;
  times.push(Number(process.hrtime.bigint() - start) / 1e9);
}
process.stdout.write(JSON.stringify({ root, times }));
"""


def make_values(count: int, seed: int = 20250131) -> list[tuple[bytes, bytes]]:
    rng = random.Random(seed + count)
    return [(rng.randbytes(32), rng.randbytes(32)) for _ in range(count)]


def time_python(values: Values, repeat: int) -> dict[str, tuple[bytes, list[float]]]:
    """Each implementation ``repeat`` times, taking turns, so that noise from other tenants of
    the machine falls on all of them alike."""
    roots: dict[str, bytes] = {}
    times: dict[str, list[float]] = {name: [] for name in IMPLEMENTATIONS}
    for _ in range(repeat):
        for name, build in IMPLEMENTATIONS.items():
            start = time.perf_counter()
            roots[name] = build(values)
            times[name].append(time.perf_counter() - start)
    return {name: (roots[name], times[name]) for name in IMPLEMENTATIONS}


def time_js(values: Values, repeat: int) -> tuple[bytes, list[float]]:
    node = shutil.which("node")
    if node is None:
        raise SystemExit("--js needs node on PATH")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "values.json"
        path.write_text(json.dumps([[to_hex(e), to_hex(r)] for e, r in values]))
        result = subprocess.run(
            [node, "-e", JS_TIMER, str(path), str(repeat)],
            env={**os.environ, "OZ_MERKLE_TREE": str(OZ_MERKLE_TREE)},
            capture_output=True,
            text=True,
            check=True,
        )
    out = json.loads(result.stdout)
    return bytes.fromhex(out["root"][2:]), out["times"]


def time_extras(values: Values, repeat: int) -> dict[str, float]:
    """Median seconds of the other operations the ledger does per batch, on Qilian's tree."""
    tree = merkle.build(values)
    dump = tree.dump()
    extras: dict[str, list[float]] = {"dump": [], "load (checks every node)": [], "all proofs": []}
    for _ in range(repeat):
        start = time.perf_counter()
        tree.dump()
        extras["dump"].append(time.perf_counter() - start)
        start = time.perf_counter()
        merkle.load(dump)
        extras["load (checks every node)"].append(time.perf_counter() - start)
        start = time.perf_counter()
        for index in range(len(values)):
            tree.proof(index)
        extras["all proofs"].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in extras.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--js", action="store_true", help="also time StandardMerkleTree.of in node")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]

    print(f"Machine: {machine()}; median of {args.repeat} runs (fastest in brackets)\n")
    names = [*IMPLEMENTATIONS, *(["openzeppelin js"] if args.js else [])]
    header = ["leaves", *names, *(f"{name} / qilian" for name in names[1:])]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    extras_by_size: dict[int, dict[str, float]] = {}
    for size in sizes:
        values = make_values(size)
        results = time_python(values, args.repeat)
        if args.js:
            results["openzeppelin js"] = time_js(values, args.repeat)
        roots = {root for root, _ in results.values()}
        if len(roots) != 1:
            raise SystemExit(f"implementations disagree on the root of {size} leaves: {roots}")
        medians = {name: statistics.median(times) for name, (_, times) in results.items()}
        cells = [f"{size:,}"]
        cells += [f"{medians[name]:.3f} s ({min(results[name][1]):.3f})" for name in names]
        cells += [f"{medians[name] / medians['qilian']:.1f}×" for name in names[1:]]
        print("| " + " | ".join(cells) + " |", flush=True)
        extras_by_size[size] = time_extras(values, args.repeat)

    print("\nOther per-batch operations on Qilian's tree (median seconds):\n")
    operations = list(next(iter(extras_by_size.values())))
    print("| leaves | " + " | ".join(operations) + " |")
    print("|" + "---|" * (len(operations) + 1))
    for size, extras in extras_by_size.items():
        print(f"| {size:,} | " + " | ".join(f"{extras[op]:.3f} s" for op in operations) + " |")


if __name__ == "__main__":
    main()
