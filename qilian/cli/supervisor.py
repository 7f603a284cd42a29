"""Run the platform's processes side by side and keep them alive.

Each process runs in its own process group with its output prefixed on the console and copied to
``var/log/<name>.log``. One that dies is restarted after a short, growing pause, and the log says
so. Stopping (Ctrl-C or SIGTERM) sends SIGTERM to every group, waits, then SIGKILLs what is left,
so no process outlives the supervisor.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


@dataclass
class Program:
    name: str
    command: list[str]
    env: dict[str, str]
    log_dir: Path
    ready: Callable[[], bool] | None = None
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self._log is None:
            self._log = open(self.log_dir / f"{self.name}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(  # noqa: S603
            self.command,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        threading.Thread(target=self._pump, args=(self.process,), daemon=True).start()

    def _pump(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        assert self._log is not None
        prefix = f"{self.name:>7} | ".encode()
        for line in iter(process.stdout.readline, b""):
            self._log.write(line)
            self._log.flush()
            sys.stdout.buffer.write(prefix + line)
            sys.stdout.buffer.flush()

    def signal_main(self, sig: int) -> None:
        """Signal the program itself (a Celery worker then stops its own pool)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)

    def signal_group(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def say(message: str) -> None:
    print(f"qilian | {message}", flush=True)


class Supervisor:
    def __init__(self, stop_timeout: float = 15.0) -> None:
        self.programs: list[Program] = []
        self.stop_timeout = stop_timeout
        self._stopping = threading.Event()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def request_stop(self, *_: object) -> None:
        self._stopping.set()

    def launch(self, program: Program) -> None:
        self.programs.append(program)
        program.start()
        say(f"started {program.name} (pid {program.process.pid if program.process else '?'})")

    def wait_until(self, check: Callable[[], bool], timeout: float) -> bool:
        """Poll ``check`` until true, the timeout, or a stop request."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stopping.is_set():
            if check():
                return True
            time.sleep(0.3)
        return False

    def watch(self) -> None:
        """Restart what dies until asked to stop."""
        while not self._stopping.wait(0.5):
            now = time.monotonic()
            for program in self.programs:
                proc = program.process
                if proc is None or proc.poll() is None:
                    continue
                if program.next_start == 0.0:
                    delay = min(2.0 ** min(program.restarts, 5), 30.0)
                    program.next_start = now + delay
                    say(
                        f"{program.name} exited with code {proc.returncode}; "
                        f"restarting in {delay:.0f}s"
                    )
                elif now >= program.next_start:
                    program.restarts += 1
                    program.next_start = 0.0
                    program.start()
                    pid = program.process.pid if program.process else "?"
                    say(f"restarted {program.name} (pid {pid}, restart {program.restarts})")

    def stop_all(self) -> None:
        for program in reversed(self.programs):
            program.signal_main(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for program in self.programs:
            proc = program.process
            if proc is None:
                continue
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{program.name} did not stop in time; killing it")
            program.signal_group(signal.SIGKILL)  # any child left in the group
            if proc.poll() is None:
                proc.wait()
            program.close()
        say("all processes stopped")

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self.request_stop)
