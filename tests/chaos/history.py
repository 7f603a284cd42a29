"""The history of a workload: every operation a client tried, and what it learnt of the outcome.

Each operation is invoked, then completes as one of

- ``ok``: the server answered 2xx — its effect must be in the database for good;
- ``fail``: the server answered 4xx, or the request never left the client (connection refused) —
  its effect must be absent;
- ``unknown``: a timeout, a connection lost after the request was sent, a 5xx, or a ``409`` for a
  replay of a request still running — it may or may not have been committed (the checker accepts
  either, but never twice).

Operations are keyed by their ``Idempotency-Key``; a *replay* re-sends an earlier operation's key
and body (``replay_of``), and must get the first answer back with no second effect.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

OUTCOMES = ("ok", "fail", "unknown")


@dataclass
class Op:
    id: int
    actor: str
    kind: str  # upload, confirm, split, transfer, request, bid, accept, fund, pay, dispute, …
    key: str | None
    args: dict[str, Any]
    started: float
    outcome: str = "invoke"
    status: int | None = None
    ended: float | None = None
    result: dict[str, Any] = field(default_factory=dict)  # ids the answer named
    body: Any = None  # the answer's JSON (kept for replay comparison)
    error: str | None = None
    replay_of: int | None = None
    fault: str | None = None  # the fault active when it was invoked, if any


@dataclass
class History:
    ops: list[Op] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)
    fault: str | None = None  # set by the nemesis while a fault is active

    def now(self) -> float:
        return time.monotonic() - self.t0

    def invoke(
        self,
        actor: str,
        kind: str,
        key: str | None,
        args: dict[str, Any],
        replay_of: int | None = None,
    ) -> Op:
        op = Op(len(self.ops), actor, kind, key, args, self.now(), replay_of=replay_of)
        op.fault = self.fault
        self.ops.append(op)
        return op

    def complete(
        self,
        op: Op,
        outcome: str,
        *,
        status: int | None = None,
        body: Any = None,
        error: str | None = None,
        **result: Any,
    ) -> Op:
        assert outcome in OUTCOMES, outcome
        op.outcome, op.status, op.body, op.error = outcome, status, body, error
        op.result.update(result)
        op.ended = self.now()
        return op

    # views -----------------------------------------------------------------------------------

    def completed(self, kind: str | None = None, outcome: str | None = None) -> list[Op]:
        return [
            o
            for o in self.ops
            if o.outcome != "invoke"
            and (kind is None or o.kind == kind)
            and (outcome is None or o.outcome == outcome)
        ]

    def by_key(self, key: str) -> list[Op]:
        return [o for o in self.ops if o.key == key]

    def final(self, kind: str) -> dict[str, Op]:
        """Per idempotency key, the most informative completion: ``ok`` beats ``fail`` beats
        ``unknown`` (a retry with the same key that answered settles an earlier unknown)."""
        rank = {"ok": 0, "fail": 1, "unknown": 2, "invoke": 3}
        best: dict[str, Op] = {}
        for op in self.ops:
            if op.kind != kind or op.key is None:
                continue
            if op.key not in best or rank[op.outcome] < rank[best[op.key].outcome]:
                best[op.key] = op
        return best

    def counts(self) -> Counter[str]:
        return Counter(o.outcome for o in self.ops)

    def kinds(self) -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = {}
        for op in self.ops:
            out.setdefault(op.kind, Counter())[op.outcome] += 1
        return out

    def first_ok_after(self, moment: float) -> float | None:
        times = [o.ended for o in self.ops if o.outcome == "ok" and o.started >= moment and o.ended]
        return min(times) if times else None

    def dump(self, path: Path) -> None:
        with path.open("w") as out:
            for op in self.ops:
                row = asdict(op)
                row.pop("body")
                out.write(json.dumps(row, default=str) + "\n")
