"""The nemesis: faults injected into a running :class:`~tests.chaos.stack.MarketStack` while a
workload runs, each on its own or several together.

| fault | what happens |
|---|---|
| ``kill-{worker,beat,api,ledger}`` | SIGKILL of the process group, restarted after the hold |
| ``pause-anvil`` | SIGSTOP of anvil for the fault's duration, then SIGCONT |
| ``restart-anvil`` | SIGKILL of anvil, restarted from its state file (``--state-interval 1``) |
| ``reorg`` | ``anvil_reorg``: the newest blocks replaced, their transactions dropped |
| ``pg-crash`` | PostgreSQL stopped with ``pg_ctl stop -m immediate``, restarted (crash recovery) |
| ``broker-outage`` | the embedded broker's database refuses connections, open ones dropped |
| ``slow-api`` | the clients' link to the api delays every chunk beyond the client timeout |
| ``cut-rpc`` / ``cut-ledger`` | the link to anvil's JSON-RPC / from the api to the ledger is cut |

Each injection is recorded: when it began and ended (on the history's clock), so that the report can
say how long the stack took to answer ``ok`` again.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.chaos.history import History
from tests.chaos.stack import MarketStack


@dataclass
class Injection:
    fault: str
    started: float
    healed: float | None = None
    recovered: float | None = None  # first ok operation invoked after the heal


def _restart(name: str) -> Callable[[MarketStack], Callable[[], None]]:
    def inject(stack: MarketStack) -> Callable[[], None]:
        stack.processes[name].kill()

        def heal() -> None:
            stack.processes[name].start()

        return heal

    return inject


def _pause_anvil(stack: MarketStack) -> Callable[[], None]:
    stack.anvil_signal(signal.SIGSTOP)
    return lambda: stack.anvil_signal(signal.SIGCONT)


def _restart_anvil(stack: MarketStack) -> Callable[[], None]:
    stack.kill_anvil()
    return stack.restart_anvil


def _reorg(stack: MarketStack) -> Callable[[], None]:
    depth = min(3, int(stack.rpc("eth_blockNumber"), 16) - 1)
    if depth > 0:
        stack.rpc("anvil_reorg", depth, [])
    return lambda: None


def _pg_crash(stack: MarketStack) -> Callable[[], None]:
    stack.pg_stop_immediate()
    return stack.pg_start


def _broker_outage(stack: MarketStack) -> Callable[[], None]:
    stack.broker_refuse()
    return stack.broker_accept


def _slow(link: str, seconds: float) -> Callable[[MarketStack], Callable[[], None]]:
    def inject(stack: MarketStack) -> Callable[[], None]:
        stack.proxies[link].set_delay(seconds)
        return stack.proxies[link].heal

    return inject


def _cut(link: str) -> Callable[[MarketStack], Callable[[], None]]:
    def inject(stack: MarketStack) -> Callable[[], None]:
        stack.proxies[link].cut()
        return stack.proxies[link].heal

    return inject


FAULTS: dict[str, Callable[[MarketStack], Callable[[], None]]] = {
    "kill-worker": _restart("worker"),
    "kill-beat": _restart("beat"),
    "kill-api": _restart("api"),
    "kill-ledger": _restart("ledger"),
    "pause-anvil": _pause_anvil,
    "restart-anvil": _restart_anvil,
    "reorg": _reorg,
    "pg-crash": _pg_crash,
    "broker-outage": _broker_outage,
    "slow-api": _slow("api", 10.0),
    "cut-rpc": _cut("rpc"),
    "cut-ledger": _cut("ledger"),
}


NEEDS_LIVE_CHAIN = frozenset({"reorg"})


@dataclass
class Nemesis:
    """Inject ``faults`` in turn (all of them at once with ``together``) every ``interval``
    seconds, each held for ``hold`` seconds, until ``stop`` is set or ``seconds`` pass."""

    stack: MarketStack
    history: History
    faults: list[str]
    interval: float = 6.0
    hold: float = 3.0
    warmup: float = 5.0
    together: bool = False
    injections: list[Injection] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, seconds: float) -> list[Injection]:
        until = time.monotonic() + seconds
        if self.stop.wait(self.warmup):
            return self.injections
        turn = 0
        while time.monotonic() + self.hold < until and not self.stop.is_set():
            batch = self.faults if self.together else [self.faults[turn % len(self.faults)]]
            turn += 1
            self.inject(batch)
            if self.stop.wait(self.interval):
                break
        return self.injections

    def inject(self, batch: list[str]) -> None:
        name = "+".join(batch)
        injection = Injection(name, self.history.now())
        self.history.fault = name
        # what talks to the chain first: a reorg asked of an anvil already paused or killed by
        # the same batch would wait for it
        ordered = sorted(batch, key=lambda fault: fault not in NEEDS_LIVE_CHAIN)
        heals = [FAULTS[fault](self.stack) for fault in ordered]
        time.sleep(self.hold)
        for heal in reversed(heals):
            heal()
        injection.healed = self.history.now()
        self.history.fault = None
        self.injections.append(injection)


def recovery_times(history: History, injections: list[Injection]) -> list[float]:
    """Per injection, seconds from the heal to the first ``ok`` of an operation invoked after."""
    out = []
    for injection in injections:
        assert injection.healed is not None
        first = history.first_ok_after(injection.healed)
        injection.recovered = first
        if first is not None:
            out.append(first - injection.healed)
    return out
