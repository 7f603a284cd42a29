"""End-to-end anchoring through the real worker, in one run: events/s and latency, gas, baseline.

Run: ``uv run python bench/anchoring_e2e.py`` (``--rate 100 --seconds 30 --burst 10000``).
Everything is local and loopback only: an embedded PostgreSQL on a unix socket (database and
kombu's SQLAlchemy broker), anvil on 127.0.0.1 mining a block every ``--block-time`` seconds, and
``celery worker`` + ``celery beat`` as separate processes with the shipped anchoring settings
(``QILIAN_*`` defaults: batches close at 10 000 leaves or 2 s, 2 confirmations, 1 000 records per
pass). It measures:

1. **steady load** — ``--rate`` events/s for ``--seconds`` s, committed to the outbox with
   :func:`qilian.kit.outbox.emit` in small transactions (5 events per receivable, chained);
2. **burst** — ``--burst`` events committed as fast as possible, then drained;

for each: events per second from the first commit to the last event anchored and final, and the
latency of each event from its commit (clock read after the commit returned) to its batch's
``anchored_at`` and ``final_at`` (set by the worker when it saw the receipt and the depth),
p50/p95/p99/max;

3. **gas per event** of one ``anchorRoot`` at batch sizes ``--gas-sizes`` (default 1, 100,
   10 000) on a fresh contract, and of the batches the worker actually sent above;
4. **baseline** — the steady phase's own records (their ``entry_id``/``record_hash`` read back
   from the database, at most ``--baseline-max``) anchored one transaction per leaf hash, one in
   flight at a time, on an automining anvil (the most favourable chain for it).

Every wait is bounded by ``--timeout``. Prints the figures quoted in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from web3 import Web3

from bench.anchoring import anchor, deploy, records
from bench.common import machine
from qilian.kit.anvil import Anvil
from services.ledger.records import merkle
from services.ledger.records.canonical import leaf_hash
from services.ledger.records.keccak import from_hex

BIN = Path(sys.executable).parent
EVENTS_PER_RECEIVABLE = 5


STAGES = ("delivered", "record", "batched", "sent", "anchored", "final")


@dataclass
class Phase:
    name: str
    commits: dict[str, float]  # event_id → wall-clock time its transaction committed
    anchored: dict[str, float]
    final: dict[str, float]
    batches: int
    gas: int
    stages: dict[str, dict[str, float]]  # stage → event_id → when the event reached it

    @property
    def events(self) -> int:
        return len(self.commits)

    def rate(self, done: dict[str, float]) -> float:
        return self.events / (max(done.values()) - min(self.commits.values()))

    def latencies(self, done: dict[str, float]) -> list[float]:
        return sorted(done[e] - self.commits[e] for e in self.commits)


def percentile(sorted_values: list[float], q: float) -> float:
    index = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


@contextlib.contextmanager
def process(command: list[str], env: dict[str, str], log: Path) -> Iterator[None]:
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield
    finally:
        if popen.poll() is None:
            os.killpg(popen.pid, signal.SIGTERM)
            try:
                popen.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()


def payload(receivable: str, seq: int) -> dict[str, Any]:
    return {
        "receivable_id": receivable,
        "seq": seq,
        "type": "created" if seq == 1 else "confirmed",
        "at": "2026-11-29T06:00:00.000000Z",
        "actor": "org_bench",
        "data": {"amount": "1000.00", "currency": "CNY", "seq": seq},
    }


class Emitter:
    def __init__(self) -> None:
        self.receivables = 0

    async def commit(self, count: int) -> tuple[list[str], float]:
        """``count`` events (a multiple of 5) in one transaction; their ids and commit time."""
        from qilian.kit import db, outbox

        ids: list[str] = []
        async with db.transaction() as session:
            for _ in range(count // EVENTS_PER_RECEIVABLE):
                self.receivables += 1
                rid = f"rcv_bench_{self.receivables:08d}"
                for seq in range(1, EVENTS_PER_RECEIVABLE + 1):
                    ids.append(await outbox.emit(session, "receivable.event", payload(rid, seq)))
        return ids, time.time()


async def steady(emitter: Emitter, rate: int, seconds: float) -> dict[str, float]:
    """``rate`` events/s in transactions of 5 events, paced on the monotonic clock."""
    commits: dict[str, float] = {}
    interval = EVENTS_PER_RECEIVABLE / rate
    start = time.monotonic()
    n = 0
    while (due := start + n * interval) < start + seconds:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        ids, at = await emitter.commit(EVENTS_PER_RECEIVABLE)
        commits.update(dict.fromkeys(ids, at))
        n += 1
    return commits


async def burst(emitter: Emitter, count: int, per_transaction: int = 1000) -> dict[str, float]:
    commits: dict[str, float] = {}
    for start in range(0, count, per_transaction):
        ids, at = await emitter.commit(min(per_transaction, count - start))
        commits.update(dict.fromkeys(ids, at))
    return commits


def epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


async def outcome(commits: dict[str, float]) -> tuple[dict[str, float], dict[str, float], int, int]:
    from qilian.kit import db

    async with db.transaction() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT r.event_id, b.id, b.anchored_at, b.final_at, b.gas_used"
                    " FROM ledger.records r JOIN ledger.batches b ON b.id = r.batch_id"
                    " WHERE r.event_id = ANY(:ids)"
                ),
                {"ids": list(commits)},
            )
        ).all()
    anchored = {r[0]: t for r in rows if (t := epoch(r[2])) is not None}
    final = {r[0]: t for r in rows if (t := epoch(r[3])) is not None}
    gas = {r[1]: int(r[4] or 0) for r in rows}
    return anchored, final, len(gas), sum(gas.values())


async def stages(commits: dict[str, float]) -> dict[str, dict[str, float]]:
    """When each event reached each stage: acknowledged into the inbox (outbox ``delivered_at``),
    turned into a record, put in a batch, its batch sent, anchored, final."""
    from qilian.kit import db

    async with db.transaction() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT o.event_id, o.delivered_at, r.created_at, b.created_at, b.sent_at,"
                    " b.anchored_at, b.final_at FROM platform.outbox o"
                    " JOIN ledger.records r ON r.event_id = o.event_id"
                    " JOIN ledger.batches b ON b.id = r.batch_id WHERE o.event_id = ANY(:ids)"
                ),
                {"ids": list(commits)},
            )
        ).all()
    out: dict[str, dict[str, float]] = {stage: {} for stage in STAGES}
    for row in rows:
        for stage, value in zip(STAGES, row[1:], strict=True):
            if (at := epoch(value)) is not None:
                out[stage][row[0]] = at
    return out


async def drain(name: str, commits: dict[str, float], limit: float) -> Phase:
    deadline = time.monotonic() + limit
    while True:
        anchored, final, batches, gas = await outcome(commits)
        if len(final) == len(commits):
            return Phase(name, commits, anchored, final, batches, gas, await stages(commits))
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name}: {len(final)} of {len(commits)} final after {limit}s")
        await asyncio.sleep(0.5)


async def leaves_of(commits: dict[str, float], limit: int) -> list[bytes]:
    from qilian.kit import db

    async with db.transaction() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT entry_id, record_hash FROM ledger.records"
                    " WHERE event_id = ANY(:ids) ORDER BY created_at, event_id LIMIT :n"
                ),
                {"ids": list(commits), "n": limit},
            )
        ).all()
    return [leaf_hash(from_hex(e, length=32), from_hex(h, length=32)) for e, h in rows]


def gas_per_size(sizes: list[int]) -> list[tuple[int, int]]:
    """Gas of one anchorRoot per batch size, on a fresh contract of an automining anvil."""
    with Anvil() as node:
        chain = deploy(Web3(Web3.HTTPProvider(node.rpc_url)), node.rpc_url)
        out = []
        for batch_id, size in enumerate(sizes, start=1):
            tree = merkle.build(records(size))
            out.append((size, anchor(chain, batch_id, tree.root, size, chain.nonce())))
        return out


def baseline(leaves: list[bytes]) -> tuple[float, int]:
    """Each leaf in its own anchorRoot, one in flight at a time: seconds and total gas."""
    with Anvil() as node:
        chain = deploy(Web3(Web3.HTTPProvider(node.rpc_url)), node.rpc_url)
        nonce, gas = chain.nonce(), 0
        start = time.perf_counter()
        for batch_id, leaf in enumerate(leaves, start=1):
            gas += anchor(chain, batch_id, leaf, 1, nonce)
            nonce += 1
        return time.perf_counter() - start, gas


def run_stack(args: argparse.Namespace, root: Path) -> list[Phase]:
    from qilian.cli import embedded
    from qilian.cli.main import migrate_database
    from qilian.kit import db
    from qilian.kit.settings import get_settings

    pg = embedded.start(root / "pgdata")
    try:
        pg.ensure_database("qilian")
        pg.ensure_database("qilian_broker")
        node = Anvil(block_time=args.block_time, log_file=root / "anvil.log").start()
        try:
            env = {
                **os.environ,
                "QILIAN_ENV": "development",
                "QILIAN_DATABASE_URL": pg.url("qilian"),
                "QILIAN_BROKER_URL": "sqla+" + pg.url("qilian_broker", driver="psycopg"),
                "QILIAN_RPC_URL": node.rpc_url,
                "QILIAN_LOG_LEVEL": "WARNING",
                "PYTHONUNBUFFERED": "1",
            }
            os.environ.update({k: v for k, v in env.items() if k.startswith("QILIAN_")})
            get_settings.cache_clear()
            migrate_database(pg.url("qilian"))
            subprocess.run(
                [str(BIN / "qilian"), "deploy-contracts"], env=env, check=True, capture_output=True
            )
            celery = [str(BIN / "celery"), "-A", "services.worker.app"]
            worker = [*celery, "worker", "--loglevel", "INFO", "--concurrency", "2"]
            beat = [*celery, "beat", "--loglevel", "WARNING", "-s", str(root / "beat-schedule")]
            with (
                process(worker, {**env, "QILIAN_LOG_LEVEL": "INFO"}, root / "worker.log"),
                process(beat, env, root / "beat.log"),
            ):

                async def measure() -> list[Phase]:
                    emitter = Emitter()
                    try:
                        warm = await burst(emitter, 50)  # the worker is up and anchoring
                        await drain("warm-up", warm, args.timeout)
                        print(f"steady: {args.rate} events/s for {args.seconds} s", flush=True)
                        commits = await steady(emitter, args.rate, args.seconds)
                        first = await drain("steady", commits, args.timeout)
                        print(f"burst: {args.burst} events", flush=True)
                        commits = await burst(emitter, args.burst)
                        second = await drain("burst", commits, args.timeout)
                        args.baseline_leaves = await leaves_of(first.commits, args.baseline_max)
                        return [first, second]
                    finally:
                        await db.dispose_engine()

                phases = asyncio.run(measure())
            args.task_times = task_times((root / "worker.log").read_text(errors="replace"))
            return phases
        finally:
            node.stop()
    finally:
        pg.stop()


TASK_DONE = re.compile(r"Task ([\w.]+)\[[^\]]+\] succeeded in ([0-9.]+)s")


def task_times(log: str) -> dict[str, list[float]]:
    """Run times of the worker's tasks over the whole run, from its INFO log."""
    times: dict[str, list[float]] = {}
    for name, seconds in TASK_DONE.findall(log):
        times.setdefault(name, []).append(float(seconds))
    return times


def report_tasks(times: dict[str, list[float]]) -> None:
    print()
    print("| worker task (whole run) | runs | busy | median | max |")
    print("|---|---:|---:|---:|---:|")
    for name, values in sorted(times.items()):
        values = sorted(values)
        print(
            f"| `{name}` | {len(values):,} | {sum(values):.1f} s | "
            f"{values[len(values) // 2]:.3f} s | {values[-1]:.2f} s |"
        )


def report_stages(phases: list[Phase]) -> None:
    print()
    print("| load | " + " | ".join(f"→ {s} p50 / p95" for s in STAGES) + " |")
    print("|---|" + "---|" * len(STAGES))
    for p in phases:
        cells, before = [], p.commits
        for stage in STAGES:
            at = p.stages[stage]
            gaps = sorted(at[e] - before[e] for e in at if e in before)
            cells.append(
                f"{percentile(gaps, 50):.2f} / {percentile(gaps, 95):.2f} s" if gaps else "–"
            )
            before = at
        print(f"| {p.name} | " + " | ".join(cells) + " |")


def report(phases: list[Phase], gas: list[tuple[int, int]], base: tuple[float, int], n: int):
    print()
    print(machine())
    print()
    print(
        "| load | events | batches | events/s to anchored | events/s to final "
        "| commit → anchored p50 / p95 / p99 / max | commit → final p50 / p95 / p99 / max "
        "| gas / event |"
    )
    print("|---|---:|---:|---:|---:|---|---|---:|")
    for p in phases:
        cells = []
        for done in (p.anchored, p.final):
            lat = p.latencies(done)
            cells.append(
                " / ".join(f"{percentile(lat, q):.2f}" for q in (50, 95, 99))
                + f" / {lat[-1]:.2f} s"
            )
        print(
            f"| {p.name} | {p.events:,} | {p.batches} | {p.rate(p.anchored):,.0f} | "
            f"{p.rate(p.final):,.0f} | {cells[0]} | {cells[1]} | {p.gas / p.events:,.1f} |"
        )
    print()
    print("| batch size | gas of anchorRoot | gas / event |")
    print("|---:|---:|---:|")
    for size, used in gas:
        print(f"| {size:,} | {used:,} | {used / size:,.2f} |")
    seconds, total = base
    steady_phase = phases[0]
    batched_gas = steady_phase.gas / steady_phase.events
    print()
    print(
        f"Baseline: the steady phase's first {n:,} records, one anchorRoot each (automine): "
        f"{seconds:.1f} s, {n / seconds:,.0f} events/s, {total / n:,.0f} gas / event — "
        f"{(total / n) / batched_gas:,.0f}× the gas per event of the batches the worker sent "
        f"in the steady phase ({batched_gas:,.1f})."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rate", type=int, default=100, help="steady events/s (multiple of 5)")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--gas-sizes", default="1,100,10000")
    parser.add_argument("--baseline-max", type=int, default=3000)
    parser.add_argument("--block-time", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=600.0, help="bound of every wait")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="qilian-bench-"))
    try:
        phases = run_stack(args, root)
        gas = gas_per_size([int(s) for s in args.gas_sizes.split(",")])
        leaves: list[bytes] = args.baseline_leaves
        base = baseline(leaves)
        report(phases, gas, base, len(leaves))
        report_stages(phases)
        report_tasks(args.task_times)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
